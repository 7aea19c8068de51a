"""The admin API (`/admin`, admin role only): usage metrics, the triage queue, red-team campaigns, and export to
training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from chatforge.serve.auth import Admin, Store
from chatforge.serve.errors import APIError
from chatforge.serve.schemas import DB_ID

router = APIRouter(prefix="/api/admin", tags=["admin"])
LABELS = ("jailbreak", "harmful_output", "false_fact", "over_refusal", "fine")


class Label(BaseModel):
    label: Literal[LABELS]
    send: bool = False
    note: Annotated[str, Field(max_length=2000)] = ""
    better_reply: Annotated[str, Field(max_length=20000)] | None = None


class Export(BaseModel):
    since: Annotated[str, Field(max_length=40)] | None = None


@router.get("/metrics")
def metrics(user: Admin, store: Store, request: Request, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
            bucket_minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 60):
    data = store.metrics(hours=hours, bucket_minutes=bucket_minutes)
    data["engine"] = request.app.state.service.engine.stats()
    return data


@router.get("/triage")
def triage(user: Admin, store: Store, status: Literal["open", "labelled", "all"] = "open",
           limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    return {"data": store.triage_queue(status=status, limit=limit), "labels": list(LABELS)}


@router.post("/triage/{item_id}")
def label(item_id: DB_ID, body: Label, user: Admin, store: Store):
    item = store.label_triage(item_id, body.label, user["id"], body.send, body.note, body.better_reply)
    if item is None:
        raise APIError(404, f"No triage item {item_id}.", "not_found")
    return {"item": item}


@router.get("/redteam")
def redteam(user: Admin, store: Store, campaign: Annotated[str | None, Query(max_length=64)] = None,
            violations_only: bool = True, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Every campaign kept in this store (`chatforge redteam --store`) with its ASR; with `campaign`, its attacks
    (by default only those that broke the model)."""
    if campaign is None:
        return {"data": store.campaigns()}
    return {"campaign": campaign, "data": store.attacks(campaign, violations_only=violations_only, limit=limit)}


@router.post("/export")
def export(body: Export, user: Admin, store: Store, request: Request):
    from chatforge.errors import ChatforgeError
    from chatforge.store.export import export as run_export
    from chatforge.store.export import parse_since

    try:
        since = parse_since(body.since) if body.since else None
    except (ChatforgeError, ValueError) as e:
        raise APIError(400, str(e), "invalid_value", "since") from None
    out = Path(request.app.state.config.data_dir) / "exports"
    return run_export(store, out, since)
