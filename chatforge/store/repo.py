"""The Store: every query the server runs, as methods returning plain JSON-ready dicts (never ORM objects).

Split by concern: users.py (users, sessions, API keys), chats.py (conversations, messages), triage.py
(feedback, moderation, flags, triage), ratings.py (comparisons, ranking tasks), metrics.py (request log),
redteam.py (red-team campaigns' attacks).
"""

from chatforge.store.chats import ChatsMixin
from chatforge.store.metrics import MetricsMixin
from chatforge.store.ratings import RatingsMixin
from chatforge.store.redteam import RedteamMixin
from chatforge.store.triage import TriageMixin
from chatforge.store.users import UsersMixin


class Store(UsersMixin, ChatsMixin, TriageMixin, RatingsMixin, MetricsMixin, RedteamMixin):
    """Open one with chatforge.store.open_store; safe to share between threads."""
