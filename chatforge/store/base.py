"""What every part of the Store shares: its engine and sessions, errors, times and row → dict helpers.

Each Store method runs in its own short transaction, so the Store is safe to share between threads (FastAPI's
threadpool) and to call from asyncio code. Every write commits before the method returns.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chatforge.errors import ChatforgeError
from chatforge.store.models import utcnow


class StoreError(ChatforgeError):
    """A request the store cannot carry out: bad input (HTTP 400)."""


class NotFound(StoreError):
    """No such row, or not the caller's (HTTP 404: another user's chat does not exist for you)."""


class Conflict(StoreError):
    """The name is taken (HTTP 409)."""


def iso(t: datetime | None) -> str | None:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds") if t else None


def as_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def choice(value, allowed, what: str):
    if value not in allowed:
        raise StoreError(f"{what} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


class StoreBase:
    def __init__(self, engine: Engine, reader: sessionmaker, writer: sessionmaker):
        self.engine, self._reader, self._writer = engine, reader, writer

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends."""
        with self._writer.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def now() -> datetime:
        return utcnow()
