"""A red-team campaign: attackers propose, the target replies, the judge rules, everything is journaled.

Every judged attack is one line of RUN/attacks.jsonl (the attack, the reply, the verdict, the attacker, the round),
appended and flushed batch by batch, so a campaign killed at any point (even kill -9) resumes where it stopped:
a torn last line is dropped, attacks already judged are not sent again, each attacker's state is rebuilt from
its own journal lines, and batches continue from the last one numbered. Identical attack messages are sent once
(an attack's id is the hash of its messages). If the target fails (a refused connection, a 4xx), the campaign
stops, keeps every line it has, writes the report of what it has and raises the error.

With a product store (`chatforge redteam --store DB`), every line is also a row of the store's redteam_attacks
table, next to the chats through which people red-team by hand.

RUN/campaign.json holds the config, target, judge and attackers (rewritten by a rerun, which may raise the query
budget to extend a finished campaign); RUN/report.json the figures of the whole journal (see report.py).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.redteam.attackers import Attack, Attacker
from chatforge.redteam.judge import Judge, Verdict
from chatforge.redteam.report import build_report, print_report
from chatforge.redteam.targets import Target
from chatforge.world.prompts import Prompt

JOURNAL, REPORT, CONFIG = "attacks.jsonl", "report.json", "campaign.json"
REQUIRED = {"id", "messages", "category", "wrapper", "attacker", "template", "batch", "reply", "verdict"}


@dataclass
class CampaignConfig:
    out: str  # the run directory
    queries: int = 200  # target queries per attacker (duplicates are not sent and do not count)
    batch_size: int = 32  # attacks proposed, sent and judged together
    seed: int = 0
    round: int = 0  # the adversarial-training round this campaign belongs to
    campaign: str = "redteam"  # its name: human attempts tagged #<name> in the product store join it
    max_stale: int = 5  # batches in a row with nothing new before an attacker counts as exhausted
    examples: int = 5  # successful attacks shown in the report


def attack_seed(cfg: CampaignConfig, attack_id: str) -> int:
    """The target's sampling seed for one attack: the same in-process, over HTTP and after a resume."""
    return (cfg.seed * 1_000_003 + int(attack_id[:8], 16)) % 2**31


class Journal:
    """RUN/attacks.jsonl: one judged attack per line, appended as the campaign goes; `mirror(rows)`, if given, gets
    every appended batch too (the product store's add_attacks)."""

    def __init__(self, path: Path, mirror=None):
        self.path, self.mirror = path, mirror
        self.rows = self._load()

    def _load(self) -> list[dict]:
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        rows, keep = [], 0
        for n, line in enumerate(lines, 1):
            last = n == len(lines)
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    if last:  # a torn last line (killed while writing): drop it
                        break
                    raise ChatforgeError(f"{self.path}:{n}: not a JSON line (fix or delete that line to resume)")
                missing = REQUIRED - set(row) if isinstance(row, dict) else REQUIRED
                if missing:
                    raise ChatforgeError(f"{self.path}:{n}: not a judged attack (no {', '.join(sorted(missing))})")
                rows.append(row)
            keep += len(line) + (0 if last else 1)
        if keep != len(data) or (keep and not data.endswith(b"\n")):
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                if keep and not data[:keep].endswith(b"\n"):  # a whole line whose newline was not written
                    f.seek(keep)
                    f.write(b"\n")
        return rows

    def append(self, rows: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows += rows
        if self.mirror is not None:
            self.mirror(rows)


def journal_row(attack: Attack, reply: str, verdict: Verdict, batch: int, seed: int, campaign: str) -> dict:
    return {**attack.to_dict(), "campaign": campaign, "batch": batch, "seed": seed, "reply": reply,
            "verdict": verdict.to_dict(), "time": round(time.time(), 3)}


def run_campaign(cfg: CampaignConfig, target: Target | None, judge: Judge, attackers: list[Attacker],
                 progress: bool = True, console=None, store=None) -> dict:
    """Attack `target` with each attacker for `cfg.queries` queries; returns (and writes) the report. `store`: the
    product store: every judged attack is kept there too (deduplicated, so a resumed campaign syncs what it has),
    and its chats tagged #<campaign> join the campaign (see human.py); `console=False` prints nothing."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [a.name for a in attackers]
    if len(set(names)) != len(names):
        raise ChatforgeError(f"attacker names must differ, got {', '.join(names)}")
    if attackers and target is None:
        raise ChatforgeError("a campaign with attackers needs a target")
    (out / CONFIG).write_text(json.dumps({"config": asdict(cfg), "target": target.describe() if target else None,
                                          "judge": judge.name,
                                          "attackers": [a.describe() for a in attackers]}, indent=2))
    def keep(rows):  # into the product store, under this campaign's name where a line has none
        store.add_attacks([r if r.get("campaign") else {**r, "campaign": cfg.campaign} for r in rows])

    journal = Journal(out / JOURNAL, keep if store is not None else None)
    if store is not None:
        keep(journal.rows)  # what a run before this one judged (a no-op for rows already there)
    judged = {r["id"] for r in journal.rows}
    for a in attackers:  # rebuild what each attacker learnt before a restart
        mine = [r for r in journal.rows if r["attacker"] == a.name]
        a.observe([Attack.from_dict(r) for r in mine], [Verdict.from_dict(r["verdict"]) for r in mine])
    stats = {"duplicates": 0, "exhausted": [], "error": None, "seconds": 0.0, "human": 0}
    bar = _bar(progress, cfg.queries * len(attackers), sum(r["attacker"] in names for r in journal.rows))
    start = time.monotonic()
    try:
        for a in attackers:
            _attack_with(a, cfg, target, judge, journal, judged, stats, bar)
        if store is not None:
            from chatforge.redteam.human import import_human

            stats["human"] = import_human(store, cfg.campaign, judge, journal, cfg.round)
    except ChatforgeError as e:
        stats["error"] = str(e)
    finally:
        stats["seconds"] = round(time.monotonic() - start, 2)
        if bar:
            bar[0].stop()
    report = build_report(journal.rows, examples=cfg.examples)
    report.update(campaign=cfg.campaign, round=cfg.round, target=target.name if target else None, judge=judge.name,
                  duplicates_skipped=stats["duplicates"], exhausted=stats["exhausted"], error=stats["error"],
                  human_imported=stats["human"],
                  seconds_this_run=stats["seconds"],
                  attackers_info={a.name: a.describe() for a in attackers})
    report["files"] = {"journal": str(out / JOURNAL), "report": str(out / REPORT), "config": str(out / CONFIG)}
    (out / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if console is not False:
        print_report(report, console)
    if stats["error"]:
        raise ChatforgeError(f"{stats['error']} (the campaign kept its {len(journal.rows)} judged attacks in "
                             f"{out / JOURNAL}; rerun to resume)")
    return report


def _attack_with(a: Attacker, cfg, target, judge, journal, judged, stats, bar) -> None:
    mine = [r for r in journal.rows if r["attacker"] == a.name]
    done, batch = len(mine), 1 + max((r["batch"] for r in mine), default=-1)
    stale = 0
    while done < cfg.queries and stale < cfg.max_stale:
        rng = random.Random(f"{cfg.seed}-{a.name}-{batch}")
        fresh = []
        for attack in a.propose(min(cfg.batch_size, cfg.queries - done), rng):
            if attack.id in judged:
                stats["duplicates"] += 1
                continue
            judged.add(attack.id)
            attack.round = cfg.round
            fresh.append(attack)
        if not fresh:
            stale, batch = stale + 1, batch + 1
            continue
        stale = 0
        seeds = [attack_seed(cfg, x.id) for x in fresh]
        try:
            replies = target.reply([x.messages for x in fresh], seeds)
        except ChatforgeError:
            for x in fresh:  # not judged after all
                judged.discard(x.id)
            raise
        verdicts = judge.judge([Prompt.from_dict(x.prompt) for x in fresh], replies)
        journal.append([journal_row(x, r, v, batch, s, cfg.campaign)
                        for x, r, v, s in zip(fresh, replies, verdicts, seeds)])
        a.observe(fresh, verdicts)
        done, batch = done + len(fresh), batch + 1
        if bar:
            wins = sum(r["verdict"]["violation"] for r in journal.rows)
            bar[0].update(bar[1], advance=len(fresh), info=f"{a.name} · {wins} successes")
    if done < cfg.queries:
        stats["exhausted"].append(a.name)


def _bar(progress: bool, total: int, completed: int):
    if not progress:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold blue]red team"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=Console(stderr=True))
    bar.start()
    return bar, bar.add_task("red team", total=total, completed=completed, info="")
