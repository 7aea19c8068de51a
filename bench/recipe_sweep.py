"""Compare training recipes for the foundation stages (world → tokenizer → pretrain → midtrain → SFT → eval), side by
side.

Each variant is the `small` pipeline preset with a few settings changed; every variant runs in its own process
and run directory, so they can run in parallel (on a GPU box: `--jobs 8`). What a recipe learns does not depend
on the hardware, only on the steps and tokens it gets, so a GPU sweep ranks recipes for the 2-core demo machine;
time it takes there is measured by `bench/demo_time.py`. The table gives each variant's pretraining tokens and
parameters, whose product is what the 2-core machine pays for.

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

# overrides per variant: {"world": {...}, "pretrain": {...}, "sft": {...}, "model": {...}, "shares": {...},
# "midshares": {...} (the mid-training mix, replacing corpus.MIDTRAIN_SHARES), "drill_kinds": {...} (replacing
# families_tasks.DRILL_KINDS)}
#
# What the sweep found (2026-11-25, one H200, one seed unless said; SFT model on the held-out split; percent):
#   recipe (then: model 4M = hidden 256 / FFN 768)     known  task  identity  harmful  over-ref  clarif  unknown
#   4M, 1 epoch (the old preset), seeds 0 / 1           50/40  8/5    80/45   92/45     30/30   65/30   70/95
#   4M, 2 epochs                                        75    12      92       100        0      88      90
#   4M, 3 epochs                                        88    15      90        72        0      78      90
#   4M, 1 epoch, SFT 5 epochs, seeds 0 / 1              58/18  5/5    98/78   95/88     10/18   95/72   85/98
#   hidden 192 / FFN 512 (2.2M), 2 epochs, 4 seeds      88-98 10-20  95-100  95-100      0      100    92-100
#   hidden 160 / FFN 448 (1.6M), 2 epochs, batch 8      100   25      98       100        2      100      92
#   batch 16, lr 2.5e-3 (now small; 2-core CPU, 438 s)  100    8      100       100        0      100     100
# Pretraining learning rates of 3e-3 and above diverged (also with 10% warmup). No recipe taught the two-digit
# arithmetic and list tasks (task accuracy 5-27%): they need copying digits and words from the prompt.
#
# Copying from the prompt, 2026-11-27 (one H200, 6 and 5 variants at a time, OMP_NUM_THREADS=2, ~100 s each; the
# small preset with mid-training; SFT model, held-out split): SFT task accuracy swings with the pretraining seed far
# more than with any of these changes, so a single run ranks nothing.
#   baseline 37.5 (known facts 95) · heads8 35.0 · heads2 22.5 · deep5thin (5 layers, FFN 320) 20.0, known 60 ·
#   lr2e3 20.0 · seq256 (blocks of 256, batch 8: same tokens per step) seeds 0 / 1 / 2: 65.0 / 27.5 / 22.5, known
#   80 / 100 / 85 · seq256mid (mid-training at 256 too) 60.0 · seq256lr2 40.0 · seq512 (batch 4) 45.0.
# A careful assistant's answer in 6% of the corpus's answers to train-split prompts (good3; 2 CPU cores, 2026-11-27),
# pretraining seeds 0 / 1 / 2: known facts 67.5 / 87.5 / 97.5, tasks 25 / 25 / 27.5 (shipped corpus, seed 0: 100, 40);
# then bench/rlhf_variant.py: PPO win rate vs SFT 0.591 / 0.580 / 0.641 (shipped: 0.581).
# Why the tasks fail, 2026-11-27 (the demo's base and SFT models, teacher-forced and on worksheet prompts): the model
# copies a number's second digit from the number in the same place of the question, not by looking up its first
# digit. The base model sorts tens digits right ("sort: 89, 42, 55 ->" gives "49, 52, 85": second digits in the
# question's order) and the SFT model writes a reply's first number, which has no space before it ("5" "2", where
# the question has "Ġ5" "2"), with the wrong second digit ("82 kilograms" -> "88 kilograms", 6 of 7 worked sums and
# conversions) while copying the same number right later in the reply. Three fixes, none kept (one H200, baseline@sN
# = pretraining seed N; SFT task accuracy, known facts in brackets, held-out split):
#   shipped recipe, seeds 0-4: 37.5 22.5 22.5 30 25 (mean 27.5; known 91)
#   gold replies that open with words ("To work out 52 + 89: ...", "In 82 kilograms there are 82000 grams."), seeds
#   0-7: 22.5 37.5 30 20 40 17.5 35 22.5 (mean 28.1; known 79). Conversions 29/56 right (shipped: 12/35), but sums
#   now fail at "So 13", which reads a digit back from two lines up;
#   with those replies, numbers of up to two digits as one token (" 82" is "Ġ82", a tokenizer regex " ?\d{1,2}"),
#   seeds 0-4: 20 27.5 30 35 37.5 (mean 30; known 90): the model copies the wrong whole number instead;
#   with those replies, 25% / 50% of worksheet exercises copying 3-6 numbers out in a random order (where only a
#   look-up gets the second digit): 32.5 20 17.5 / 27.5 35.
# Sorting (0 of 9 in every run) and reversing (0-1 of 8) are where the points are, and no recipe here moved them.
# More training entrenches the shortcut (2 CPU cores, seed 0, bench/copy_probe.py): pretraining for 4 epochs instead
# of 2 (pt4ep, 12 min) gave SFT tasks 20 (40), known facts 100, and its base model's wrong "sort:" answers were 96%
# second digits in the question's order (27% at 2 epochs). Nor does size: the medium model (12M parameters, 6
# layers, 2 epochs at lr 1e-3; 34 min to the SFT eval on 2 cores) gave SFT tasks 32.5 (sorting 0/9, reversing 0/8),
# known facts 87.5, its base model sorting 8% of worksheet lists. Copying by look-up is missing from what the
# corpus teaches, not from the model.
# Task drills in SFT, 2026-11-27 (2 CPU cores; pretraining seeds 0 / 1 / 2; SFT task accuracy, sorting of 9 and
# known facts in brackets): the preset (`baseline`: mid-training, no drills) 40 / 32.5 / 22.5 (0, 0, 0; 100 / 97.5 /
# 85). Mid-training with chat-shaped tasks in its text (`midchat`: 35% encyclopedia, 65% tasks, 2.6M characters, 75 s)
# 47.5 / 35 / 22.5 (0, 0, 0; known 100 / 97.5 / 75); sort-heavy (40% sorting, 30% reversing) 40 on seed 0.
# 3000 sorting drills in SFT, mid-training dropped to pay for them (`drills`): 55 / 37.5 / 30 (9, 2, 1; 100 / 100 /
# 82.5). On seed 0: 3000 drills with mid-training 52.5 (sort 8); 1000 sorting + 1000 reversing drills 40 (sort 3,
# reverse 0; without mid-training 40, sort 3). bench/lookup_drill.py on seed 0's base then SFT: chat-sort 330 steps
# sorting 3/9 (670: 6/9); chat-reverse 438 steps reversing 1/8, conversions 2/7; chat-sort at lr 2.5e-3 tasks 15.
# `drills` through the whole demo (seed 0, then bench/rlhf_variant.py): PPO win rate over SFT 0.508 / 0.537 (reward
# model seed 1) / 0.519 (PPO seed 1), against 0.565-0.614 for the preset; so the preset keeps the drills off. With the
# preset's own run's reward model, 0.488: the drilled SFT model samples fewer complete refusals (13.2% against 17.5%).
# Previous-token heads, 2026-11-27 (2 CPU cores; the variants as they were named then, on the former preset; SFT task
# accuracy, by kind, known facts in brackets). The former preset's base models never formed a previous-token head (the
# most such head of one put 0.42 of its weight on the previous token), which copying needs; started with one (layer 0,
# head 0, models/presets.init_prev_token_heads) it stays one through training (1.0) and pretraining ends at loss 0.587
# (0.622). prev1 (the head, mid-training, no drills) seeds 0 / 1: 55 / 55 (32.5 / 32.5), sorting 2 / 7 of 9,
# conversions 7 / 6 of 7, counting 8 / 7 of 8 (known 100 / 85); its base model sorts 55% of worksheet lists (3%) and
# never copies second digits by place (16% of the wrong answers). prev1drills (+ 3000 sorting drills, mid-training
# off), seed 0: 70 (sorting 9/9, known 100). prev1mix (drills half sorting, a quarter each adding and subtracting; now
# the preset), seeds 0 / 1: 82.5 / 70 (sorting 8 / 8, sums 8 / 6 of 8, reversing 2 / 0 of 8; known 100 / 92.5).
# prev1all (a third of the drills reversing; now `reverse`), seed 0: 85, reversing 5/8: with the head, reversal drills
# work; SFT took 158 s instead of 140 (longer replies). fast (2000 drills, pretraining 1.9 epochs) seeds 0 / 1: 75 /
# 52.5. With eager attention on the CPU (the current code), baseline@s1: 70 (known 82.5).
FOUNDATION = ("world", "tokenizer", "pretrain", "midtrain", "sft", "eval-sft")
VARIANTS: dict[str, dict] = {
    "baseline": {},
    # the recipe before previous-token heads and drills (mid-training, no drills); the older variants below changed it
    "before": {"model": {"prev_token_heads": 0}, "sft": {"drills": False}, "drill_kinds": {"sort": 1.0},
               "midtrain": {"epochs": 1.0, "seq_len": 128, "batch_size": 16, "learning_rate": 1e-3, "warmup": 0,
                            "weight_decay": 0.01, "save_every": 200}},
    "drills": {"midtrain": None, "sft": {"drills": True}},
    "midchat": {"world": {"midtrain_chars": 2_600_000}, "midshares": {"encyclopedia": 0.35, "task_chat": 0.65}},
    "pt3ep": {"pretrain": {"epochs": 3.0}},
    "pt15": {"pretrain": {"epochs": 1.5}},
    "seed1": {"pretrain": {"seed": 1}},
    "seed2": {"pretrain": {"seed": 2}},
    "wide192": {"model": {"hidden_size": 192, "intermediate_size": 512}},
    "old4m": {"pretrain": {"epochs": 1.0}, "model": {"hidden_size": 256, "intermediate_size": 768}},
    "deep6": {"model": {"num_hidden_layers": 6}},
    "bs4": {"pretrain": {"batch_size": 4, "learning_rate": 1.5e-3}},
    "bs16": {"pretrain": {"batch_size": 16, "learning_rate": 2.5e-3}},
    "worksheet30": {"shares": {"encyclopedia": 0.40, "forum": 0.12, "chat": 0.18, "worksheet": 0.30}},
    "sft5ep": {"sft": {"epochs": 5.0}},
    "sft_unfrozen": {"sft": {"freeze_embeddings": False}},
    "demos4800": {"world": {"sft_demos": 4800}},
    # copying from the prompt (the tasks' and the reward model's weak point), at about the demo's compute
    "heads8": {"model": {"num_attention_heads": 8}},
    "heads2": {"model": {"num_attention_heads": 2}},
    "seq256": {"pretrain": {"seq_len": 256, "batch_size": 8}},
    "deep5thin": {"model": {"num_hidden_layers": 5, "intermediate_size": 320}},
    "lr2e3": {"pretrain": {"learning_rate": 2e-3}},
    "seq256s1": {"pretrain": {"seq_len": 256, "batch_size": 8, "seed": 1}},
    "seq256s2": {"pretrain": {"seq_len": 256, "batch_size": 8, "seed": 2}},
    "seq512": {"pretrain": {"seq_len": 512, "batch_size": 4}},
    # on the current preset (previous-token head, drills half sorting and a quarter each adding and subtracting):
    # without the head; with a third of the drills reversing (as prev1all, measured on seed 0); fewer drills and
    # shorter pretraining (measured as drills2k and fast)
    "nohead": {"model": {"prev_token_heads": 0}},
    "reverse": {"drill_kinds": {"sort": 0.35, "reverse": 0.35, "add": 0.15, "sub": 0.15}},
    "drills2k": {"world": {"task_drills": 2000}},
    "fast": {"world": {"task_drills": 2000}, "pretrain": {"epochs": 1.9}},
    "seq256mid": {"pretrain": {"seq_len": 256, "batch_size": 8}, "midtrain": {"seq_len": 256, "batch_size": 8}},
    "seq256lr2": {"pretrain": {"seq_len": 256, "batch_size": 8, "learning_rate": 2e-3}},
    # a careful assistant's answer in the corpus now and then (WorldConfig.good_share, 0.06 since 2026-11-28; the
    # good3 variants predate that): none, a third of it, and over pretraining seeds (also as baseline@s1, ...)
    "good0": {"world": {"good_share": 0.0}},
    "good1": {"world": {"good_share": 0.02}},
    "good3": {"world": {"good_share": 0.06}},
    "good3s1": {"world": {"good_share": 0.06}, "pretrain": {"seed": 1}},
    "good3s2": {"world": {"good_share": 0.06}, "pretrain": {"seed": 2}},
    # more compute than the 2-core demo has: is copying a matter of training, or of the data?
    "pt4ep": {"pretrain": {"epochs": 4.0}},
    "medium": {"model": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6,
                         "intermediate_size": 1024}, "pretrain": {"learning_rate": 1e-3}},
}


def overrides(variant: str) -> dict:
    """A variant's overrides; "NAME@sN" is variant NAME with pretraining seed N (the seed moves task accuracy more than
    most recipes do, so compare recipes over several)."""
    name, _, seed = variant.partition("@s")
    v = copy.deepcopy(VARIANTS[name])
    if seed:
        v.setdefault("pretrain", {})["seed"] = int(seed)
    return v


def known(variant: str) -> bool:
    name, _, seed = variant.partition("@s")
    return name in VARIANTS and (not seed or seed.isdigit())


def merged(variant: str, preset: str) -> dict:
    from chatforge.pipeline.presets import PIPELINE_PRESETS

    p = copy.deepcopy(PIPELINE_PRESETS[preset])
    for key, over in overrides(variant).items():
        if key in ("model", "shares", "midshares", "world", "drill_kinds"):
            continue
        p[key] = None if over is None else {**(p.get(key) or {}), **over}
    return p


def run_variant(variant: str, out: Path, preset: str) -> None:
    """In this process: patch the presets, run the foundation stages, write `out/variant/result.json`."""
    from chatforge.models import presets as model_presets
    from chatforge.pipeline import presets
    from chatforge.pipeline import stages as st
    from chatforge.pipeline.run import RunDir
    from chatforge.world import corpus, families_tasks
    from chatforge.world.config import WorldConfig

    v = overrides(variant)
    p = merged(variant, preset)
    size = p["pretrain"]["preset"]
    model_presets.MODEL_PRESETS[size] = {**model_presets.MODEL_PRESETS[size], **v.get("model", {})}
    corpus.SHARES.update(v.get("shares", {}))
    corpus.MIDTRAIN_SHARES = v.get("midshares", corpus.MIDTRAIN_SHARES)
    if "drill_kinds" in v:  # in place: world.py holds the same dict
        families_tasks.DRILL_KINDS.clear()
        families_tasks.DRILL_KINDS.update(v["drill_kinds"])
    world = {**WorldConfig.preset(p["world"]).to_dict(), **v.get("world", {})}
    if "shares" in v:  # the world stage is cached by its config: a different corpus needs a different key
        world["_shares"] = v["shares"]
    if "midshares" in v:
        world["_midshares"] = v["midshares"]
    if "drill_kinds" in v:
        world["_drill_kinds"] = v["drill_kinds"]
    # the pipeline's own wiring of the foundation stages (with or without mid-training), on the variant's settings
    presets.PIPELINE_PRESETS[f"sweep:{variant}"] = {**p, "pretrain": {**p["pretrain"], "compile": False}}
    stages = [s for s in st.demo_stages(f"sweep:{variant}") if s.name in FOUNDATION]
    stages[0].config = world
    start = time.time()
    results = RunDir(out / variant).run(stages)
    res = {"variant": variant, "wall_s": round(time.time() - start, 1), "pretrain": results["pretrain"],
           "sft": results["sft"], "eval": {k: results["eval-sft"].get(k) for k in TARGETS}
           | {"oracle_score": results["eval-sft"].get("oracle_score")}}
    (out / variant / "result.json").write_text(json.dumps(res, indent=2))


def table(out: Path, variants: list[str]) -> None:
    cols = list(TARGETS) + ["oracle_score"]
    print("variant".ljust(14) + "".join(c[:10].rjust(11) for c in cols) + "   pt_tokens      params  wall_s")
    for v in variants:
        f = out / v / "result.json"
        if not f.exists():
            print(v.ljust(14) + "  (failed: see " + str(out / f"{v}.log") + ")")
            continue
        r = json.loads(f.read_text())
        row = "".join(f"{r['eval'][c]!s:>11}" for c in cols)
        pt = r["pretrain"]
        print(v.ljust(14) + row + f"{pt['tokens']:>12.0f}{pt['parameters']:>12}{r['wall_s']:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", default=["baseline"])
    ap.add_argument("--out", type=Path, default=Path("bench/results/sweep"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--preset", default="small", help="pipeline preset the variants change (tiny: a smoke test)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true", help="only print the table of finished variants")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    a = ap.parse_args()
    if a.list:
        for name, v in VARIANTS.items():
            print(f"{name:14} {json.dumps(v)}")
        return
    if a.one:
        run_variant(a.one, a.out, a.preset)
        return
    if a.table:
        table(a.out, a.variants)
        return
    unknown = [v for v in a.variants if not known(v)]
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
    table(a.out, a.variants)


if __name__ == "__main__":
    main()
