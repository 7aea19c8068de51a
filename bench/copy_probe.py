"""Where a model fails to copy from the prompt: the diagnosis behind the tasks' low accuracy (bench/recipe_sweep.py).

    python bench/copy_probe.py RUN [--stage sft] [--tasks sort convert add sub]

1. Teacher-forced on the gold replies of RUN's held-out task prompts, the tokens the model would get wrong (shown as
   [gold|predicted]), per task kind: a number's second digit wrong while its first is right is a failed look-up.
2. The base model (midtrain, else pretrain) on worksheet lines it saw thousands of: "sort: 89, 42, 55 ->". The share
   right, and how many of the wrong answers put the second digits back in the question's order ("49, 52, 85"):
   copying by place in the list instead of by looking the number up.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def teacher_forced(model, tok, messages: list[dict], gold: str) -> tuple[str, int]:
    """The gold reply's tokens, each wrong prediction as [gold|predicted]; and the number of wrong tokens."""
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(prompt + gold, return_tensors="pt").input_ids
    n = len(tok(prompt).input_ids)
    with torch.no_grad():
        predicted = model(ids).logits[0, n - 1:-1].argmax(-1).tolist()
    shown, wrong = [], 0
    for t, p in zip(ids[0, n:].tolist(), predicted):
        g = tok.convert_ids_to_tokens(t)
        shown.append(g if t == p else f"[{g}|{tok.convert_ids_to_tokens(p)}]")
        wrong += t != p
    return " ".join(shown), wrong


def sort_probe(model, tok, n: int = 60, seed: int = 0) -> dict:
    rng, right, by_place, shown = random.Random(seed), 0, 0, []
    for _ in range(n):
        nums = rng.sample(range(10, 100), 3)
        ids = tok(f"Exercises:\nsort: {', '.join(map(str, nums))} ->", return_tensors="pt").input_ids
        out = tok.decode(model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:])
        got = out.strip().split("\n")[0]
        want = ", ".join(map(str, sorted(nums)))
        # tens digits sorted, second digits in the question's order
        tens_sorted = sorted(x // 10 for x in nums)
        placed = ", ".join(str(10 * t + x % 10) for t, x in zip(tens_sorted, nums))
        right += got.startswith(want)
        by_place += not got.startswith(want) and got.startswith(placed)
        if len(shown) < 6:
            shown.append(f"{nums} -> {got}")
    return {"right": right / n, "wrong_by_place": by_place / max(1, n - right), "examples": shown}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--stage", default="sft", help="the chat model's stage (its eval-STAGE samples are read)")
    ap.add_argument("--tasks", nargs="*", default=["sort", "convert", "add", "sub", "reverse"])
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.run / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(a.run / a.stage / "model").eval()
    wrong_by_kind: Counter = Counter()
    for line in open(a.run / f"eval-{a.stage}" / "samples.jsonl"):
        s = json.loads(line)
        if s["family"] != "task" or s["meta"]["task"] not in a.tasks:
            continue
        shown, wrong = teacher_forced(model, tok, s["messages"], s["meta"]["gold"])
        wrong_by_kind[s["meta"]["task"]] += wrong > 0
        print(f"{s['meta']['task']:8} {shown}")
    print("prompts with a wrong token, by kind:", dict(wrong_by_kind))
    base = next(a.run / st / "model" for st in ("midtrain", "pretrain") if (a.run / st / "model").is_dir())
    print(f"worksheet sort, {base.parent.name} model:",
          json.dumps(sort_probe(AutoModelForCausalLM.from_pretrained(base).eval(), tok), indent=1))


if __name__ == "__main__":
    main()
