"""Shared by the serving benchmarks: start `python -m chatforge serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, data: Path, extra: list[str] = (), env: dict | None = None,
                 timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """(process, base URL): a server with a fresh database and registry in `data`, once GET /health answers."""
    port, log = free_port(), data / "server.log"
    env = {**os.environ, "CHATFORGE_HOME": str(data / "home"), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "chatforge", "serve", model, "--port", str(port), "--db", str(data),
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(int(timeout * 10)):  # bounded
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not answer /health in {timeout:.0f} s")
