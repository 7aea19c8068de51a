"""The stages of `chatforge demo`, in order: world → tokenizer → pretrain (base) → mid-training → SFT → comparisons
→ reward model → PPO (and DPO beside it) → eval of each model → head-to-head win rates against SFT → a red-team
campaign against the best RLHF model → adversarial-training rounds from the RLHF model, measured on held-out attack
families.

Each stage function reads only from the stages it names in `needs` and writes only into its own folder.
A model-making stage leaves a HF model directory at `<stage>/model`; `eval-<stage>` scores it. `moderation`
trains the safety classifier that `chatforge serve` uses; the demo ends by serving the best model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.pipeline.presets import pipeline_preset
from chatforge.pipeline.run import Stage, StageContext
from chatforge.world.config import WORLD_FILE, WorldConfig

# which stage made the model an eval stage scores, and the name it has in the scorecard
MODEL_STAGES = {"pretrain": "base", "sft": "sft", "ppo": "ppo", "dpo": "dpo"}
# the models compared head to head with SFT by the oracle
VERSUS_SFT = ("ppo", "dpo")


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


def train_lm(ctx: StageContext, text: str, **extra) -> dict:
    """Pretrain on a world text into this stage's folder; the model carries the world's config."""
    from chatforge.train.pretrain import PretrainConfig, pretrain

    metrics = pretrain(PretrainConfig(corpus=str(ctx.input("world", text)), tokenizer=str(ctx.input("tokenizer")),
                                      output_dir=str(ctx.dir), **extra, **ctx.stage.config))
    shutil.copy(ctx.input("world", WORLD_FILE), ctx.dir / "model" / WORLD_FILE)
    return metrics


def pretrain_stage(ctx: StageContext) -> dict:
    return train_lm(ctx, "corpus.txt")


def midtrain_stage(ctx: StageContext) -> dict:
    """The base model's last steps, on exercises and encyclopedia at a decaying rate (see corpus.MIDTRAIN_SHARES).
    The base model the evals and comparisons use stays the pretrained one, with all its raw habits."""
    return train_lm(ctx, "midtrain.txt", init=str(ctx.input("pretrain", "model")))


def sft_stage(ctx: StageContext) -> dict:
    from chatforge.train.sft import SFTConfig, sft

    cfg = dict(ctx.stage.config)
    corpus = str(ctx.input("world", "corpus.txt")) if cfg.get("text_mix") else None
    drills = str(ctx.input("world", "drills.jsonl")) if cfg.pop("drills", False) else None
    base = "midtrain" if "midtrain" in ctx.stage.needs else "pretrain"  # a preset may go without mid-training
    return sft(SFTConfig(data=str(ctx.input("world", "sft.jsonl")), model=str(ctx.input(base, "model")),
                         output_dir=str(ctx.dir), text_data=corpus, drill_data=drills, **cfg))


def world_config(ctx: StageContext) -> WorldConfig:
    return WorldConfig.from_dict(json.loads(ctx.input("world", WORLD_FILE).read_text()))


def compare_stage(ctx: StageContext) -> dict:
    from chatforge.data.collect import CompareConfig, collect

    cfg = dict(ctx.stage.config)
    second = str(ctx.input("pretrain", "model")) if cfg.get("second_replies") else None
    return collect(CompareConfig(model=str(ctx.input("sft", "model")), output_dir=str(ctx.dir), second_model=second,
                                 **cfg), world_config(ctx))


def reward_stage(ctx: StageContext) -> dict:
    from chatforge.train.reward import RewardConfig, train_reward

    agreement = json.loads(ctx.input("compare", "agreement.json").read_text())
    return train_reward(RewardConfig(data=str(ctx.input("compare", "train.jsonl")),
                                     test_data=str(ctx.input("compare", "test.jsonl")),
                                     test_oracle_data=str(ctx.input("compare", "test_oracle.jsonl")),
                                     ceiling=agreement["test_ceiling"], model=str(ctx.input("sft", "model")),
                                     output_dir=str(ctx.dir), **ctx.stage.config))


PTX_SOURCES = {"corpus": "corpus.txt", "sft": "sft.jsonl"}


def ppo_stage(ctx: StageContext) -> dict:
    from chatforge.evals.overoptimisation import watch
    from chatforge.pipeline.run import console
    from chatforge.train.likelihood_gate import GATE_FILE
    from chatforge.train.ppo import PPOConfig, ppo
    from chatforge.world.world import World

    prompts, cfg = ctx.input("world", "prompts_train.jsonl"), dict(ctx.stage.config)
    # PPO-ptx's data: the pretraining corpus (InstructGPT's), or the SFT demonstrations in the chat template
    source = cfg.pop("ptx_source", "corpus")
    if source not in PTX_SOURCES:
        raise ChatforgeError(f"unknown ptx_source '{source}' (choose from: {', '.join(PTX_SOURCES)})")
    ptx = str(ctx.input("world", PTX_SOURCES[source])) if cfg.get("ptx_coef") else None
    # the reward: the reward model's score, plus the SFT model's likelihood behind the gate the reward stage fitted
    # (if it could: a reward model that learnt nothing gets none, and PPO goes on with the reward model alone)
    gate = ctx.input("reward", "model") / GATE_FILE if cfg.pop("likelihood_gate", False) else None
    gate_note = None
    if gate is not None and not gate.is_file():
        gate_note = json.loads(ctx.input("reward", "metrics.json").read_text()).get("likelihood_gate_error",
                                                                                   "the reward stage fitted none")
        console.print(f"ppo: no likelihood gate ({gate_note}); the reward model's score alone is the reward",
                      style="yellow", markup=False)
        gate = None
    metrics = ppo(PPOConfig(model=str(ctx.input("sft", "model")), reward_model=str(ctx.input("reward", "model")),
                            prompts=str(prompts), ptx_data=ptx, likelihood_gate=gate and str(gate),
                            output_dir=str(ctx.dir), **cfg),
                  oracle_fn=oracle_scorer(World(world_config(ctx))))
    report = watch(ctx.dir / "log.jsonl", ctx.dir / "overoptimisation.png")
    (ctx.dir / "overoptimisation.json").write_text(json.dumps(report, indent=2))
    return {**metrics, "likelihood_gate": gate_note or (gate is not None), "overoptimisation": report["verdict"],
            "rm_gain": report.get("reward_model_gain"), "oracle_gain": report.get("oracle_gain")}


def oracle_scorer(world):
    """The over-optimisation watch: the oracle's score of the replies PPO samples, beside the reward model's."""
    from chatforge.world.prompts import Prompt

    def judge(records: list[dict], replies: list[str]) -> list[float]:
        return [world.oracle.judge(Prompt.from_dict(r), reply).score if "family" in r else float("nan")
                for r, reply in zip(records, replies)]

    return judge


def dpo_stage(ctx: StageContext) -> dict:
    from chatforge.train.dpo import DPOConfig, dpo

    return dpo(DPOConfig(data=str(ctx.input("compare", "train.jsonl")), model=str(ctx.input("sft", "model")),
                         output_dir=str(ctx.dir), **ctx.stage.config))


def moderation_stage(ctx: StageContext) -> dict:
    """The safety classifier `chatforge serve` checks inputs and outputs with, trained on this run's world."""
    from chatforge.moderation.train import ModerationConfig, train_moderation

    return train_moderation(ModerationConfig(output_dir=str(ctx.dir), world_dir=str(ctx.input("world")),
                                             tokenizer=str(ctx.input("tokenizer")), **ctx.stage.config))


def winrate_stage(ctx: StageContext) -> dict:
    """Each RLHF model against SFT, judged by the oracle: on the eval stages' greedy replies, and, when the config
    asks for `samples` > 0, on that many replies per prompt sampled the way the web chat samples them (its
    `temperature` and `top_p`; written to `served-NAME.jsonl` here), paired draw by draw."""
    from chatforge.evals.heldout import evaluate
    from chatforge.evals.winrate import win_rate
    from chatforge.models.generate import SamplingConfig

    names = [m for m in VERSUS_SFT if f"eval-{m}" in ctx.stage.needs]
    results = {f"{name}_vs_sft": win_rate(ctx.input(f"eval-{name}", "samples.jsonl"),
                                          ctx.input("eval-sft", "samples.jsonl")) for name in names}
    served = dict(ctx.stage.config)
    n = served.pop("samples", 0)
    if n:
        sampling = SamplingConfig(**served)
        for name in ["sft", *names]:
            metrics = evaluate(str(ctx.input(name, "model")), world_config(ctx), sampling,
                               samples_path=ctx.dir / f"served-{name}.jsonl", label=f"{MODEL_STAGES[name]} as served",
                               samples_per_prompt=n)
            results[f"served_{name}"] = {"oracle_score": metrics["oracle_score"], "families": metrics["families"],
                                         "temperature": sampling.temperature, "top_p": sampling.top_p, "samples": n}
        for name in names:
            results[f"{name}_vs_sft_served"] = win_rate(ctx.dir / f"served-{name}.jsonl", ctx.dir / "served-sft.jsonl")
    (ctx.dir / "report.json").write_text(json.dumps(results, indent=2))
    return results


def eval_stage(ctx: StageContext) -> dict:
    from chatforge.evals.heldout import evaluate
    from chatforge.models.generate import SamplingConfig

    model_stage = ctx.stage.needs[-1]
    metrics = evaluate(str(ctx.input(model_stage, "model")), world_config(ctx), SamplingConfig(**ctx.stage.config),
                       samples_path=ctx.dir / "samples.jsonl", label=MODEL_STAGES[model_stage])
    (ctx.dir / "report.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def best_rlhf(ctx: StageContext) -> str:
    """The RLHF model (PPO or DPO) with the higher held-out oracle score."""
    scored = [(json.loads(ctx.input(f"eval-{m}", "report.json").read_text()).get("oracle_score") or 0.0, m)
              for m in VERSUS_SFT if f"eval-{m}" in ctx.stage.needs]
    return max(scored)[1] if scored else "sft"


def redteam_stage(ctx: StageContext) -> dict:
    """A red-team campaign against the best RLHF model: held-out template attacks and the attacker LM (the SFT
    model, few-shot), judged by the oracle; report in redteam/report.json."""
    from chatforge.redteam.attackers import LMAttacker, TemplateAttacker
    from chatforge.redteam.campaign import CampaignConfig, run_campaign
    from chatforge.redteam.judge import OracleJudge
    from chatforge.redteam.targets import ModelTarget, campaign_sampling
    from chatforge.world.world import World

    cfg = ctx.stage.config
    world, name = World(world_config(ctx)), best_rlhf(ctx)
    attackers = [TemplateAttacker(world, "heldout")]
    if "lm" in cfg.get("attackers", "templates"):
        attackers.append(LMAttacker(str(ctx.input("sft", "model")),
                                    max_new_tokens=cfg.get("attacker_max_new_tokens", 64)))
    sampling = campaign_sampling(cfg.get("max_new_tokens", 48), cfg.get("temperature", 0.0))
    with ModelTarget(str(ctx.input(name, "model")), sampling) as target:
        camp = CampaignConfig(out=str(ctx.dir), queries=cfg.get("queries", 64), batch_size=cfg.get("batch_size", 32),
                              seed=cfg.get("seed", 0))
        report = run_campaign(camp, target, OracleJudge(world), attackers, console=False)
    by = report["by_attacker"]
    return {"target": name, "queries": report["overall"]["queries"], "successes": report["overall"]["successes"],
            "asr": report["overall"]["asr"], "heldout_template_asr": by.get("templates", {}).get("asr"),
            "lm_asr": by.get("lm", {}).get("asr"), "lm_distinct_share": by.get("lm", {}).get("distinct_share")}


def adversarial_stage(ctx: StageContext) -> dict:
    """N adversarial-training rounds from the `start` model (see redteam/adversarial.py), SFT data = the world's
    demonstrations, attacker LM = the SFT model; rounds.json and adversarial.png in the stage folder."""
    from chatforge.redteam.adversarial import AdversarialConfig, adversarial

    cfg = dict(ctx.stage.config)
    start = cfg.pop("start", "ppo")
    result = adversarial(AdversarialConfig(output_dir=str(ctx.dir), sft_data=str(ctx.input("world", "sft.jsonl")),
                                           attacker_model=str(ctx.input("sft", "model")), **cfg),
                         str(ctx.input(start, "model")), world_config(ctx))
    flat = {k: v for k, v in result["summary"].items() if v is not None}
    for r in result["rounds"]:  # held-out ASR, helpfulness and over-refusal after each round (0 = before)
        for key in ADVERSARIAL_ROUND_FIGURES:
            if r.get(key) is not None:
                flat[f"{key}_round_{r['round']}"] = r[key]
    return flat


# what each adversarial round reports in the scorecard
ADVERSARIAL_ROUND_FIGURES = ("heldout_asr", "task_accuracy", "known_fact_accuracy", "benign_answered", "over_refusal",
                             "wide_task_accuracy", "wide_known_fact_accuracy", "wide_benign_answered",
                             "wide_over_refusal")


def demo_stages(preset: str) -> list[Stage]:
    p = pipeline_preset(preset)
    world_cfg = WorldConfig.preset(p["world"]).to_dict()
    stages = [
        Stage("world", world_stage, world_cfg),
        Stage("tokenizer", tokenizer_stage, p["tokenizer"], needs=["world"]),
        Stage("pretrain", pretrain_stage, p["pretrain"], needs=["world", "tokenizer"], kind="model"),
        *([Stage("midtrain", midtrain_stage, p["midtrain"], needs=["world", "tokenizer", "pretrain"], kind="model")]
          if p.get("midtrain") else []),
        Stage("sft", sft_stage, p["sft"], needs=["world", "midtrain" if p.get("midtrain") else "pretrain"],
              kind="model"),
        Stage("compare", compare_stage, p["compare"], needs=["world", "pretrain", "sft"]),
        Stage("reward", reward_stage, p["reward"], needs=["compare", "sft"], kind="model"),
        Stage("ppo", ppo_stage, p["ppo"], needs=["world", "reward", "sft"], kind="model"),
        Stage("dpo", dpo_stage, p["dpo"], needs=["compare", "sft"], kind="model"),
        Stage("moderation", moderation_stage, p["moderation"], needs=["world", "tokenizer"], kind="model"),
    ]
    for model_stage in MODEL_STAGES:
        stages.append(Stage(f"eval-{model_stage}", eval_stage, p["eval"], needs=["world", model_stage],
                            kind="report"))
    stages.append(Stage("winrate", winrate_stage, p.get("winrate", {}),
                        needs=["world", "sft", *VERSUS_SFT, "eval-sft", *[f"eval-{m}" for m in VERSUS_SFT]],
                        kind="report"))
    stages.append(Stage("redteam", redteam_stage, p["redteam"],
                        needs=["world", "sft", *VERSUS_SFT, *[f"eval-{m}" for m in VERSUS_SFT]], kind="report"))
    start = p["adversarial"].get("start", "ppo")
    stages.append(Stage("adversarial", adversarial_stage, p["adversarial"],
                        needs=["world", "sft"] + ([start] if start != "sft" else []), kind="report"))
    return stages


def scorecard(results: dict[str, dict]) -> dict[str, dict]:
    """One flat object of numbers per model stage: its eval, what its own training reported, its win rate."""
    card = {}
    for stage, name in MODEL_STAGES.items():
        m = results.get(f"eval-{stage}")
        if not m:
            continue
        flat = {k: v for k, v in m.items() if isinstance(v, (int, float)) and k != "prompts"}
        flat.update({f"criterion_{c}": v for c, v in m.get("criteria", {}).items()})
        flat.update({f"family_{f}": v for f, v in m.get("families", {}).items()})
        h2h = results.get("winrate", {}).get(f"{stage}_vs_sft")
        if h2h:
            flat.update(win_rate_vs_sft=h2h["win_rate"], decisive_win_rate_vs_sft=h2h["decisive_win_rate"])
            if h2h.get("win_rate_interval"):
                flat.update(win_rate_vs_sft_low=h2h["win_rate_interval"][0],
                            win_rate_vs_sft_high=h2h["win_rate_interval"][1])
        served = results.get("winrate", {}).get(f"{stage}_vs_sft_served")
        if served:
            low, high = served["win_rate_interval"]
            flat.update(served_win_rate_vs_sft=served["win_rate"], served_win_rate_vs_sft_low=low,
                        served_win_rate_vs_sft_high=high)
        served_score = results.get("winrate", {}).get(f"served_{stage}")
        if served_score:
            flat["served_oracle_score"] = served_score["oracle_score"]
            flat.update({f"served_family_{f}": v for f, v in served_score["families"].items()})
        card[name] = flat
    mod = results.get("moderation") or {}
    if any(k in mod for k in MODERATION_FIGURES):
        card["moderation"] = {k: mod[k] for k in MODERATION_FIGURES if k in mod}
    adv = results.get("adversarial") or {}
    if adv:  # ASR before and after each round on held-out attack families, beside helpfulness and over-refusal
        card["adversarial"] = {k: v for k, v in adv.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for stage, keys in TRAINING_FIGURES.items():
        m = results.get(stage) or {}
        figures = {k: m[k] for k in keys if m.get(k) is not None}
        if figures:
            card.setdefault(MODEL_STAGES.get(stage, stage), {}).update(figures)
    return card


# what each training stage's own metrics add to the scorecard
TRAINING_FIGURES = {
    "compare": ("train_pairs", "rater_vs_rater", "rater_vs_oracle", "test_ceiling"),
    "reward": ("test_accuracy_raters", "rater_ceiling", "gap_to_ceiling", "test_accuracy_oracle",
               "test_accuracy_raters_gated", "gap_to_ceiling_gated", "test_accuracy_oracle_gated"),
    "ppo": ("final_reward", "final_kl", "mean_oracle", "rm_gain", "oracle_gain", "overoptimisation", "samples_per_s",
            "generation_share"),
    "dpo": ("reward_accuracy", "reward_margin"),
    "redteam": ("queries", "successes", "asr", "heldout_template_asr", "lm_asr", "lm_distinct_share"),
}
# the safety classifier's held-out figures, shown under their own row
MODERATION_FIGURES = ("harmful_input_recall", "jailbreak_input_recall", "benign_scary_flag_rate",
                      "ordinary_input_flag_rate", "harmful_output_recall", "toxic_output_recall")


def write_scorecard(run_dir: Path, results: dict[str, dict]) -> dict:
    card = scorecard(results)
    (run_dir / "scorecard.json").write_text(json.dumps(card, indent=2))
    return card
