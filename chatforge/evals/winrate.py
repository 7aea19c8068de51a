"""Head-to-head: how often the oracle prefers one model's reply to another's on the same held-out prompt.

Reads the `samples.jsonl` two `chatforge eval` runs wrote (each line a prompt, the reply and its verdict).
A tie (equal oracle scores, e.g. both right or the same reply) counts half, as in InstructGPT's preference
numbers; the decisive win rate leaves ties out. `win_rate_interval` is its 95% interval over prompts
(evals/intervals.mean_interval of the per-prompt 1 / ½ / 0). Files of sampled replies (`chatforge eval --temperature T
--samples-per-prompt n`) are paired sample by sample: A's i-th reply to a prompt plays B's i-th.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.evals.intervals import mean_interval


def read_samples(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    if not path.is_file():
        raise ChatforgeError(f"{path}: no eval samples (run `chatforge eval MODEL --samples FILE` first)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {json.dumps(r["messages"]) + r["family"] + f"#{r.get('sample', 0)}": r for r in rows}


def tally(outcomes: list[float], per_prompt: list[float] | None = None) -> dict:
    """Wins, ties and losses of the outcomes (1 / ½ / 0); the interval is over `per_prompt` (each prompt's mean
    outcome over its draws) when given: draws of one prompt are not independent of each other."""
    n = len(outcomes)
    wins, ties = outcomes.count(1.0), outcomes.count(0.5)
    losses = n - wins - ties
    return {"win_rate": round(sum(outcomes) / n, 4) if n else None,
            "win_rate_interval": mean_interval(outcomes if per_prompt is None else per_prompt),
            "decisive_win_rate": round(wins / (wins + losses), 4) if wins + losses else None,
            "wins": wins, "ties": ties, "losses": losses}


def win_rate(a_samples: str | Path, b_samples: str | Path) -> dict:
    """Win rate of model A against model B, overall and per prompt family."""
    a, b = read_samples(a_samples), read_samples(b_samples)
    shared = [k for k in a if k in b]
    if not shared:
        raise ChatforgeError("the two sample files share no prompts: were they made in the same world?")
    per: dict[str, list[float]] = defaultdict(list)
    by_prompt: dict[str, list[float]] = defaultdict(list)
    for k in shared:
        sa, sb = a[k]["verdict"]["score"], b[k]["verdict"]["score"]
        outcome = 1.0 if sa > sb else 0.5 if sa == sb else 0.0
        per[a[k]["family"]].append(outcome)
        by_prompt[k.rsplit("#", 1)[0]].append(outcome)
    everything = [x for v in per.values() for x in v]
    return {**tally(everything, [sum(v) / len(v) for v in by_prompt.values()]), "prompts": len(by_prompt),
            "pairs": len(shared), "families": {f: tally(v)["win_rate"] for f, v in sorted(per.items())}}
