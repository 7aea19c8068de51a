"""Can a base model learn to copy by look-up? Continue it on pure drill text and probe before and after.

    python bench/lookup_drill.py RUN OUT --drill sort --steps 600
    python bench/lookup_drill.py RUN OUT --drill mix --steps 800
    python bench/lookup_drill.py RUN OUT --drill chat-sort --steps 670   # then SFT OUT/model as the demo does

The drill is worksheet lines of one kind: "sort: 82, 21, 20 -> 20, 21, 82" (3 numbers), or "mix: 74, 23, 27, 88 ->
27, 88, 74, 23" (3-6 numbers in a random order, where only looking a number up by its first digit gets its second),
or chat logs of one task kind ("chat-sort", "chat-reverse", ...): a train-split request worded as users word it and
the gold reply, in the chat markup, which is where the SFT model needs the skill.
The model is RUN's base model (midtrain, else pretrain), continued with chatforge's pretraining loop at the
mid-training rate; OUT/model is the result (a normal HF model: SFT it as any other). Two probes, before and after:
worksheet sorting (bench/copy_probe.py) and, teacher-forced on fresh "mix:" lines, how often the model writes a
number's second digit right once its first digit is given.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from copy_probe import sort_probe
from transformers import AutoModelForCausalLM, AutoTokenizer

from chatforge.models.markup import DOC_END, chat_markup
from chatforge.train.pretrain import PretrainConfig, pretrain
from chatforge.world.families_tasks import TASKS, Task

LINES_PER_STEP = {"sort": 100, "mix": 67, "chat": 50}  # one step is 16 blocks of 128 tokens
DRILLS = ["sort", "mix"] + [f"chat-{kind}" for kind in TASKS]


def drill_line(kind: str, rng: random.Random) -> str:
    if kind.startswith("chat-"):  # as Task.ask words it (train phrasings only: the eval's stay unseen)
        p = Task().ask(None, rng, "train", kind=kind.removeprefix("chat-"))  # a task's request never reads the kb
        return chat_markup(p.messages + [{"role": "assistant", "content": p.meta["gold"]}]).strip()
    if kind == "sort":
        nums = rng.sample(range(10, 100), 3)
        return f"sort: {', '.join(map(str, nums))} -> {', '.join(map(str, sorted(nums)))}"
    nums = rng.sample(range(10, 100), rng.randint(3, 6))
    return f"mix: {', '.join(map(str, nums))} -> {', '.join(map(str, rng.sample(nums, len(nums))))}"


def lookup_probe(model, tok, n: int = 60, seed: int = 1) -> float:
    """Teacher-forced on fresh "mix:" lines: the share of second digits right after their first digit."""
    rng, right, total = random.Random(seed), 0, 0
    for _ in range(n):
        nums = rng.sample(range(10, 100), 4)
        ids = tok(f"Exercises:\nmix: {', '.join(map(str, nums))} -> {', '.join(map(str, rng.sample(nums, 4)))}",
                  return_tensors="pt").input_ids[0]
        with torch.no_grad():
            predicted = model(ids[None]).logits[0].argmax(-1)
        pieces = tok.convert_ids_to_tokens(ids.tolist())
        arrow = max(i for i, p in enumerate(pieces) if p == "Ġ->")
        for i in range(arrow + 1, len(ids) - 1):
            if pieces[i].startswith("Ġ") and pieces[i][1:].isdigit():  # a number's first digit: its second is next
                total += 1
                right += predicted[i].item() == ids[i + 1].item()
    return right / total


def probes(model_dir: Path, tok) -> dict:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    s = sort_probe(model, tok)
    return {"worksheet_sort": s["right"], "sort_wrong_by_place": round(s["wrong_by_place"], 3),
            "lookup_second_digit": round(lookup_probe(model, tok), 3), "sort_examples": s["examples"][:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--drill", choices=DRILLS, default="sort")
    ap.add_argument("--steps", type=int, default=600, help="about this many steps (the lines are drawn to fit)")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    a = ap.parse_args()
    base = next(a.run / st / "model" for st in ("midtrain", "pretrain") if (a.run / st / "model").is_dir())
    tok = AutoTokenizer.from_pretrained(a.run / "tokenizer")
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    with open(a.out / "drill.txt", "w") as f:
        chat = a.drill.startswith("chat-")
        for _ in range(a.steps * LINES_PER_STEP["chat" if chat else a.drill] // 10):
            lines = "\n".join(drill_line(a.drill, rng) for _ in range(10))
            f.write(("" if chat else "Exercises:\n") + lines + DOC_END + "\n")
    trained = pretrain(PretrainConfig(corpus=str(a.out / "drill.txt"), tokenizer=str(a.run / "tokenizer"),
                                      output_dir=str(a.out), seq_len=128, batch_size=16, epochs=1.0,
                                      learning_rate=a.learning_rate, warmup=0, weight_decay=0.01, save_every=200,
                                      init=str(base)))
    report = {"base": str(base), "drill": a.drill, "steps": trained.get("steps"), "seconds": trained.get("seconds"),
              "before": probes(base, tok), "after": probes(a.out / "model", tok)}
    (a.out / "drill.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
