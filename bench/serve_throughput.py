"""Serving throughput: chatforge's continuous-batching engine, or the real HTTP server, against one-at-a-time
`model.generate`.

    python bench/serve_throughput.py MODEL_DIR [--levels 1,8,32] [--requests 128] [--max-new-tokens 64]
                                     [--threads 1] [--repeats 3] [--serve] [--json FILE]

At each concurrency level, that many clients share a fixed list of requests (chat prompts from the held-out prompts
of the model's world); each client sends its next request when the previous one has finished. Every server gets
the same requests with the same max_new_tokens and sampling; the baseline serves them one at a time (a first-come
first-served lock around `model.generate`), as a server without batching would. Per level and server: completion
tokens/s, the ratio to the baseline, time to first token and inter-token latency (p50/p95, as the clients see them:
the baseline's include waiting for the lock). Each level runs --repeats times, baseline and candidate interleaved;
the table shows medians, and each repeat's tokens/s is in the JSON. "other CPU s" is the CPU time other processes
took meanwhile (from /proc): on a shared machine a large figure marks a contaminated repeat.

Modes:
- default: the engine in this process (chatforge.serve.engine.Engine), client threads calling submit().
- --serve: `python -m chatforge serve` as a subprocess on a free port with a fresh database in a temp dir (the
  model is copied there first, so a model inside a run directory is served without the run's moderation model:
  this measures serving, not moderation; --as-is serves it in place). The clients are the official `openai` client
  (or, with --client raw, a lean http.client one that does only what a client must: see raw_http_server),
  streaming (`stream=True, stream_options={"include_usage": True}`), one thread each. TTFT is the first chunk with
  text, ITL the gaps between chunks with text (a chunk may carry several tokens, or a held-back partial character
  none), completion tokens from the usage chunk; "tail" is the time from the last text to the end of the stream
  (the server's work after the last token). The server gets --threads torch threads (OMP_NUM_THREADS); the
  baseline runs in this process while the server is idle. "server CPU s" (the server and its engine process) and
  "client CPU s" split the work.

A server is a function `serve(job) -> iterator of (time, new completion tokens)` (time None: tokens counted without a
timestamp); the client loop (`run_level`) only times what it yields.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from serving import start_server


def cpu_jiffies() -> int:
    """Busy jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process and its running children (the server's engine process) have used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                    for c in (t / "children").read_text().split()]
    except OSError:  # gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(process_cpu(c) for c in children)


@dataclass
class Job:
    messages: list[dict]  # what an HTTP client would send
    prompt_ids: list[int]  # the same, through the chat template
    seed: int


def make_jobs(model_dir: str, tok, n: int, world: str | None) -> list[Job]:
    from chatforge.evals.heldout import resolve_world
    from chatforge.world.world import World

    prompts = World(resolve_world(model_dir, world)).eval_prompts()
    jobs = []
    for i in range(n):
        messages = prompts[i % len(prompts)].messages
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        jobs.append(Job(messages, tok(text, add_special_tokens=False)["input_ids"], seed=i))
    return jobs


def engine_server(engine, args):
    from chatforge.serve.engine import Delta, GenerationRequest

    def serve(job: Job):
        handle = engine.submit(GenerationRequest(job.prompt_ids, args.max_new_tokens, args.temperature, args.top_p,
                                                 seed=job.seed))
        for event in handle:
            if isinstance(event, Delta):
                yield time.monotonic(), len(event.token_ids)

    return serve


class FairLock:
    """First come, first served: a threading.Lock lets the thread that just released it take it straight back, so
    one client would be served again and again while the others starve (TTFT p50 ~0, p95 the whole run). Release
    hands the lock to the longest waiter and wakes only that one."""

    def __init__(self):
        self._mutex, self._waiters, self._held = threading.Lock(), deque(), False

    def __enter__(self):
        with self._mutex:
            if not self._held:
                self._held = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        gate.acquire()  # released by the holder: the lock is now ours

    def __exit__(self, *exc):
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False


def generate_server(model, tok, args):
    """`model.generate` one request at a time; a streamer stamps each token as generate produces it."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    from chatforge.models.generate import stop_ids

    class Stamps(BaseStreamer):
        def __init__(self):
            self.times = []

        def put(self, value):
            self.times.append(time.monotonic())

        def end(self):
            pass

    lock, stop = FairLock(), stop_ids(model, tok)
    sampling = ({"do_sample": True, "temperature": args.temperature, "top_p": args.top_p, "top_k": 0}
                if args.temperature > 0 else {"do_sample": False})

    def serve(job: Job):
        stamps = Stamps()
        with lock, torch.inference_mode():
            torch.manual_seed(job.seed)
            ids = torch.tensor([job.prompt_ids], device=model.device)
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_new_tokens,
                           eos_token_id=stop, pad_token_id=tok.pad_token_id, streamer=stamps, **sampling)
        yield from ((t, 1) for t in stamps.times[1:])  # the first put is the prompt

    return serve


def http_server(url: str, args):
    """The official openai client, streaming, against `chatforge serve` at url."""
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, timeout=300)

    def serve(job: Job):
        stream = client.chat.completions.create(
            model="chatforge", messages=job.messages, max_tokens=args.max_new_tokens, temperature=args.temperature,
            top_p=args.top_p, seed=job.seed, stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield time.monotonic(), 0
            if chunk.usage is not None:
                yield None, chunk.usage.completion_tokens

    return serve


def raw_http_server(url: str, args):
    """A lean client (--client raw): http.client on a keep-alive connection per thread, the SSE lines read as they
    come, JSON decoded per chunk and nothing else (as vLLM's benchmark_serving does with aiohttp). On 2 shared cores
    the openai client's per-chunk work (httpx, pydantic models) takes CPU the server would otherwise use."""
    import http.client
    from urllib.parse import urlsplit

    host, local = urlsplit(url), threading.local()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}

    def serve(job: Job):
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(host.hostname, host.port, timeout=300)
        body = json.dumps({"model": "chatforge", "messages": job.messages, "max_tokens": args.max_new_tokens,
                           "temperature": args.temperature, "top_p": args.top_p, "seed": job.seed, "stream": True,
                           "stream_options": {"include_usage": True}})
        local.conn.request("POST", "/v1/chat/completions", body, headers)
        resp = local.conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
        for line in resp:
            if not line.startswith(b"data: "):
                continue
            if line.startswith(b"data: [DONE]"):
                break
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                yield time.monotonic(), 0
            if chunk.get("usage"):
                yield None, chunk["usage"]["completion_tokens"]
        resp.read()  # the rest of the chunked body: the connection is reused

    return serve


def run_level(serve, jobs: list[Job], clients: int, server_pid: int | None = None) -> dict:
    """`clients` threads take jobs in turn until none are left; the figures are as the clients saw them."""
    todo, lock, records = list(reversed(jobs)), threading.Lock(), []

    def client():
        while True:
            with lock:
                if not todo:
                    return
                job = todo.pop()
            start, times, tokens = time.monotonic(), [], 0
            for t, n in serve(job):
                if t is not None:
                    times.append(t)
                tokens += n
            with lock:
                records.append((start, times, tokens, time.monotonic()))

    busy, wall, cpu = cpu_jiffies(), time.monotonic(), time.process_time()
    server_cpu = process_cpu(server_pid) if server_pid else 0.0
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    server_cpu = process_cpu(server_pid) - server_cpu if server_pid else 0.0
    other = max((cpu_jiffies() - busy) / os.sysconf("SC_CLK_TCK") - cpu - server_cpu, 0.0)
    ttft = [times[0] - start for start, times, *_ in records if times]
    itl = [b - a for _, times, *_ in records for a, b in zip(times, times[1:])]
    tail = [end - times[-1] for _, times, _, end in records if times]
    tokens = sum(n for _, _, n, _ in records)
    out = {"requests": len(records), "completion_tokens": tokens, "wall_s": round(wall, 2),
           "tokens_per_s": round(tokens / wall, 1), "ttft_ms": percentiles(ttft), "itl_ms": percentiles(itl),
           "tail_ms": percentiles(tail), "other_cpu_s": round(other, 1)}
    if server_pid:
        out |= {"server_cpu_s": round(server_cpu, 1), "client_cpu_s": round(cpu, 1)}
    return out


def percentiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    if not xs:
        return {"p50": None, "p95": None}
    return {f"p{q}": round(1000 * xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 1) for q in (50, 95)}


def median_run(runs: list[dict]) -> dict:
    """Medians of repeated runs' figures (tokens/s, latencies, CPU), with every repeat's tokens/s kept."""
    def med(get):
        values = [v for v in (get(r) for r in runs) if v is not None]
        return round(statistics.median(values), 1) if values else None

    out = {k: med(lambda r, k=k: r.get(k)) for k in runs[0] if not isinstance(runs[0][k], dict)}
    for k in ("ttft_ms", "itl_ms", "tail_ms"):
        out[k] = {q: med(lambda r, k=k, q=q: r[k][q]) for q in ("p50", "p95")}
    out["tokens_per_s_runs"] = [r["tokens_per_s"] for r in runs]
    return out


def show(results: list[dict], candidate: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="serving throughput (completion tokens/s; latencies in ms, as the clients saw them; medians "
                        "of the repeats)")
    cols = ["clients", "server", "requests", "tokens", "tokens/s", "× generate", "TTFT p50", "TTFT p95", "ITL p50",
            "ITL p95", "mean batch", "other CPU s"]
    if candidate == "http":
        cols += ["tail p50", "server CPU s", "client CPU s"]
    for col in cols:
        table.add_column(col, justify="right")
    for r in results:
        for name in ("generate", candidate):
            f = r.get(name)
            if f is None:
                continue
            ratio = f"{f['tokens_per_s'] / r['generate']['tokens_per_s']:.2f}" if "generate" in r else "-"
            row = [str(r["clients"]), name, str(f["requests"]), str(f["completion_tokens"]), str(f["tokens_per_s"]),
                   ratio, str(f["ttft_ms"]["p50"]), str(f["ttft_ms"]["p95"]), str(f["itl_ms"]["p50"]),
                   str(f["itl_ms"]["p95"]), str(f.get("mean_batch", "-")), str(f["other_cpu_s"])]
            if candidate == "http":
                row += [str(f["tail_ms"]["p50"]), str(f.get("server_cpu_s", "-")), str(f.get("client_cpu_s", "-"))]
            table.add_row(*row)
    console = Console()
    console.width = max(console.width, 160)  # a narrow or non-tty console would squash the columns to "…"
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a model directory (e.g. runs/small/sft/model)")
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients, comma-separated")
    ap.add_argument("--requests", type=int, default=128, help="requests per level")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="runs per level and server, interleaved; medians shown")
    ap.add_argument("--world", help="world preset or directory for the prompts (default: the model's)")
    ap.add_argument("--no-baseline", action="store_true", help="skip model.generate")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the baseline's, the engine's, the server's)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--serve", action="store_true", help="measure `chatforge serve` over HTTP instead of the engine")
    ap.add_argument("--client", choices=("openai", "raw"), default="openai",
                    help="--serve: the official openai client, or a lean http.client one (see raw_http_server)")
    ap.add_argument("--as-is", action="store_true", help="--serve: serve MODEL in place (with its run's moderation)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch

    from chatforge.models.loading import load_model
    from chatforge.serve.engine import Engine

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, args.device)
    jobs = make_jobs(args.model, tok, args.requests, args.world)
    candidate, proc, tmp = ("http" if args.serve else "engine"), None, None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `kill` still stops the server (the finally below)
    if args.serve:
        tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
        served = args.model if args.as_is else shutil.copytree(args.model, tmp / Path(args.model).name)
        proc, url = start_server(str(served), tmp, ["--max-batch-size", str(args.max_batch_size)],
                                 {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)},
                                 timeout=120)
    results = []
    try:
        for clients in (int(x) for x in args.levels.split(",")):
            runs = {"generate": [], candidate: []}
            for _ in range(args.repeats):
                if not args.no_baseline:
                    serve = generate_server(model, tok, args)
                    run_level(serve, jobs[:2], 1)  # warm-up
                    runs["generate"].append(run_level(serve, jobs, clients))
                if args.serve:
                    serve = (raw_http_server if args.client == "raw" else http_server)(url, args)
                    run_level(serve, jobs[:2], 1)
                    runs[candidate].append(run_level(serve, jobs, clients, proc.pid))
                    continue
                engine = Engine(model, tok, max_batch_size=args.max_batch_size).start()
                run_level(engine_server(engine, args), jobs[:2], 1)
                before = engine.stats()
                run = run_level(engine_server(engine, args), jobs, clients)
                after = engine.stats()
                steps = after["steps"] - before["steps"]
                run["mean_batch"] = round((after["batch_rows"] - before["batch_rows"]) / max(steps, 1), 1)
                engine.shutdown()
                runs[candidate].append(run)
            results.append({"clients": clients} | {k: median_run(v) for k, v in runs.items() if v})
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {"mode": candidate, "model": args.model, "device": str(model.device), "threads": args.threads,
               "cores": os.cpu_count(), "requests": args.requests, "max_new_tokens": args.max_new_tokens,
               "temperature": args.temperature, "top_p": args.top_p, "max_batch_size": args.max_batch_size,
               "repeats": args.repeats, "client": args.client if args.serve else None, "levels": results}
    show(results, candidate)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
