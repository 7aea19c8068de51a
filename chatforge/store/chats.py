"""Conversations and their messages.

Messages form a tree through `parent_id`; the `current` flag marks the branch the user sees. A regenerated
reply (`replaces=`) takes the old reply's place: the old one and everything after it stay stored, off the
branch. Side-by-side replies are siblings: the first on the branch, the second added with `current=False` (or
`sibling_of=`), until `select_reply` keeps one. Deleting a chat hides it from its user; the rows stay for abuse
review until `purge_deleted`.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from chatforge.store.base import NotFound, StoreBase, StoreError, choice, iso
from chatforge.store.models import Conversation, Feedback, Message

ROLES = ("system", "user", "assistant")


def conversation_dict(c: Conversation) -> dict:
    return {"id": c.id, "title": c.title, "user_id": c.user_id, "created": iso(c.created), "updated": iso(c.updated)}


def message_dict(m: Message) -> dict:
    return {"id": m.id, "conversation_id": m.conversation_id, "role": m.role, "content": m.content, "model": m.model,
            "finish_reason": m.finish_reason, "meta": dict(m.meta or {}), "parent": m.parent_id,
            "replaces": m.replaces_id, "current": m.current, "created": iso(m.created)}


def path_to(s: Session, message: Message) -> list[Message]:
    """The conversation as it stood when `message` was written: its ancestors, oldest first, and itself."""
    rows = {m.id: m for m in s.scalars(select(Message).where(Message.conversation_id == message.conversation_id))}
    out, m = [], message
    while m is not None:
        out.append(m)
        m = rows.get(m.parent_id)
    return out[::-1]


def same_parent(m: Message):
    return Message.parent_id.is_(None) if m.parent_id is None else Message.parent_id == m.parent_id


class ChatsMixin(StoreBase):
    def _conversation(self, s: Session, conv_id: int, user_id: int | None) -> Conversation:
        c = s.get(Conversation, conv_id)
        if c is None or c.deleted is not None or (user_id is not None and c.user_id != user_id):
            raise NotFound(f"no conversation {conv_id}")
        return c

    def create_conversation(self, user_id: int, title: str = "New chat") -> dict:
        with self.write() as s:
            c = Conversation(user_id=user_id, title=(title or "New chat")[:200])
            s.add(c)
            s.flush()
            return conversation_dict(c)

    def list_conversations(self, user_id: int) -> list[dict]:
        with self.read() as s:
            q = (select(Conversation).where(Conversation.user_id == user_id, Conversation.deleted.is_(None))
                 .order_by(Conversation.updated.desc(), Conversation.id.desc()))
            return [conversation_dict(c) for c in s.scalars(q)]

    def get_conversation(self, conv_id: int, user_id: int | None = None) -> dict | None:
        """The chat with its current branch; each message carries `feedback` ({rating, reason} or None), the
        given user's (or the latest anyone gave when user_id is None). None if missing or not the user's."""
        with self.read() as s:
            try:
                c = self._conversation(s, conv_id, user_id)
            except NotFound:
                return None
            messages = list(s.scalars(select(Message).where(Message.conversation_id == conv_id, Message.current)
                                      .order_by(Message.id)))
            q = select(Feedback).where(Feedback.message_id.in_([m.id for m in messages])).order_by(Feedback.id)
            if user_id is not None:
                q = q.where(Feedback.user_id == user_id)
            feedback = {f.message_id: {"rating": f.rating, "reason": f.reason} for f in s.scalars(q)}
            return {**conversation_dict(c),
                    "messages": [{**message_dict(m), "feedback": feedback.get(m.id)} for m in messages]}

    def rename_conversation(self, conv_id: int, user_id: int | None, title: str) -> dict:
        if not (title or "").strip():
            raise StoreError("the title must not be empty")
        with self.write() as s:
            c = self._conversation(s, conv_id, user_id)
            c.title, c.updated = title.strip()[:200], self.now()
            return conversation_dict(c)

    def delete_conversation(self, conv_id: int, user_id: int | None) -> None:
        with self.write() as s:
            self._conversation(s, conv_id, user_id).deleted = self.now()

    def purge_deleted(self, days: int = 30) -> int:
        """Really delete chats deleted more than `days` ago (with their messages, feedback and triage items)."""
        with self.write() as s:
            cutoff = self.now() - timedelta(days=days)
            return s.execute(delete(Conversation).where(Conversation.deleted < cutoff)).rowcount

    def add_message(self, conv_id: int, role: str, content: str, model: str | None = None,
                    finish_reason: str | None = None, meta: dict | None = None, replaces: int | None = None,
                    sibling_of: int | None = None, user_id: int | None = None, current: bool = True) -> dict:
        """Append to the current branch. `replaces`: a message (usually the last reply) this one regenerates;
        it and everything after it leave the branch. `sibling_of`: another answer to the same turn. `current=False`
        adds an alternative off the branch: a sibling of the branch's last message if that has the same role
        (the second of two side-by-side replies), else an answer to it. `user_id` checks the chat is theirs."""
        choice(role, ROLES, "role")
        with self.write() as s:
            c = self._conversation(s, conv_id, user_id)
            if replaces is not None or sibling_of is not None:
                other = s.get(Message, replaces if replaces is not None else sibling_of)
                if other is None or other.conversation_id != conv_id:
                    raise NotFound(f"no message {replaces or sibling_of} in conversation {conv_id}")
                parent = other.parent_id
                if replaces is not None:
                    s.execute(update(Message).where(Message.conversation_id == conv_id, Message.id >= other.id)
                              .values(current=False))
            else:
                last = s.scalar(select(Message).where(Message.conversation_id == conv_id, Message.current)
                                .order_by(Message.id.desc()).limit(1))
                parent = last.parent_id if last and not current and last.role == role else (last.id if last else None)
            m = Message(conversation_id=conv_id, role=role, content=content or "", model=model, current=current,
                        finish_reason=finish_reason, meta=meta or {}, parent_id=parent, replaces_id=replaces)
            s.add(m)
            c.updated = self.now()
            s.flush()
            return message_dict(m)

    def update_message(self, message_id: int, content: str | None = None, finish_reason: str | None = None,
                       meta: dict | None = None, model: str | None = None) -> dict:
        """Fill in a streamed reply; `meta` is merged into the message's meta."""
        with self.write() as s:
            m = s.get(Message, message_id)
            if m is None:
                raise NotFound(f"no message {message_id}")
            if content is not None:
                m.content = content
            if finish_reason is not None:
                m.finish_reason = finish_reason
            if model is not None:
                m.model = model
            if meta:
                m.meta = {**(m.meta or {}), **meta}
            return message_dict(m)

    def side_by_side(self, conv_id: int, user_id: int | None = None) -> list[dict]:
        """The latest side-by-side replies: the answers to the turn the branch's last reply answers, that no later
        message replaced and whose meta does not say side_by_side false; [] unless there are two or more."""
        with self.read() as s:
            self._conversation(s, conv_id, user_id)
            last = s.scalar(select(Message).where(Message.conversation_id == conv_id, Message.current,
                                                  Message.role == "assistant").order_by(Message.id.desc()).limit(1))
            if last is None:
                return []
            replaced = select(Message.replaces_id).where(Message.conversation_id == conv_id,
                                                         Message.replaces_id.is_not(None))
            q = select(Message).where(Message.conversation_id == conv_id, Message.role == "assistant",
                                      Message.id.not_in(replaced), same_parent(last)).order_by(Message.id)
            group = [message_dict(m) for m in s.scalars(q) if (m.meta or {}).get("side_by_side", True)]
            return group if len(group) >= 2 else []

    def select_reply(self, message_id: int, others: list[int] | None = None) -> dict:
        """Keep this reply on the branch; `others` (default: every other answer to the same turn) and whatever
        followed them leave it."""
        with self.write() as s:
            m = s.get(Message, message_id)
            if m is None:
                raise NotFound(f"no message {message_id}")
            rows = list(s.scalars(select(Message).where(Message.conversation_id == m.conversation_id)))
            drop = {x.id for x in rows if x.id != m.id and x.parent_id == m.parent_id and x.role == m.role}
            drop = drop if others is None else set(others) & drop
            for x in sorted(rows, key=lambda x: x.id):  # parents come before children
                if x.id in drop or x.parent_id in drop:
                    drop.add(x.id)
                    x.current = False
            m.current = True
            return message_dict(m)

    def get_message(self, message_id: int, user_id: int | None = None) -> dict | None:
        """A message; None if missing, or (with user_id) not in one of that user's chats."""
        with self.read() as s:
            m = s.get(Message, message_id)
            if m is None:
                return None
            if user_id is not None:
                try:
                    self._conversation(s, m.conversation_id, user_id)
                except NotFound:
                    return None
            return message_dict(m)

    def message_path(self, message_id: int) -> list[dict]:
        """The messages leading to this one, oldest first, ending with it (for prompts and comparisons)."""
        with self.read() as s:
            m = s.get(Message, message_id)
            if m is None:
                raise NotFound(f"no message {message_id}")
            return [message_dict(x) for x in path_to(s, m)]
