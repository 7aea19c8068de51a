"""Serving throughput: chatforge's continuous-batching engine against one-at-a-time `model.generate`.

    python bench/serve_throughput.py MODEL_DIR [--levels 1,8,32] [--requests 64] [--max-new-tokens 64] [--json FILE]

At each concurrency level, that many client threads share a fixed list of requests (chat prompts from the held-out
prompts of the model's world); each client sends its next request when the previous one has finished. Both servers
get the same requests with the same max_new_tokens and sampling; the baseline serves them one at a time (a lock
around `model.generate`), as a server without batching would. Per level and server: completion tokens/s, the ratio
to the baseline, time to first token and inter-token latency (p50/p95, as the client sees them: the baseline's
include waiting for the lock). Like bench/ppo_throughput.py it records how much CPU other processes took meanwhile.

A server is a function `serve(job) -> iterator of (time, new completion tokens)`; the client loop (`run_level`)
only times what it yields, so an HTTP server (an openai streaming client on --url) can be added as one more.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def cpu_jiffies() -> int:
    """Busy jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


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

    lock, stop = threading.Lock(), stop_ids(model, tok)
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


def run_level(serve, jobs: list[Job], clients: int) -> dict:
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
                times.append(t)
                tokens += n
            with lock:
                records.append((start, times, tokens))

    busy, wall = cpu_jiffies(), time.monotonic()
    cpu = time.process_time()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    other = max((cpu_jiffies() - busy) / os.sysconf("SC_CLK_TCK") - cpu, 0.0)
    ttft = [times[0] - start for start, times, _ in records if times]
    itl = [b - a for _, times, _ in records for a, b in zip(times, times[1:])]
    tokens = sum(n for *_, n in records)
    return {"requests": len(records), "completion_tokens": tokens, "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 1), "ttft_ms": percentiles(ttft), "itl_ms": percentiles(itl),
            "other_cpu_s": round(other, 1)}


def percentiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    if not xs:
        return {"p50": None, "p95": None}
    return {f"p{q}": round(1000 * xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 1) for q in (50, 95)}


def show(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="serving throughput (completion tokens/s; latencies in ms, as the clients saw them)")
    for col in ("clients", "server", "requests", "tokens", "tokens/s", "× generate", "TTFT p50", "TTFT p95",
                "ITL p50", "ITL p95", "mean batch", "other CPU s"):
        table.add_column(col, justify="right")
    for r in results:
        for name in ("generate", "engine"):
            f = r.get(name)
            if f is None:
                continue
            ratio = f"{f['tokens_per_s'] / r['generate']['tokens_per_s']:.2f}" if "generate" in r else "-"
            table.add_row(str(r["clients"]), name, str(f["requests"]), str(f["completion_tokens"]),
                          str(f["tokens_per_s"]), ratio, str(f["ttft_ms"]["p50"]), str(f["ttft_ms"]["p95"]),
                          str(f["itl_ms"]["p50"]), str(f["itl_ms"]["p95"]), str(f.get("mean_batch", "-")),
                          str(f["other_cpu_s"]))
    console = Console()
    console.width = max(console.width, 130)  # a narrow or non-tty console would squash the columns to "…"
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a model directory (e.g. runs/small/sft/model)")
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients, comma-separated")
    ap.add_argument("--requests", type=int, default=64, help="requests per level")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--world", help="world preset or directory for the prompts (default: the model's)")
    ap.add_argument("--no-baseline", action="store_true", help="skip model.generate")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch

    from chatforge.models.loading import load_model
    from chatforge.serve.engine import Engine

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, args.device)
    jobs = make_jobs(args.model, tok, args.requests, args.world)
    results = []
    for clients in (int(x) for x in args.levels.split(",")):
        row = {"clients": clients}
        if not args.no_baseline:
            serve = generate_server(model, tok, args)
            run_level(serve, jobs[:2], 1)  # warm-up
            row["generate"] = run_level(serve, jobs, clients)
        engine = Engine(model, tok, max_batch_size=args.max_batch_size).start()
        run_level(engine_server(engine, args), jobs[:2], 1)
        before = engine.stats()
        row["engine"] = run_level(engine_server(engine, args), jobs, clients)
        after = engine.stats()
        steps = after["steps"] - before["steps"]
        row["engine"]["mean_batch"] = round((after["batch_rows"] - before["batch_rows"]) / max(steps, 1), 1)
        engine.shutdown()
        results.append(row)
    summary = {"model": args.model, "device": str(model.device), "threads": args.threads, "cores": os.cpu_count(),
               "requests": args.requests, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
               "top_p": args.top_p, "max_batch_size": args.max_batch_size, "levels": results}
    show(results)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
