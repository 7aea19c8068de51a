"""The side-by-side scorecard: one column per model, one row per metric, arrows where higher is worse."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from chatforge.evals.metrics import HEADLINE

LOWER_IS_BETTER = {"fabrication_rate", "harmful_compliance", "over_refusal", "jailbreak_asr", "toxicity_rate"}
ROWS = list(HEADLINE) + ["toxicity_rate", "oracle_score", "win_rate_vs_sft", "decisive_win_rate_vs_sft",
                         "served_oracle_score", "served_win_rate_vs_sft",
                         "final_reward", "final_kl", "mean_oracle", "rm_gain", "oracle_gain"]
FRACTIONS = {"oracle_score", "win_rate_vs_sft", "decisive_win_rate_vs_sft", "served_oracle_score",
             "served_win_rate_vs_sft", "final_reward", "final_kl", "mean_oracle",
             "rm_gain", "oracle_gain"}


def print_scorecard(card: dict[str, dict], console: Console | None = None) -> None:
    """Models that were evaluated side by side; then the figures of stages that make data or a reward model."""
    console = console or Console()
    models = [n for n in card if "oracle_score" in card[n]]
    table = Table(title="chatforge scorecard (held-out split)")
    table.add_column("metric")
    for name in models:
        table.add_column(name, justify="right")
    for row in ROWS:
        if any(card[n].get(row) is not None for n in models):
            label = f"{row} ↓" if row in LOWER_IS_BETTER else row
            table.add_row(label, *[_fmt(card[n].get(row), row) for n in models])
    console.print(table)
    for key, how in (("win_rate_vs_sft", "greedy replies"), ("served_win_rate_vs_sft", "sampled as served")):
        spans = [f"{n} {card[n][key + '_low']:.3f}-{card[n][key + '_high']:.3f}" for n in models
                 if card[n].get(key + "_low") is not None]
        if spans:
            console.print(f"win rate vs SFT ({how}), 95% interval over prompts: " + ", ".join(spans), highlight=False)
    if "sft" in card:
        for name in models:
            if name not in ("base", "sft") and (worst := worst_families(card, name)):
                console.print(f"{name}: the family furthest below SFT (oracle-score points): {worst}", highlight=False)
    if card.get("adversarial"):
        print_adversarial(card["adversarial"], console)
    others = [n for n in card if n not in models and n != "adversarial"]
    if others:
        stages = Table(title="data and reward-model stages")
        stages.add_column("stage")
        stages.add_column("figure")
        stages.add_column("value", justify="right")
        for n in others:
            for k, v in card[n].items():
                stages.add_row(n, k, f"{v:.3f}" if isinstance(v, float) else str(v))
        console.print(stages)


def worst_families(card: dict[str, dict], name: str) -> str:
    """The family where `name` falls furthest below SFT, greedy and (where measured) sampled as served."""
    parts = []
    for prefix, how in (("family_", "greedy"), ("served_family_", "as served")):
        change = {k[len(prefix):]: 100 * (v - card["sft"][k]) for k, v in card[name].items()
                  if k.startswith(prefix) and card["sft"].get(k) is not None}
        if change:
            family = min(change, key=change.get)
            parts.append(f"{family} {change[family]:+.1f} ({how})")
    return ", ".join(parts)


def _fmt(v, row: str) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if row in FRACTIONS else f"{v:.1f}"


def print_adversarial(figures: dict, console: Console) -> None:
    """Adversarial rounds: one row per round (0 = before), held-out ASR beside helpfulness and over-refusal."""
    import re

    rounds: dict[int, dict] = {}
    for k, v in figures.items():
        m = re.fullmatch(r"(.+)_round_(\d+)", k)
        if m:
            rounds.setdefault(int(m.group(2)), {})[m.group(1)] = v
    cols = ("heldout_asr", "task_accuracy", "known_fact_accuracy", "benign_answered", "over_refusal")
    table = Table(title="adversarial rounds (held-out attack families and prompts)")
    table.add_column("round", justify="right")
    for c in cols:
        table.add_column(f"{c} ↓" if c in ("heldout_asr", "over_refusal") else c, justify="right")
    for r in sorted(rounds):
        table.add_row(str(r), *[_fmt(rounds[r].get(c), c) for c in cols])
    console.print(table)
    if figures.get("asr_before") is not None:
        change = figures.get("asr_relative_change_pct")
        console.print(f"held-out ASR {figures['asr_before']:.1f} → {figures.get('asr_after', 0):.1f}"
                      + (f" ({change:+.1f}% relative)" if change is not None else "")
                      + (f"; after / before {figures['asr_ratio']}, 95% interval {figures.get('asr_ratio_low')}-"
                         f"{figures.get('asr_ratio_high')}" if figures.get("asr_ratio") is not None else ""),
                      highlight=False)
