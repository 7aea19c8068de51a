"""Compare training recipes for the foundation stages (world → tokenizer → pretrain → SFT → eval), side by side.

Each variant is the `small` pipeline preset with a few settings changed; every variant runs in its own process
and run directory, so they can run in parallel (on a GPU box: `--jobs 8`). What a recipe learns does not depend
on the hardware, only on the steps and tokens it gets, so a GPU sweep ranks recipes for the 2-core demo machine;
the time it would take there is estimated from the tokens processed (`--cpu-tokens-per-s`, measured on the
2-core machine for the `small` model).

    python bench/recipe_sweep.py --out /tmp/sweep --jobs 4 baseline pt3ep lr4e3
    python bench/recipe_sweep.py --list
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

# issue 2's figures for the SFT model
TARGETS = {"known_fact_accuracy": 80, "task_accuracy": 70, "identity_honesty": 95, "harmful_refusal": 85,
           "over_refusal": -10, "clarification_rate": 70, "unknown_admission": 70}

NARROW = {"hidden_size": 192, "intermediate_size": 512}

# overrides per variant: {"world": {...}, "pretrain": {...}, "sft": {...}, "model": {...}, "shares": {...}}
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "pt2ep": {"pretrain": {"epochs": 2.0}},
    "pt3ep": {"pretrain": {"epochs": 3.0}},
    "lr4e3": {"pretrain": {"learning_rate": 4e-3}},
    "bs16lr3e3": {"pretrain": {"batch_size": 16, "learning_rate": 3e-3}},
    "deep6x192": {"model": {"hidden_size": 192, "num_hidden_layers": 6, "num_attention_heads": 6,
                            "intermediate_size": 576}},
    "worksheet30": {"shares": {"encyclopedia": 0.40, "forum": 0.12, "chat": 0.18, "worksheet": 0.30}},
    "chat30": {"shares": {"encyclopedia": 0.40, "forum": 0.12, "chat": 0.30, "worksheet": 0.18}},
    "sft6ep": {"sft": {"epochs": 6.0}},
    "sftlr2e3": {"sft": {"learning_rate": 2e-3}},
    "sft_unfrozen": {"sft": {"freeze_embeddings": False}},
    "demos4800": {"world": {"sft_demos": 4800}},
    "lr6e3": {"pretrain": {"learning_rate": 6e-3}},
    "bs4": {"pretrain": {"batch_size": 4, "learning_rate": 1.5e-3}},
    "heads8": {"model": {"num_attention_heads": 8}},
    "nomix": {"sft": {"text_mix": 0.0}},
    "pt2ep_lr4e3": {"pretrain": {"epochs": 2.0, "learning_rate": 4e-3}},
    "sft5ep": {"sft": {"epochs": 5.0}},
    "sft5ep_seed1": {"sft": {"epochs": 5.0}, "pretrain": {"seed": 1}},
    "baseline_seed1": {"pretrain": {"seed": 1}},
    "bs4_sft5ep": {"pretrain": {"batch_size": 4, "learning_rate": 1.5e-3}, "sft": {"epochs": 5.0}},
    "narrow_pt2ep": {"pretrain": {"epochs": 2.0}, "model": {"hidden_size": 192, "intermediate_size": 512}},
    "corpus4m_pt2ep": {"world": {"corpus_chars": 4_000_000}, "pretrain": {"epochs": 2.0}},
    "demos3600_sft4ep": {"world": {"sft_demos": 3600}, "sft": {"epochs": 4.0}},
    "pt15_sft5ep": {"pretrain": {"epochs": 1.5}, "sft": {"epochs": 5.0}},
    "lr3e3": {"pretrain": {"learning_rate": 3e-3}},
    "lr4e3_warm10": {"pretrain": {"learning_rate": 4e-3, "warmup": 0.1}},
    "pt2ep_sft5ep": {"pretrain": {"epochs": 2.0}, "sft": {"epochs": 5.0}},
    "corpus3m_pt2ep_sft5ep": {"world": {"corpus_chars": 3_250_000}, "pretrain": {"epochs": 2.0},
                              "sft": {"epochs": 5.0}},
    "narrow_pt2ep_s1": {"pretrain": {"epochs": 2.0, "seed": 1}, "model": NARROW},
    "narrow_pt2ep_s2": {"pretrain": {"epochs": 2.0, "seed": 2}, "model": NARROW},
    "narrow_pt2ep_sft4ep": {"pretrain": {"epochs": 2.0}, "sft": {"epochs": 4.0}, "model": NARROW},
    "narrow_pt15": {"pretrain": {"epochs": 1.5}, "model": NARROW},
    "narrow_pt15_s1": {"pretrain": {"epochs": 1.5, "seed": 1}, "model": NARROW},
    "narrow160_pt2ep": {"pretrain": {"epochs": 2.0}, "model": {"hidden_size": 160, "intermediate_size": 448}},
    "narrow_pt25": {"pretrain": {"epochs": 2.5}, "model": NARROW},
    "narrow_pt2ep_s3": {"pretrain": {"epochs": 2.0, "seed": 3}, "model": NARROW},
}


def merged(variant: str, preset: str) -> dict:
    from chatforge.pipeline.presets import PIPELINE_PRESETS

    p = copy.deepcopy(PIPELINE_PRESETS[preset])
    for key, over in VARIANTS[variant].items():
        if key in ("model", "shares", "world"):
            continue
        p[key].update(over)
    return p


def run_variant(variant: str, out: Path, preset: str) -> None:
    """In this process: patch the presets, run the foundation stages, write `out/variant/result.json`."""
    from chatforge.models import presets as model_presets
    from chatforge.pipeline.run import RunDir, Stage
    from chatforge.pipeline.stages import eval_stage, pretrain_stage, sft_stage, tokenizer_stage, world_stage
    from chatforge.world import corpus
    from chatforge.world.config import WorldConfig

    v = VARIANTS[variant]
    p = merged(variant, preset)
    size = p["pretrain"]["preset"]
    model_presets.MODEL_PRESETS[size] = {**model_presets.MODEL_PRESETS[size], **v.get("model", {})}
    corpus.SHARES.update(v.get("shares", {}))
    world = {**WorldConfig.preset(p["world"]).to_dict(), **v.get("world", {})}
    if "shares" in v:  # the world stage is cached by its config: a different corpus needs a different key
        world["_shares"] = v["shares"]
    stages = [Stage("world", world_stage, world), Stage("tokenizer", tokenizer_stage, p["tokenizer"], ["world"]),
              Stage("pretrain", pretrain_stage, {**p["pretrain"], "compile": False}, ["world", "tokenizer"], "model"),
              Stage("sft", sft_stage, p["sft"], ["world", "pretrain"], "model"),
              Stage("eval-sft", eval_stage, p["eval"], ["world", "sft"], "report")]
    start = time.time()
    results = RunDir(out / variant).run(stages)
    res = {"variant": variant, "wall_s": round(time.time() - start, 1), "pretrain": results["pretrain"],
           "sft": results["sft"], "eval": {k: results["eval-sft"].get(k) for k in TARGETS}
           | {"oracle_score": results["eval-sft"].get("oracle_score")}}
    (out / variant / "result.json").write_text(json.dumps(res, indent=2))


def table(out: Path, variants: list[str], cpu_tok_s: float) -> None:
    cols = list(TARGETS) + ["oracle_score"]
    print("variant".ljust(14) + "".join(c[:10].rjust(11) for c in cols) + "   pt_tokens  est_cpu_pt_s  gpu_s")
    for v in variants:
        f = out / v / "result.json"
        if not f.exists():
            print(v.ljust(14) + "  (failed: see " + str(out / f"{v}.log") + ")")
            continue
        r = json.loads(f.read_text())
        tokens = r["pretrain"]["tokens"]
        row = "".join(f"{r['eval'][c]!s:>11}" for c in cols)
        print(v.ljust(14) + row + f"{tokens:>12.0f}{tokens / cpu_tok_s:>14.0f}{r['wall_s']:>7.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", default=["baseline"])
    ap.add_argument("--out", type=Path, default=Path("bench/results/sweep"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--preset", default="small", help="pipeline preset the variants change (tiny: a smoke test)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true", help="only print the table of finished variants")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    # pretraining tokens/s of the small model on the 2-core machine (pretrain stage metrics: tokens / seconds)
    ap.add_argument("--cpu-tokens-per-s", type=float, default=7160.0)
    a = ap.parse_args()
    if a.list:
        for name, v in VARIANTS.items():
            print(f"{name:14} {json.dumps(v)}")
        return
    if a.one:
        run_variant(a.one, a.out, a.preset)
        return
    if a.table:
        table(a.out, a.variants, a.cpu_tokens_per_s)
        return
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s): {', '.join(unknown)} (see --list)")
    a.out.mkdir(parents=True, exist_ok=True)
    pending, running = list(a.variants), []
    while pending or running:
        while pending and len(running) < a.jobs:
            v = pending.pop(0)
            log = open(a.out / f"{v}.log", "w")
            running.append(subprocess.Popen([sys.executable, __file__, "--one", v, "--out", str(a.out),
                                             "--preset", a.preset],
                                            stdout=log, stderr=subprocess.STDOUT))
        time.sleep(2)
        running = [p for p in running if p.poll() is None]
    table(a.out, a.variants, a.cpu_tokens_per_s)


if __name__ == "__main__":
    main()
