"""Opening the store: the engine, SQLite's pragmas, and migrating the schema to the newest revision.

SQLite (the default, one file) runs in WAL mode so readers never block the writer, with foreign keys on and a
busy timeout so concurrent writers wait instead of failing. Write transactions start with BEGIN IMMEDIATE:
with a plain BEGIN, two transactions that both read and then write can deadlock, and SQLite fails one at once
instead of waiting. synchronous=NORMAL in WAL mode keeps every commit across a crash of the server process
(kill -9); only a power cut can lose the last commits. PostgreSQL works by URL (postgresql+psycopg://...).
Migrations are alembic scripts inside the package, run from a Config built here: no alembic.ini needed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from chatforge.errors import ChatforgeError

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_PATH = Path("chatforge.db")
BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def as_url(db: str | Path) -> str:
    """A database URL as given, or the SQLite URL of a file path (a directory: its chatforge.db)."""
    text = str(db)
    if "://" in text or text.startswith("sqlite:"):
        return text
    path = Path(text).expanduser()
    return sqlite_url(path / DEFAULT_PATH.name if path.is_dir() or text.endswith(("/", "\\")) else path)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                           **({"poolclass": StaticPool} if memory else {}))

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below), pysqlite's own handling is off
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        for pragma in ("synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """`alembic upgrade head` on this engine, in one write transaction (two servers starting at once take turns)."""
    with engine.execution_options(write=True).begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_store(url: str | None = None, path: str | Path | None = None, migrate: bool = True):
    """The Store for a database URL, or for a SQLite file at `path` (default ./chatforge.db); migrated to head."""
    from chatforge.store.repo import Store

    if url is None:
        path = Path(path or DEFAULT_PATH)
        path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        url = sqlite_url(path)
    try:
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
    except (ArgumentError, NoSuchModuleError, OperationalError, ImportError) as e:  # ImportError: no driver
        raise ChatforgeError(f"cannot open the database '{safe(url)}': {str(e).splitlines()[0]}") from None
    return Store(engine, sessionmaker(engine, expire_on_commit=False),
                 sessionmaker(engine.execution_options(write=True), expire_on_commit=False))
