"""Feedback, moderation results, flags, and the triage queue an admin labels.

A thumbs-down or a flag opens a triage item for that message (one open item per message however many reasons
pile up). The admin labels it, may write the reply it should have been, and decides whether it goes into the
next round's data (`send`); chatforge.store.export turns labelled items into training files.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatforge.store.base import NotFound, StoreBase, StoreError, choice, iso
from chatforge.store.chats import path_to
from chatforge.store.models import Feedback, Flag, Message, ModerationResult, TriageItem

LABELS = ("jailbreak", "harmful_output", "false_fact", "over_refusal", "fine")
FLAG_SOURCES = ("moderation", "feedback", "user")
RATINGS = {1: 1, -1: -1, "up": 1, "down": -1}


def open_triage(s: Session, message: Message, reason: str, category: str = "") -> TriageItem:
    """The message's open item, made if there is none (the partial unique index settles races on PostgreSQL)."""
    q = select(TriageItem).where(TriageItem.message_id == message.id, TriageItem.status == "open")
    item = s.scalar(q)
    if item is None:
        try:
            with s.begin_nested():
                item = TriageItem(conversation_id=message.conversation_id, message_id=message.id, reason=reason,
                                  category=category, status="open", send=False, note="")
                s.add(item)
        except IntegrityError:
            item = s.scalar(q)
    if category and not item.category:
        item.category = category
    return item


def flag_dict(f: Flag) -> dict:
    return {"id": f.id, "conversation_id": f.conversation_id, "message_id": f.message_id, "source": f.source,
            "category": f.category, "detail": f.detail, "created": iso(f.created)}


def triage_dict(s: Session, t: TriageItem) -> dict:
    m = s.get(Message, t.message_id)
    path = path_to(s, m)
    bad = s.scalar(select(Feedback).where(Feedback.message_id == m.id, Feedback.rating < 0)
                   .order_by(Feedback.id.desc()).limit(1))
    flags = s.scalars(select(Flag).where(Flag.message_id == m.id).order_by(Flag.id))
    return {"id": t.id, "status": t.status, "reason": t.reason, "category": t.category,
            "conversation_id": t.conversation_id, "message_id": t.message_id,
            "messages": [{"id": x.id, "role": x.role, "content": x.content} for x in path],
            "reply": m.content if m.role == "assistant" else None, "model": m.model,
            "feedback": {"rating": bad.rating, "reason": bad.reason} if bad else None,
            "flags": [flag_dict(f) for f in flags], "label": t.label, "send": t.send, "note": t.note,
            "better_reply": t.better_reply, "reviewer_id": t.reviewer_id, "created": iso(t.created),
            "labelled": iso(t.labelled)}


class TriageMixin(StoreBase):
    def add_feedback(self, message_id: int, user_id: int | None, rating: int | str, reason: str = "") -> dict:
        """Thumbs up (+1) or down (-1) on a reply; a user's second vote on a reply replaces the first.
        A thumbs-down opens a triage item. Committed before returning."""
        rating = RATINGS.get(rating)
        if rating is None:
            raise StoreError("rating must be +1 or -1 ('up' or 'down')")
        with self.write() as s:
            m = s.get(Message, message_id)
            if m is None or m.role != "assistant":
                raise NotFound(f"no reply {message_id}")
            f = None if user_id is None else s.scalar(
                select(Feedback).where(Feedback.message_id == message_id, Feedback.user_id == user_id))
            if f is None:
                f = Feedback(message_id=message_id, user_id=user_id)
                s.add(f)
            f.rating, f.reason, f.created = rating, (reason or "")[:2000], self.now()
            item = open_triage(s, m, "thumbs_down") if rating < 0 else None
            s.flush()
            return {"id": f.id, "message_id": message_id, "user_id": user_id, "rating": rating, "reason": f.reason,
                    "created": iso(f.created), "triage_id": item.id if item else None}

    def add_moderation(self, text_role: str, categories: dict[str, float], flagged: bool, action: str,
                       message_id: int | None = None, request_id: str | None = None) -> dict:
        """Record a moderation verdict (call add_flag as well when it should reach triage)."""
        choice(text_role, ("input", "output"), "text_role")
        with self.write() as s:
            r = ModerationResult(text_role=text_role, categories={k: float(v) for k, v in categories.items()},
                                 flagged=bool(flagged), action=action, message_id=message_id, request_id=request_id)
            s.add(r)
            s.flush()
            return {"id": r.id, "text_role": text_role, "categories": r.categories, "flagged": r.flagged,
                    "action": action, "message_id": message_id, "request_id": request_id, "created": iso(r.created)}

    def add_flag(self, conversation_id: int | None, message_id: int | None, source: str, category: str = "",
                 detail: str = "") -> dict:
        """Flag a message (default: the chat's last current message) and open a triage item for it."""
        choice(source, FLAG_SOURCES, "source")
        with self.write() as s:
            if message_id is not None:
                m = s.get(Message, message_id)
                if m is None:
                    raise NotFound(f"no message {message_id}")
            else:
                m = s.scalar(select(Message).where(Message.conversation_id == conversation_id, Message.current)
                             .order_by(Message.id.desc()).limit(1))
            f = Flag(conversation_id=m.conversation_id if m else conversation_id, message_id=m.id if m else None,
                     source=source, category=category or "", detail=detail or "")
            s.add(f)
            item = open_triage(s, m, "flag", category or "") if m else None
            s.flush()
            return {**flag_dict(f), "triage_id": item.id if item else None}

    def triage_queue(self, status: str = "open", limit: int = 100, offset: int = 0) -> list[dict]:
        """Open items oldest first (a queue), labelled ones newest first; status "all" lists both."""
        choice(status, ("open", "labelled", "all"), "status")
        q = select(TriageItem)
        if status != "all":
            q = q.where(TriageItem.status == status)
        order = TriageItem.id.asc() if status == "open" else TriageItem.id.desc()
        with self.read() as s:
            return [triage_dict(s, t) for t in s.scalars(q.order_by(order).limit(limit).offset(offset))]

    def get_triage_item(self, item_id: int) -> dict | None:
        with self.read() as s:
            t = s.get(TriageItem, item_id)
            return triage_dict(s, t) if t else None

    def triage_counts(self) -> dict:
        with self.read() as s:
            rows = s.execute(select(TriageItem.status, func.count()).group_by(TriageItem.status)).all()
        return {"open": 0, "labelled": 0, **dict(rows)}

    def label_triage(self, item_id: int, label: str, reviewer_id: int | None, send: bool, note: str = "",
                     better_reply: str | None = None) -> dict | None:
        """Label an item (again, if need be); `send` puts it into the next round's data, `better_reply` is the
        reply it should have been (an SFT demonstration, and the chosen side of a comparison). None: no such item."""
        choice(label, LABELS, "label")
        with self.write() as s:
            t = s.get(TriageItem, item_id)
            if t is None:
                return None
            t.status, t.label, t.reviewer_id, t.send = "labelled", label, reviewer_id, bool(send)
            t.note, t.better_reply, t.labelled = note or "", (better_reply or "").strip() or None, self.now()
            s.flush()
            return triage_dict(s, t)
