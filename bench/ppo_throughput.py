"""PPO throughput with chatforge's decode loop against plain `model.generate`, same seed, same settings.

    python bench/ppo_throughput.py --model runs/small/sft/model [--reward-model DIR] [--steps 3] [--json FILE]

Runs the same PPO iterations twice, rollout="chatforge" then rollout="generate", and prints samples/s, the
share of wall time spent generating, generated tokens per generation-second, and the chatforge/generate ratios.
Without --reward-model a built-in reward (prefer 20-word replies) stands in. The first `--warmup` steps of each
run (one-off costs: first calls, allocations) are left out of the figures; `--repeats N` runs each rollout N
times in alternating order and reports medians. Batch sizes and epochs default to PPOConfig's. Prompts come
from `--prompts` or from the world the model carries. Like bench/demo_time.py it records how much CPU other
processes took meanwhile: on a shared machine a contaminated figure then shows itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


FIGURES = ("samples_per_s", "generation_share", "gen_tokens_per_s", "response_len", "other_cpu_s")


def length_reward(prompts: list[dict], responses: list[str]) -> list[float]:
    return [-abs(len(r.split()) - 20) / 20 for r in responses]


def world_prompts(model: str, out: Path, n: int = 512) -> Path:
    from chatforge.data.conversations import write_jsonl
    from chatforge.evals.heldout import resolve_world
    from chatforge.world.world import World

    write_jsonl(out, (p.to_dict() for p in World(resolve_world(model, None)).prompts("train", n, "ppo-bench")))
    return out


def one_run(cfg, reward_fn, warmup: int) -> dict:
    from chatforge.train.ppo import ppo

    before_busy, _ = cpu_jiffies()
    before_ours = time.process_time()
    start = time.time()
    ppo(cfg, reward_fn, progress=False)
    wall = time.time() - start
    ours = time.process_time() - before_ours
    other = max((cpu_jiffies()[0] - before_busy) / os.sysconf("SC_CLK_TCK") - ours, 0.0)
    log = [json.loads(line) for line in (Path(cfg.output_dir) / "log.jsonl").read_text().splitlines()][warmup:]
    total, generate = sum(e["time_total"] for e in log), sum(e["time_generate"] for e in log)
    tokens = sum(e["response_len"] for e in log) * cfg.rollout_batch_size
    return {"rollout": cfg.rollout, "steps_timed": len(log), "samples_per_s": round(len(log) * cfg.rollout_batch_size
                                                                                     / total, 2),
            "generation_share": round(generate / total, 3), "gen_tokens_per_s": round(tokens / generate, 1),
            "response_len": round(tokens / len(log) / cfg.rollout_batch_size, 1),
            "reward_last": log[-1]["reward"], "wall_s": round(wall, 1), "other_cpu_s": round(other, 1)}


def main() -> None:
    from chatforge.train.ppo import PPOConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the SFT model directory")
    ap.add_argument("--reward-model", help="a sequence-classification reward model (default: a length reward)")
    ap.add_argument("--likelihood-gate", help="the reward model's likelihood_gate.safetensors, as the demo's PPO uses")
    ap.add_argument("--prompts", help="prompts JSONL (default: the train prompts of the model's world)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="first steps of each run left out of the figures")
    ap.add_argument("--repeats", type=int, default=1, help="runs per rollout, alternating; figures are medians")
    # the rest default to PPOConfig's defaults, so the generation share is that of a real run
    ap.add_argument("--rollout-batch-size", type=int, default=PPOConfig.rollout_batch_size)
    ap.add_argument("--minibatch-size", type=int, default=PPOConfig.minibatch_size)
    ap.add_argument("--ppo-epochs", type=int, default=PPOConfig.ppo_epochs)
    ap.add_argument("--max-new-tokens", type=int, default=PPOConfig.max_new_tokens)
    ap.add_argument("--precision", default=PPOConfig.precision)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.steps <= args.warmup:
        sys.exit("--steps must be larger than --warmup")

    import torch

    torch.set_num_threads(args.threads)
    runs: dict[str, list[dict]] = {"chatforge": [], "generate": []}
    with tempfile.TemporaryDirectory() as tmp:
        prompts = args.prompts or str(world_prompts(args.model, Path(tmp) / "prompts.jsonl"))
        for i in range(args.repeats):
            order = ("chatforge", "generate") if i % 2 == 0 else ("generate", "chatforge")
            for rollout in order:
                cfg = PPOConfig(model=args.model, prompts=prompts, output_dir=str(Path(tmp) / f"{rollout}-{i}"),
                                reward_model=args.reward_model, likelihood_gate=args.likelihood_gate, steps=args.steps,
                                rollout_batch_size=args.rollout_batch_size, minibatch_size=args.minibatch_size,
                                ppo_epochs=args.ppo_epochs, max_new_tokens=args.max_new_tokens,
                                precision=args.precision, rollout=rollout, seed=args.seed, save_every=10_000)
                runs[rollout].append(one_run(cfg, None if args.reward_model else length_reward, args.warmup))
    median = {r: {k: round(statistics.median(x[k] for x in rs), 3) for k in FIGURES} for r, rs in runs.items()}
    ours, theirs = median["chatforge"], median["generate"]
    summary = {"model": args.model, "reward": args.reward_model or "length", "threads": args.threads,
               "cores": os.cpu_count(), "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
               "rollout_batch_size": args.rollout_batch_size, "minibatch_size": args.minibatch_size,
               "ppo_epochs": args.ppo_epochs, "max_new_tokens": args.max_new_tokens, "precision": args.precision,
               "median": median, "runs": runs,
               "ratio_samples_per_s": round(ours["samples_per_s"] / theirs["samples_per_s"], 2),
               "ratio_gen_tokens_per_s": round(ours["gen_tokens_per_s"] / theirs["gen_tokens_per_s"], 2)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))

if __name__ == "__main__":
    main()
