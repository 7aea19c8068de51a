"""`ServeConfig`: everything `chatforge serve` takes, saved beside the database as `serve_config.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ServeConfig:
    model: str  # a model directory or a registry ref (`ppo`, `sft:2`, `served`)
    model_id: str = ""  # the name clients see in /v1/models (default: the registry ref or the folder name)
    host: str = "127.0.0.1"
    port: int = 8000
    db: str | None = None  # SQLAlchemy URL; default sqlite:///<data_dir>/chatforge.db (WAL)
    data_dir: str = "."  # where the default database and exports go (the run directory under `demo`)
    # engine
    backend: str = "chatforge"  # chatforge (continuous batching, CPU or GPU) or vllm (GPU, optional)
    max_batch_size: int = 32  # requests decoded together
    engine_process: bool = True  # the chatforge engine in a process of its own (engine_process.py), not a thread
    engine_threads: int | None = None  # its torch threads (None: torch's count, but one core left to the HTTP side)
    max_queue: int = 256  # requests waiting for a slot; beyond it: 429 with Retry-After
    default_max_tokens: int = 256  # when a request names no limit (and for the web UI)
    # product
    moderation: str | None = None  # a sequence-classifier directory; None = no moderation
    moderation_policy: str | None = None  # JSON text or a file: {"category": "log"|"flag"|"block"}
    compare_rate: float = 0.1  # how often the web UI shows two replies side by side
    open_signup: bool = True  # anyone may create a `user` account from the login page
    rate_tasks: str | None = None  # JSONL of ranking tasks for /rate (e.g. RUN/compare/tasks_train.jsonl)
    system_prompt: str | None = None  # prepended to web-UI conversations
    seed: int = 0

    def db_url(self) -> str:
        return self.db or f"sqlite:///{Path(self.data_dir) / 'chatforge.db'}"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
