"""Serving what a pipeline run made: pick its best model by the held-out oracle score, promote it in the registry,
make sure an admin account exists, and start `chatforge serve` with the run's moderation model and rating tasks.
This is how `chatforge demo` ends."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from chatforge.pipeline.stages import MODEL_STAGES

CHAT_MODELS = ("sft", "ppo", "dpo")  # the base model is not an assistant


def best_model(run_dir: Path, card: dict) -> tuple[str, Path]:
    """(scorecard name, model directory) of the assistant with the highest mean oracle score."""
    stage_of = {name: stage for stage, name in MODEL_STAGES.items()}
    scored = [(card[n]["oracle_score"], n) for n in CHAT_MODELS
              if n in card and card[n].get("oracle_score") is not None and (run_dir / stage_of[n] / "model").is_dir()]
    name = max(scored)[1] if scored else "sft"
    return name, run_dir / stage_of[name] / "model"


def ensure_admin(store, run_dir: Path) -> str | None:
    """Create `admin` with a random password the first time (saved, owner-only, in RUN/admin_password.txt)."""
    if any(u["role"] == "admin" for u in store.list_users()):
        return None
    password = os.environ.get("CHATFORGE_PASSWORD") or secrets.token_urlsafe(12)
    store.create_user("admin", password, "admin")
    path = run_dir / "admin_password.txt"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def serve_run(run_dir: Path, card: dict, host: str = "127.0.0.1", port: int = 8000, console=None) -> None:
    from chatforge.models.registry import Registry
    from chatforge.serve.app import serve
    from chatforge.serve.config import ServeConfig
    from chatforge.store import open_store
    from chatforge.store.db import sqlite_url

    name, model = best_model(run_dir, card)
    registry = Registry()
    version = registry.by_path(model)
    if version:
        registry.promote(version.ref)
    cfg = ServeConfig(model=str(model), model_id=version.ref if version else name, host=host, port=port,
                      db=sqlite_url(run_dir / "chatforge.db"), data_dir=str(run_dir))
    if (run_dir / "moderation" / "model" / "config.json").is_file():
        cfg.moderation = str(run_dir / "moderation" / "model")
    if (run_dir / "compare" / "tasks_train.jsonl").is_file():
        cfg.rate_tasks = str(run_dir / "compare" / "tasks_train.jsonl")
    password = ensure_admin(open_store(cfg.db), run_dir)
    if console:
        console.print(f"serving {cfg.model_id} ({name}, best held-out oracle score) at http://{host}:{port}  "
                      f"— admin pages: /admin, raters: /rate, API: /v1", soft_wrap=True, markup=False, highlight=False)
        if password:
            console.print(f"admin login: admin / {password}  (saved in {run_dir / 'admin_password.txt'})",
                          soft_wrap=True, markup=False, highlight=False)
    serve(cfg)
