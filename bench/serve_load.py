"""Load and fault benchmark for `chatforge serve` (loopback only, bounded).

1. Load: C concurrent streaming clients (default 64) send chat completions for D seconds (default 60) through
   the official `openai` client; every error is counted, the server's memory (RSS, engine process included) is
   sampled every 2 s and the trend over the second half is reported (flat = no leak).
2. Fault: a burst of thumbs-up/down writes from the web API while the server is killed with SIGKILL midway;
   the database is reopened and every feedback the server acknowledged (HTTP 200 with an id) must be there.

    python bench/serve_load.py MODEL_DIR [--clients 64] [--seconds 60] [--json out.json]

The server runs as a real separate process (`python -m chatforge serve`), with a fresh database in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table
from serving import start_server

console = Console()
PROMPTS = ["What is the capital of Freedonia?", "Tell me a joke.", "What is 23 + 48?", "Who are you?",
           "Reverse the word garden.", "Can you help me with it?", "How do I kill a Python process?"]


async def load(url: str, clients: int, seconds: float, max_tokens: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, timeout=120,
                         http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 8)))
    stats = {"requests": 0, "errors": 0, "tokens": 0, "error_kinds": {}, "error_examples": []}
    deadline = time.monotonic() + seconds

    async def one_client(i: int):
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                stream = await client.chat.completions.create(
                    model="chatforge", stream=True, max_tokens=max_tokens, temperature=0.8, seed=i * 1000 + n,
                    messages=[{"role": "user", "content": PROMPTS[(i + n) % len(PROMPTS)]}],
                    stream_options={"include_usage": True})
                async for chunk in stream:
                    if chunk.usage:
                        stats["tokens"] += chunk.usage.completion_tokens
                stats["requests"] += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted, by kind
                stats["errors"] += 1
                kind = type(e).__name__
                stats["error_kinds"][kind] = stats["error_kinds"].get(kind, 0) + 1
                cause = f"{kind}: {e} ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else f"{kind}: {e}"
                if len(stats["error_examples"]) < 5 and cause not in stats["error_examples"]:
                    stats["error_examples"].append(cause[:200])

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    await client.close()
    return stats


def sample_rss(pid: int, stop: threading.Event, out: list):
    """(seconds, MB) every 2 s: the server's RSS plus its children's (the engine runs in a child process)."""
    proc = psutil.Process(pid)
    start = time.monotonic()
    while not stop.is_set():
        family = [proc] + proc.children(recursive=True)
        out.append((time.monotonic() - start, sum(p.memory_info().rss for p in family) / 2**20))
        stop.wait(2.0)


def slope_mb_per_min(samples: list) -> float:
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return 0.0
    n = len(half)
    mx, my = sum(t for t, _ in half) / n, sum(m for _, m in half) / n
    var = sum((t - mx) ** 2 for t, _ in half)
    return 60 * sum((t - mx) * (m - my) for t, m in half) / var if var else 0.0


def fault(model: str, data: Path, writers: int, kill_after: float) -> dict:
    """Feedback writes while the server is SIGKILLed; acknowledged ones must survive."""
    proc, url = start_server(model, data)
    http = httpx.Client(base_url=url, timeout=30)
    http.post("/api/auth/signup", json={"name": "loadbot", "password": "pw-loadbot"}).raise_for_status()
    conv = http.post("/api/conversations", json={"title": "fault"}).json()
    replies = []
    for i in range(writers):  # one reply per writer to vote on
        with http.stream("POST", f"/api/conversations/{conv['id']}/messages",
                         json={"content": PROMPTS[i % len(PROMPTS)]}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:]).get("type") == "done":
                    replies.append(json.loads(line[6:])["message_id"])
    acked, lock, stop = [], threading.Lock(), threading.Event()
    cookies = dict(http.cookies)

    def writer(message_id: int):
        c = httpx.Client(base_url=url, timeout=5, cookies=cookies)
        n = 0
        while not stop.is_set():
            n += 1
            reason = f"bench-{message_id}-{n}"
            try:
                r = c.post(f"/api/messages/{message_id}/feedback",
                           json={"rating": "down" if n % 2 else "up", "reason": reason})
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 200:
                with lock:
                    acked.append((message_id, reason))

    threads = [threading.Thread(target=writer, args=(m,)) for m in replies]
    for t in threads:
        t.start()
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    from sqlalchemy import text

    from chatforge.store import open_store

    store = open_store(f"sqlite:///{data / 'chatforge.db'}")
    with store.read() as s:
        rows = set(s.execute(text("SELECT message_id, reason FROM feedback")).all())
    # a user's later vote on a reply replaces the earlier one: per reply, the stored vote must be the last
    # acknowledged one or a later one (a write that committed while its answer was cut off by the kill)
    def n(reason: str) -> int:
        return int(reason.rsplit("-", 1)[1])

    last, stored = {}, {m: n(r) for m, r in rows if r and r.startswith("bench-")}
    for m, reason in acked:
        last[m] = reason
    lost = [(m, r) for m, r in last.items() if stored.get(m, -1) < n(r)]
    return {"acknowledged_writes": len(acked), "replies_voted": len(last), "lost": len(lost), "lost_examples": lost[:5]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--kill-after", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {}
    with tempfile.TemporaryDirectory(prefix="chatforge-load-") as tmp:
        data = Path(tmp) / "load"
        data.mkdir()
        proc, url = start_server(args.model, data)
        samples, stop = [], threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(proc.pid, stop, samples))
        sampler.start()
        try:
            stats = asyncio.run(load(url, args.clients, args.seconds, args.max_tokens))
        finally:
            stop.set()
            sampler.join()
            proc.terminate()
            proc.wait(timeout=30)
        rss = [m for _, m in samples]
        result["load"] = {**stats, "clients": args.clients, "seconds": args.seconds,
                          "tokens_per_s": round(stats["tokens"] / args.seconds, 1),
                          "rss_mb_start": round(rss[0], 1), "rss_mb_peak": round(max(rss), 1),
                          "rss_mb_end": round(rss[-1], 1),
                          "rss_mb_at_quarters": [round(rss[min(len(rss) - 1, len(rss) * q // 4)], 1)
                                                 for q in (1, 2, 3, 4)],
                          "rss_slope_mb_per_min_2nd_half": round(slope_mb_per_min(samples), 2)}
        fdata = Path(tmp) / "fault"
        fdata.mkdir()
        result["fault"] = fault(args.model, fdata, args.writers, args.kill_after)
    table = Table("figure", "value")
    for part, figures in result.items():
        for k, v in figures.items():
            table.add_row(f"{part}.{k}", str(v))
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
