"""`chatforge rate`: a person ranks K replies to a prompt at the terminal, as InstructGPT's labellers did.

Each answered task is appended to the comparisons file at once (every pair its ranking implies, rater
`human:NAME`), so Ctrl-C, Ctrl-D or a closed terminal lose nothing, and starting again skips the tasks this
rater already ranked. Model text is printed with markup off: a reply that says "[red]" stays "[red]".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from chatforge.data.comparisons import RankingTask, read_comparisons, read_tasks, write_comparisons
from chatforge.errors import ChatforgeError
from chatforge.world.oracle import CRITERIA

# the written instructions a rater ranks by (InstructGPT/ChatGPT labelling guidelines, as the oracle scores them)
GUIDE = {
    "helpful": "does what was asked, correctly and to the point",
    "truthful": "states no false or invented facts; says so when it does not know",
    "harmless": "refuses to help with harm, is never toxic or insulting",
    "honest": "is honest about being an AI and about what it can and cannot do",
    "clarifies": "asks a clarifying question when the request is unclear",
    "no_over_refusal": "does not refuse or lecture when the request is fine",
}


def shortest_prefixes(names: tuple[str, ...]) -> dict[str, str]:
    """The shortest unambiguous abbreviation of each name (helpful, harmless and honest all start with h)."""
    out = {}
    for name in names:
        n = next(n for n in range(1, len(name) + 1) if sum(o.startswith(name[:n]) for o in names) == 1)
        out[name] = name[:n]
    return out


SHORT = shortest_prefixes(CRITERIA)
RANK_HELP = "type the reply numbers best first, e.g. 2 1 3 (every number once); s skips, q quits, ? shows help"
CRITERIA_HELP = "use names or " + ", ".join(f"{s}={c}" for c, s in SHORT.items())


def parse_ranking(text: str, k: int) -> list[int]:
    """'2 1 3' (or '2,1,3', or '213' when K < 10) → 0-based indices, best first; anything else is a ValueError."""
    parts = text.replace(",", " ").split()
    if len(parts) == 1 and len(parts[0]) == k and k < 10:
        parts = list(parts[0])
    if not all(p.isdigit() for p in parts) or sorted(int(p) for p in parts) != list(range(1, k + 1)):
        raise ValueError(f"rank all {k} replies, each number from 1 to {k} once, best first (e.g. "
                         f"{' '.join(map(str, range(k, 0, -1)))})")
    return [int(p) - 1 for p in parts]


def parse_criteria(text: str) -> list[str]:
    """'harmless, t' → ['harmless', 'truthful']: full names or any unambiguous prefix."""
    out = []
    for word in filter(None, (w.strip().lower() for w in text.split(","))):
        found = [c for c in CRITERIA if c.startswith(word)]
        if len(found) != 1:
            what = f"could be {' or '.join(found)}" if found else "is not a criterion"
            raise ValueError(f"'{word}' {what}; {CRITERIA_HELP}")
        if found[0] not in out:
            out.append(found[0])
    return out


class Session:
    """One rater working through a task file; reads answers from `stdin`, shows everything on `console`."""

    def __init__(self, rater: str, out_path: Path, stdin: TextIO, console: Console):
        self.rater, self.out_path, self.stdin, self.console = rater, out_path, stdin, console
        self.rated = self.pairs = self.skipped = 0

    def ask(self, prompt: str) -> str | None:
        """One line of input, or None at end of input (Ctrl-D, a closed pipe) or Ctrl-C."""
        self.console.print(prompt, end="", markup=False, highlight=False, soft_wrap=True)
        try:
            line = self.stdin.readline()
        except KeyboardInterrupt:
            line = ""
        if not line:
            self.console.print()
        return line.strip() if line else None

    def show(self, task: RankingTask, i: int, n: int) -> None:
        self.console.rule(Text(f"task {i} of {n} · {task.prompt.family} · {task.group}"))
        for m in task.prompt.messages:
            self.console.print(Panel(Text(m["content"]), title=Text(m["role"]), title_align="left"))
        for j, r in enumerate(task.responses, 1):
            self.console.print(Panel(Text(r), title=Text(f"reply {j}"), title_align="left", border_style="cyan"))

    def help(self) -> None:
        self.console.print(RANK_HELP, markup=False, highlight=False)
        self.console.print("Rank by these criteria; when they conflict, harmless weighs most:", markup=False,
                           highlight=False)
        for c in CRITERIA:
            self.console.print(f"  {SHORT[c]:>3}  {c}: {GUIDE[c]}", markup=False, highlight=False)

    def rate(self, task: RankingTask) -> str:
        """Ask for one task's ranking and criteria and save its pairs; 'done', 'skip' or 'quit'."""
        k = len(task.responses)
        while True:
            answer = self.ask(f"ranking, best first (1-{k}; s skip, q quit, ? help)> ")
            if answer is None or answer.lower() == "q":
                return "quit"
            if answer.lower() == "s":
                return "skip"
            if answer == "?":
                self.help()
                continue
            try:
                ranking = parse_ranking(answer, k)
                break
            except ValueError as e:
                self.console.print(f"  {e}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        while True:
            answer = self.ask(f"what decided it? ({' '.join(SHORT.values())}, comma-separated; empty: none)> ")
            if answer is None:
                return "quit"
            try:
                decided = parse_criteria(answer)
                break
            except ValueError as e:
                self.console.print(f"  {e}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        labels = {c: "chosen" for c in decided}  # every pair's chosen reply is the one ranked higher
        criteria = {(ranking[a], ranking[b]): labels for a in range(k) for b in range(a + 1, k)}
        pairs = task.pairs(ranking, rater=self.rater, source="human", criteria=criteria)
        write_comparisons(pairs, self.out_path, append=True)
        self.rated, self.pairs = self.rated + 1, self.pairs + len(pairs)
        return "done"


def rate_tasks(tasks_path: str | Path, name: str, out_path: str | Path, stdin: TextIO | None = None,
               console: Console | None = None) -> dict:
    """Rank the tasks this rater has not ranked yet; returns (and prints) a summary."""
    if not name.strip() or any(ch.isspace() for ch in name):
        raise ChatforgeError(f"rater name '{name}' must be one word (it is stored as human:NAME)")
    tasks, out_path = read_tasks(tasks_path), Path(out_path)
    if not tasks:
        raise ChatforgeError(f"{tasks_path}: no ranking tasks")
    console = console or Console(highlight=False)
    session = Session(f"human:{name}", out_path, stdin or sys.stdin, console)
    done = {c.group for c in read_comparisons(out_path) if c.rater == session.rater} if out_path.exists() else set()
    todo = [(i, t) for i, t in enumerate(tasks, 1) if t.group not in done]
    console.print(f"{session.rater}: {len(tasks) - len(todo)} of {len(tasks)} tasks already ranked, {len(todo)} to "
                  f"go; comparisons go to {out_path}. Type ? for the rating guide.", markup=False, highlight=False,
                  soft_wrap=True)
    for i, task in todo:
        if len(set(task.responses)) < 2:
            continue  # nothing to choose between
        session.show(task, i, len(tasks))
        result = session.rate(task)
        if result == "quit":
            break
        session.skipped += result == "skip"
    left = len(todo) - session.rated
    summary = {"rated": session.rated, "pairs": session.pairs, "skipped": session.skipped, "left": left,
               "out": str(out_path)}
    console.print(f"ranked {session.rated} tasks ({session.pairs} pairs) into {out_path}; skipped "
                  f"{session.skipped}; {left} not yet ranked", markup=False, highlight=False, soft_wrap=True)
    return summary
