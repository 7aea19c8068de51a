"""`chatforge export`: the store's feedback as the files the training stages read, unchanged.

- sft.jsonl          {"messages": [...]} (chatforge.data.conversations): a triage item's better reply, sent to
                     the next round by its reviewer, and thumbs-up replies (complete, unflagged, not thumbed
                     down, chat not deleted), each with the conversation that led to it.
- preferences.jsonl  chatforge Comparisons (chatforge.data.comparisons.read_comparisons): side-by-side votes and
                     rater rankings as stored, and each sent better reply as `chosen` against the bad reply.
- redteam.jsonl      {"messages", "label", "category", "reply", "time"}: sent items labelled jailbreak or
                     harmful_output; `messages` is the conversation up to the user turn, `reply` what the model said.

Prompts from the chat UI have family "imported", unless the user message's meta holds the Prompt it was asked
as (meta["prompt"] = {"family", "meta", ...}), as when the server replays world prompts.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from chatforge.data.comparisons import Comparison, write_comparisons
from chatforge.data.conversations import validate
from chatforge.errors import ChatforgeError
from chatforge.store.base import as_utc, iso
from chatforge.store.chats import path_to
from chatforge.store.models import ComparisonRow, Conversation, Feedback, Flag, Message, TriageItem, User
from chatforge.world.prompts import Prompt

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
LABEL_CRITERIA = {"false_fact": "truthful", "over_refusal": "no_over_refusal", "harmful_output": "harmless",
                  "jailbreak": "harmless"}
INCOMPLETE = ("length", "stopped", "cancelled", "error")


def parse_since(text: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """'7d', '24h', '30m', '2w' (that long ago), an ISO date or time (UTC unless it says), or None/'' for all."""
    if text is None or isinstance(text, datetime):
        return as_utc(text) if text else None
    text = text.strip()
    if not text or text == "all":
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if m:
        return (now or datetime.now(timezone.utc)) - timedelta(**{UNITS[m[2]]: float(m[1])})
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ChatforgeError(f"since: expected a duration (7d, 24h, 30m) or an ISO date/time (2026-11-01), "
                             f"got '{text}'") from None


def turns(path: list[Message]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in path]


def prompt_for(path: list[Message]) -> Prompt:
    """The Prompt of a conversation that ends with a user turn: the one it was asked as, if the server kept it."""
    known = (path[-1].meta or {}).get("prompt")
    if isinstance(known, dict) and known.get("family") and isinstance(known.get("meta"), dict):
        return Prompt(known["family"], turns(path), known["meta"], known.get("split", "train"))
    return Prompt("imported", turns(path), split="train")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)


def triage_rows(s, since):
    q = select(TriageItem).where(TriageItem.status == "labelled", TriageItem.send)
    if since is not None:
        q = q.where(TriageItem.labelled >= since)
    for t in s.scalars(q.order_by(TriageItem.id)):
        m = s.get(Message, t.message_id)
        path = path_to(s, m)
        prompt = path[:-1] if m.role == "assistant" else path
        reviewer = s.get(User, t.reviewer_id) if t.reviewer_id else None
        yield t, m, prompt, reviewer.name if reviewer else "admin"


def thumbs_up_rows(s, since) -> list[dict]:
    up = select(Feedback.message_id).where(Feedback.rating > 0)
    if since is not None:
        up = up.where(Feedback.created >= since)
    q = (select(Message).join(Conversation).where(Message.id.in_(up), Conversation.deleted.is_(None))
         .order_by(Message.id))
    skip = set(s.scalars(select(Feedback.message_id).where(Feedback.rating < 0)))
    skip |= set(s.scalars(select(Flag.message_id).where(Flag.message_id.is_not(None))))
    skip |= set(s.scalars(select(TriageItem.message_id).where(TriageItem.label.is_(None) |
                                                              (TriageItem.label != "fine"))))
    rows = []
    for m in s.scalars(q):
        if m.id in skip or m.finish_reason in INCOMPLETE:
            continue
        path = path_to(s, m)
        rows.append({"ids": [x.id for x in path], "messages": turns(path), "source": "thumbs_up",
                     "conversation_id": m.conversation_id, "message_id": m.id})
    # a reply whose conversation another exported row continues is in that row already
    inner = {i for r in rows for i in r["ids"][:-1]}
    return [{k: v for k, v in r.items() if k != "ids"} for r in rows if r["ids"][-1] not in inner]


def export(store, out_dir: str | Path, since: datetime | str | None = None) -> dict:
    """Write sft.jsonl, preferences.jsonl and redteam.jsonl into out_dir from data since `since` (all if None);
    returns {"files": {name: path}, "counts": {name: rows}, "since": iso or None}."""
    since = parse_since(since)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sft, comparisons, redteam = [], {}, []
    with store.read() as s:
        for t, m, prompt, reviewer in triage_rows(s, since):
            if t.label in ("jailbreak", "harmful_output"):
                category = t.category or s.scalar(select(Flag.category).where(
                    Flag.message_id == m.id, Flag.category != "").limit(1)) or ""
                redteam.append({"messages": turns(prompt), "label": t.label, "category": category,
                                "reply": m.content if m.role == "assistant" else None, "time": iso(t.labelled),
                                "triage_id": t.id, "conversation_id": t.conversation_id})
            if not t.better_reply or not prompt or prompt[-1].role != "user":
                continue
            sft.append({"messages": turns(prompt) + [{"role": "assistant", "content": t.better_reply}],
                        "source": "triage", "label": t.label, "triage_id": t.id})
            if m.role == "assistant" and m.content != t.better_reply:
                criterion = LABEL_CRITERIA.get(t.label)
                c = Comparison(prompt_for(prompt), t.better_reply, m.content, f"human:{reviewer}",
                               {criterion: "chosen"} if criterion else {}, None, f"triage-{t.id}", "human",
                               m.model or "", iso(t.labelled))
                comparisons[c.id] = c
        sft += thumbs_up_rows(s, since)
        q = select(ComparisonRow.data).order_by(ComparisonRow.id)
        if since is not None:
            q = q.where(ComparisonRow.created >= since)
        for d in s.scalars(q):
            c = Comparison.from_dict(d)
            comparisons.setdefault(c.id, c)
    sft = [r for r in sft if valid(r["messages"])]
    files = {"sft": out / "sft.jsonl", "preferences": out / "preferences.jsonl", "redteam": out / "redteam.jsonl"}
    write_jsonl(files["sft"], sft)
    write_comparisons(list(comparisons.values()), files["preferences"].with_suffix(".tmp"))
    os.replace(files["preferences"].with_suffix(".tmp"), files["preferences"])
    write_jsonl(files["redteam"], redteam)
    return {"files": {k: str(v) for k, v in files.items()},
            "counts": {"sft": len(sft), "preferences": len(comparisons), "redteam": len(redteam)},
            "since": iso(since)}


def valid(messages: list[dict]) -> bool:
    try:
        validate(messages)
        return True
    except ValueError:
        return False
