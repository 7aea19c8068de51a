"""The product server's database: users, chats, feedback, ratings, triage and monitoring, via SQLAlchemy.

    from chatforge.store import open_store
    store = open_store(path="chatforge.db")   # or open_store("postgresql+psycopg://…"); migrated to head
"""

from chatforge.store.base import Conflict, NotFound, StoreError
from chatforge.store.db import open_store
from chatforge.store.repo import Store

__all__ = ["open_store", "Store", "StoreError", "NotFound", "Conflict"]
