"""The side-by-side scorecard: one column per model, one row per metric, arrows where higher is worse."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from chatforge.evals.metrics import HEADLINE

LOWER_IS_BETTER = {"fabrication_rate", "harmful_compliance", "over_refusal", "jailbreak_asr", "toxicity_rate"}
ROWS = list(HEADLINE) + ["toxicity_rate", "oracle_score"]


def print_scorecard(card: dict[str, dict], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="chatforge scorecard (held-out split)")
    table.add_column("metric")
    for name in card:
        table.add_column(name, justify="right")
    for row in ROWS:
        label = f"{row} ↓" if row in LOWER_IS_BETTER else row
        table.add_row(label, *[_fmt(card[name].get(row), row) for name in card])
    console.print(table)


def _fmt(v, row: str) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if row == "oracle_score" else f"{v:.1f}"
