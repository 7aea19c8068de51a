"""Initial schema: users, sessions, API keys, conversations, messages, feedback, comparisons, ranking tasks and
ratings, moderation results, flags, triage items and the request log.

Written from `alembic revision --autogenerate` and tidied; tests/test_store.py checks it matches the models.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def fk(name: str, target: str, ondelete: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def string(name: str, length: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def column(name: str, type_, nullable: bool = False) -> sa.Column:
    return sa.Column(name, type_, nullable=nullable)


def table(name: str, *columns, indexes: dict[str, list[str]] = (), unique: dict[str, list[str]] = ()) -> None:
    """A table with an integer id, and its indexes: ix_<table>_<column> for one column, else the given name."""
    op.create_table(name, sa.Column("id", sa.Integer(), primary_key=True), *columns)
    for ix, cols in dict(indexes).items():
        op.create_index(ix, name, cols)
    for ix, cols in dict(unique).items():
        op.create_index(ix, name, cols, unique=True)


def ix(table_name: str, *cols: str) -> dict[str, list[str]]:
    return {f"ix_{table_name}_{c}": [c] for c in cols}


def upgrade() -> None:
    table("users", string("name", 64), string("password_hash", 256), string("role", 16), time("created"),
          sa.UniqueConstraint("name"))
    table("sessions", string("token_hash", 64), fk("user_id", "users.id", "CASCADE", nullable=False),
          time("created"), time("expires"), sa.UniqueConstraint("token_hash"), indexes=ix("sessions", "user_id"))
    table("api_keys", string("name", 64), string("prefix", 16), string("secret_hash", 64),
          fk("user_id", "users.id", "SET NULL"), time("created"), time("revoked", True), time("last_used", True),
          sa.UniqueConstraint("name"), sa.UniqueConstraint("secret_hash"), indexes=ix("api_keys", "user_id"))
    table("conversations", fk("user_id", "users.id", "CASCADE"), string("title", 200),
          time("created"), time("updated"), time("deleted", True),
          indexes=ix("conversations", "user_id", "updated"))
    table("messages", fk("conversation_id", "conversations.id", "CASCADE", nullable=False),
          fk("parent_id", "messages.id", "SET NULL"), fk("replaces_id", "messages.id", "SET NULL"),
          string("role", 16), column("content", sa.Text()), string("model", 200, True),
          string("finish_reason", 32, True), column("current", sa.Boolean()), column("meta", sa.JSON()),
          time("created"), indexes={"ix_messages_conversation_current": ["conversation_id", "current"]})
    table("feedback", fk("message_id", "messages.id", "CASCADE", nullable=False), fk("user_id", "users.id", "SET NULL"),
          column("rating", sa.Integer()), column("reason", sa.Text()), time("created"),
          indexes=ix("feedback", "user_id", "created"), unique={"uq_feedback_message_user": ["message_id", "user_id"]})
    table("ranking_tasks", string("group", 64), column("prompt", sa.JSON()), column("responses", sa.JSON()),
          string("policy", 200), time("created"), sa.UniqueConstraint("group"))
    table("ratings", fk("task_id", "ranking_tasks.id", "CASCADE", nullable=False),
          fk("rater_id", "users.id", "CASCADE", nullable=False), column("ranking", sa.JSON()),
          column("criteria", sa.JSON()), time("created"), indexes=ix("ratings", "rater_id"),
          unique={"uq_ratings_task_rater": ["task_id", "rater_id"]})
    table("comparisons", string("cid", 32), column("data", sa.JSON()), string("source", 32), string("rater", 100),
          string("family", 64), string("policy", 200), string("group", 64), fk("user_id", "users.id", "SET NULL"),
          fk("conversation_id", "conversations.id", "SET NULL"), fk("task_id", "ranking_tasks.id", "SET NULL"),
          time("created"), sa.UniqueConstraint("cid"),
          indexes=ix("comparisons", "source", "rater", "group", "user_id", "created"))
    table("moderation_results", string("text_role", 16), column("categories", sa.JSON()),
          column("flagged", sa.Boolean()), string("action", 16), fk("message_id", "messages.id", "SET NULL"),
          string("request_id", 64, True), time("created"), indexes=ix("moderation_results", "message_id"))
    table("flags", fk("conversation_id", "conversations.id", "CASCADE"), fk("message_id", "messages.id", "CASCADE"),
          string("source", 16), string("category", 64), column("detail", sa.Text()), time("created"),
          indexes=ix("flags", "conversation_id", "message_id", "created"))
    table("triage_items", fk("conversation_id", "conversations.id", "CASCADE", nullable=False),
          fk("message_id", "messages.id", "CASCADE", nullable=False), string("reason", 16), string("category", 64),
          string("status", 16), string("label", 32, True), fk("reviewer_id", "users.id", "SET NULL"),
          column("send", sa.Boolean()), column("note", sa.Text()), column("better_reply", sa.Text(), True),
          time("created"), time("labelled", True),
          indexes=ix("triage_items", "conversation_id", "status", "reviewer_id", "created", "labelled"))
    op.create_index("uq_triage_open_message", "triage_items", ["message_id"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
    table("request_log", time("created"), string("source", 8), string("model", 200),
          column("prompt_tokens", sa.Integer()), column("completion_tokens", sa.Integer()),
          column("latency_ms", sa.Float()), column("ttft_ms", sa.Float(), True), string("status", 32),
          fk("user_id", "users.id", "SET NULL"), fk("key_id", "api_keys.id", "SET NULL"),
          string("family", 64, True), column("flagged", sa.Boolean()), indexes=ix("request_log", "created", "user_id"))


def downgrade() -> None:
    for name in ("request_log", "triage_items", "flags", "moderation_results", "comparisons", "ratings",
                 "ranking_tasks", "feedback", "messages", "conversations", "api_keys", "sessions", "users"):
        op.drop_table(name)
