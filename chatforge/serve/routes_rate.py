"""The rater workspace's API (`/rate`): ranking tasks with the written criteria, progress and agreement.

Each submitted ranking of K replies becomes K·(K-1)/2 comparisons (source "human", rater "human:NAME"),
stored in the same format `chatforge reward` and `chatforge dpo` read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from chatforge.data.rate_terminal import GUIDE
from chatforge.serve.auth import Rater, Store
from chatforge.serve.errors import APIError
from chatforge.serve.schemas import DB_ID
from chatforge.world.oracle import CRITERIA as ORACLE_CRITERIA

router = APIRouter(prefix="/api/rate", tags=["rate"])

# the oracle's criteria, with the guide texts the terminal rater shows (one set of names everywhere)
CRITERIA = [{"name": c, "text": GUIDE[c]} for c in ORACLE_CRITERIA]


class Ranking(BaseModel):
    ranking: Annotated[list[Annotated[int, Field(ge=0, le=64)]], Field(min_length=2, max_length=16)]
    criteria: dict[str, Annotated[int, Field(ge=0, le=64)]] = {}


@router.get("/task")
def next_task(user: Rater, store: Store):
    task = store.next_task(user["id"])
    if task is None:
        return {"task": None, "criteria": CRITERIA}
    return {"task": {"id": task["id"], "messages": task["messages"], "responses": task["responses"],
                     "criteria": CRITERIA}, "criteria": CRITERIA}


@router.post("/task/{task_id}")
def submit(task_id: DB_ID, body: Ranking, user: Rater, store: Store):
    task = store.get_task(task_id)
    if task is None:
        raise APIError(404, f"No ranking task {task_id}.", "not_found")
    k = len(task["responses"])
    if sorted(body.ranking) != list(range(k)):
        raise APIError(400, f"ranking must order all {k} replies: a permutation of 0..{k - 1}.", "invalid_value",
                       "ranking")
    names = {c["name"] for c in CRITERIA}
    bad = [c for c, i in body.criteria.items() if c not in names or not 0 <= i < k]
    if bad:
        raise APIError(400, f"unknown criterion or reply index: {', '.join(bad)}", "invalid_value", "criteria")
    stored = store.submit_ranking(task_id, user["id"], body.ranking, body.criteria)
    return {"stored": len(stored)}


@router.get("/progress")
def progress(user: Rater, store: Store):
    raters = store.rater_progress()
    mine = next((r for r in raters if r.get("user_id") == user["id"]), {"done": 0})
    return {"mine": {"done": mine.get("done", 0), "total": store.task_count()}, "raters": raters,
            "agreement": store.agreement()}
