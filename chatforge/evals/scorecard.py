"""The side-by-side scorecard: one column per model, one row per metric, arrows where higher is worse."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from chatforge.evals.metrics import HEADLINE

LOWER_IS_BETTER = {"fabrication_rate", "harmful_compliance", "over_refusal", "jailbreak_asr", "toxicity_rate"}
ROWS = list(HEADLINE) + ["toxicity_rate", "oracle_score", "win_rate_vs_sft", "decisive_win_rate_vs_sft",
                         "final_reward", "final_kl", "mean_oracle", "rm_gain", "oracle_gain"]
FRACTIONS = {"oracle_score", "win_rate_vs_sft", "decisive_win_rate_vs_sft", "final_reward", "final_kl", "mean_oracle",
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
    others = [n for n in card if n not in models]
    if others:
        stages = Table(title="data and reward-model stages")
        stages.add_column("stage")
        stages.add_column("figure")
        stages.add_column("value", justify="right")
        for n in others:
            for k, v in card[n].items():
                stages.add_row(n, k, f"{v:.3f}" if isinstance(v, float) else str(v))
        console.print(stages)


def _fmt(v, row: str) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if row in FRACTIONS else f"{v:.1f}"
