"""The stages of `chatforge demo`, in order: world → tokenizer → pretrain (base) → SFT → eval of each model.

Each stage function reads only from the stages it names in `needs` and writes only into its own folder.
A model-making stage leaves a HF model directory at `<stage>/model`; `eval-<stage>` scores it. Later
stages (reward model, PPO, DPO, red-team, serve) are added to `demo_stages` the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chatforge.pipeline.presets import pipeline_preset
from chatforge.pipeline.run import Stage, StageContext
from chatforge.world.config import WORLD_FILE, WorldConfig

# which stage made the model an eval stage scores, and the name it has in the scorecard
MODEL_STAGES = {"pretrain": "base", "sft": "sft"}


def world_stage(ctx: StageContext) -> dict:
    from chatforge.world.build import build_world_dir

    return build_world_dir(WorldConfig.from_dict(ctx.stage.config), ctx.dir)


def tokenizer_stage(ctx: StageContext) -> dict:
    from chatforge.models.tokenizer import train_tokenizer

    corpus = ctx.input("world", "corpus.txt")
    tok = train_tokenizer(corpus, ctx.stage.config["vocab_size"])
    tok.save_pretrained(str(ctx.dir))
    sample = corpus.read_text()[:200_000]
    return {"vocab_size": len(tok), "chars_per_token": round(len(sample) / len(tok(sample)["input_ids"]), 3)}


def pretrain_stage(ctx: StageContext) -> dict:
    from chatforge.train.pretrain import PretrainConfig, pretrain

    metrics = pretrain(PretrainConfig(corpus=str(ctx.input("world", "corpus.txt")),
                                      tokenizer=str(ctx.input("tokenizer")), output_dir=str(ctx.dir),
                                      **ctx.stage.config))
    shutil.copy(ctx.input("world", WORLD_FILE), ctx.dir / "model" / WORLD_FILE)
    return metrics


def sft_stage(ctx: StageContext) -> dict:
    from chatforge.train.sft import SFTConfig, sft

    corpus = str(ctx.input("world", "corpus.txt")) if ctx.stage.config.get("text_mix") else None
    return sft(SFTConfig(data=str(ctx.input("world", "sft.jsonl")), model=str(ctx.input("pretrain", "model")),
                         output_dir=str(ctx.dir), text_data=corpus, **ctx.stage.config))


def eval_stage(ctx: StageContext) -> dict:
    from chatforge.evals.heldout import evaluate
    from chatforge.models.generate import SamplingConfig

    model_stage = ctx.stage.needs[-1]
    world = WorldConfig.from_dict(json.loads(ctx.input("world", WORLD_FILE).read_text()))
    metrics = evaluate(str(ctx.input(model_stage, "model")), world, SamplingConfig(**ctx.stage.config),
                       samples_path=ctx.dir / "samples.jsonl", label=MODEL_STAGES[model_stage])
    (ctx.dir / "report.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def demo_stages(preset: str) -> list[Stage]:
    p = pipeline_preset(preset)
    world_cfg = WorldConfig.preset(p["world"]).to_dict()
    stages = [
        Stage("world", world_stage, world_cfg),
        Stage("tokenizer", tokenizer_stage, p["tokenizer"], needs=["world"]),
        Stage("pretrain", pretrain_stage, p["pretrain"], needs=["world", "tokenizer"], kind="model"),
        Stage("sft", sft_stage, p["sft"], needs=["world", "pretrain"], kind="model"),
    ]
    for model_stage in MODEL_STAGES:
        stages.append(Stage(f"eval-{model_stage}", eval_stage, p["eval"], needs=["world", model_stage],
                            kind="report"))
    return stages


def scorecard(results: dict[str, dict]) -> dict[str, dict]:
    """One flat object of numbers per model stage, from the eval stages' metrics."""
    card = {}
    for stage, name in MODEL_STAGES.items():
        m = results.get(f"eval-{stage}")
        if not m:
            continue
        flat = {k: v for k, v in m.items() if isinstance(v, (int, float)) and k != "prompts"}
        flat.update({f"criterion_{c}": v for c, v in m.get("criteria", {}).items()})
        flat.update({f"family_{f}": v for f, v in m.get("families", {}).items()})
        card[name] = flat
    return card


def write_scorecard(run_dir: Path, results: dict[str, dict]) -> dict:
    card = scorecard(results)
    (run_dir / "scorecard.json").write_text(json.dumps(card, indent=2))
    return card
