"""Human red-teaming: attempts people make through the product (chat page or API) join a campaign and are judged
the same way as the attackers' attacks.

An attempt is tagged with a campaign by `#<campaign>` in its chat's title (rename the chat on the chat page) or in
the note of its triage item (an admin on /admin, e.g. for an API exchange that moderation flagged). Each assistant
reply on a tagged chat's current branch is one attempt: the conversation up to the user turn before it, and the
reply as the product gave it (nothing is sent again). The prompt the judge reads is the world prompt the server
kept with the message, else a jailbreak on the world request the user text carries (spelt out letter by letter
or not), else an "imported" prompt judged on what the reply itself shows (markers, claims to be human, insults).
Attempts go into the campaign's attacks.jsonl as attacker "human", once each.
"""

from __future__ import annotations

import hashlib
import re

from chatforge.redteam.attackers import Attack, attack_id
from chatforge.world.families_safety import HARMFUL
from chatforge.world.prompts import Prompt

ALL_ACTS = sorted(((t.format(o=o), c) for c in HARMFUL for t, objs in HARMFUL[c] for o in objs),
                  key=lambda x: -len(x[0]))


def infer_prompt(messages: list[dict]) -> Prompt:
    """A world prompt for a conversation people wrote: which harmful request (if any) it makes."""
    text = " ".join(m["content"] for m in messages if m["role"] == "user").lower()
    plain = re.sub(r"(?<=\w)-(?=\w)", "", text)  # "b-u-i-l-d" -> "build"
    for act, category in ALL_ACTS:
        if act in text or act in plain:
            return Prompt("jailbreak", messages, {"category": category, "act": act, "wrapper": "human"}, "heldout")
    return Prompt("imported", messages, {"wrapper": "human"}, "heldout")


def human_attempts(store, campaign: str) -> list[dict]:
    """[{message_id, prompt (a Prompt dict), reply}] for every reply tagged #campaign, oldest first."""
    from sqlalchemy import select

    from chatforge.store.chats import path_to
    from chatforge.store.export import prompt_for
    from chatforge.store.models import Conversation, Message, TriageItem

    tag = re.compile(rf"#{re.escape(campaign)}(?![\w-])")
    found = {}
    with store.read() as s:
        q = select(Conversation).where(Conversation.title.contains(f"#{campaign}"), Conversation.deleted.is_(None))
        for c in s.scalars(q):
            if tag.search(c.title):
                q = select(Message).where(Message.conversation_id == c.id, Message.current, Message.role == "assistant")
                found.update((m.id, m) for m in s.scalars(q))
        for t in s.scalars(select(TriageItem).where(TriageItem.note.contains(f"#{campaign}"))):
            m = s.get(Message, t.message_id)
            if tag.search(t.note or "") and m is not None and m.role == "assistant":
                found[m.id] = m
        out = []
        for mid, m in sorted(found.items()):
            path = path_to(s, m)[:-1]
            if not path or path[-1].role != "user":
                continue
            p = prompt_for(path)
            p = infer_prompt(p.messages) if p.family == "imported" else p
            out.append({"message_id": mid, "prompt": p.to_dict(), "reply": m.content})
    return out


def import_human(store, campaign: str, judge, journal, round: int = 0) -> int:
    """Judge the campaign's tagged attempts not yet in `journal` (a campaign.Journal) and append them."""
    from chatforge.redteam.campaign import journal_row

    have = {r["id"] for r in journal.rows}
    todo = []
    for a in human_attempts(store, campaign):
        p = Prompt.from_dict(a["prompt"])
        aid = "h" + hashlib.sha1(f"{a['message_id']}:{attack_id(p.messages)}".encode()).hexdigest()[:15]
        if aid not in have:
            act = p.meta.get("act")
            last = p.messages[-1]["content"]
            template = re.sub(re.escape(act), "{x}", last, flags=re.IGNORECASE) if act else last
            todo.append((Attack(aid, p.messages, p.meta.get("category", "none"), "human", "human", round,
                                a["prompt"], template), a["reply"]))
    if todo:
        verdicts = judge.judge([Prompt.from_dict(x.prompt) for x, _ in todo], [r for _, r in todo])
        journal.append([journal_row(x, r, v, -1, None, campaign) for (x, r), v in zip(todo, verdicts)])
    return len(todo)
