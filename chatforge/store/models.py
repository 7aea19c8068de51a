"""The product server's tables, as SQLAlchemy 2.x declarative models.

Users log in with a session cookie or call the API with a key; their conversations hold messages, where a
regenerated reply stays stored but leaves the current branch. Feedback, side-by-side votes, rater rankings,
moderation results and flags are what the next training round learns from; triage items are the queue an
admin labels; request_log feeds the monitoring page. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out. SQLite keeps no time zone, so it stores naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def created(index: bool = False) -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, index=index)


def user_fk(nullable: bool = True) -> Mapped[int | None]:
    return mapped_column(ForeignKey("users.id", ondelete="SET NULL" if nullable else "CASCADE"), nullable=nullable,
                         index=True)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created: Mapped[datetime] = created()


class LoginSession(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the cookie value
    user_id: Mapped[int] = user_fk(nullable=False)
    created: Mapped[datetime] = created()
    expires: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # "cf-AbCd", to recognise a key in the admin list
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the secret, shown once
    user_id: Mapped[int | None] = user_fk()
    created: Mapped[datetime] = created()
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(primary_key=True)
    # no user: an API exchange kept for triage; a user's chats go when the user does
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    created: Mapped[datetime] = created()
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # a deleted chat is hidden from its user but kept for abuse review (triage) until purged
    deleted: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_current", "conversation_id", "current"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the model version that wrote a reply
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True)  # on the branch the user sees
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = created()


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("uq_feedback_message_user", "message_id", "user_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = user_fk()
    rating: Mapped[int] = mapped_column(Integer)  # +1 or -1
    reason: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = created(index=True)


class ComparisonRow(Base):
    """One pairwise judgement; `data` is the whole chatforge Comparison dict, the columns index it."""
    __tablename__ = "comparisons"
    id: Mapped[int] = mapped_column(primary_key=True)
    cid: Mapped[str] = mapped_column(String(32), unique=True)  # Comparison.id
    data: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(32), index=True)
    rater: Mapped[str] = mapped_column(String(100), index=True)
    family: Mapped[str] = mapped_column(String(64), default="imported")
    policy: Mapped[str] = mapped_column(String(200), default="")
    group: Mapped[str] = mapped_column(String(64), default="", index=True)
    user_id: Mapped[int | None] = user_fk()
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"),
                                                        nullable=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="SET NULL"), nullable=True)
    created: Mapped[datetime] = created(index=True)


class RankingTask(Base):
    __tablename__ = "ranking_tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    group: Mapped[str] = mapped_column(String(64), unique=True)
    prompt: Mapped[dict] = mapped_column(JSON)  # Prompt.to_dict()
    responses: Mapped[list] = mapped_column(JSON)
    policy: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = created()


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (Index("uq_ratings_task_rater", "task_id", "rater_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = user_fk(nullable=False)
    ranking: Mapped[list] = mapped_column(JSON)  # response indices, best first
    criteria: Mapped[dict] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = created()


class ModerationResult(Base):
    __tablename__ = "moderation_results"
    id: Mapped[int] = mapped_column(primary_key=True)
    text_role: Mapped[str] = mapped_column(String(16))  # input | output
    categories: Mapped[dict] = mapped_column(JSON)  # category -> score
    flagged: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True,
                                                   index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[datetime] = created()


class Flag(Base):
    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                                        nullable=True, index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=True,
                                                   index=True)
    source: Mapped[str] = mapped_column(String(16))  # moderation | feedback | user
    category: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = created(index=True)


class TriageItem(Base):
    __tablename__ = "triage_items"
    # at most one open item per message (a partial unique index: both SQLite and PostgreSQL have them)
    __table_args__ = (Index("uq_triage_open_message", "message_id", unique=True,
                            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(16))  # thumbs_down | flag
    category: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | labelled
    label: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reviewer_id: Mapped[int | None] = user_fk()
    send: Mapped[bool] = mapped_column(Boolean, default=False)  # goes into the next round's data
    note: Mapped[str] = mapped_column(Text, default="")
    better_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = created(index=True)
    labelled: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class RequestLog(Base):
    __tablename__ = "request_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[datetime] = created(index=True)
    source: Mapped[str] = mapped_column(String(8))  # api | web
    model: Mapped[str] = mapped_column(String(200), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="ok")
    user_id: Mapped[int | None] = user_fk()
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True)
    family: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)


class RedteamAttack(Base):
    """One judged red-team attack (`chatforge redteam`, adversarial rounds): the campaign journal's line, kept in the
    product store beside the chats so that automated and human red-teaming (chats tagged #campaign) meet."""
    __tablename__ = "redteam_attacks"
    __table_args__ = (Index("uq_redteam_campaign_attack", "campaign", "attack_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64), index=True)
    attack_id: Mapped[str] = mapped_column(String(64))  # the hash of the attack's messages
    round: Mapped[int] = mapped_column(Integer, default=0)
    attacker: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), default="")
    wrapper: Mapped[str] = mapped_column(String(64), default="")
    violation: Mapped[bool] = mapped_column(Boolean, index=True)
    rule: Mapped[str | None] = mapped_column(String(32), nullable=True)
    data: Mapped[dict] = mapped_column(JSON)  # the whole journal line: messages, reply, verdict, template, seed
    created: Mapped[datetime] = created(index=True)
