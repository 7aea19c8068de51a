"""How long `chatforge demo` takes end to end (world → eval) and how much memory it peaks at.

    python bench/demo_time.py --preset small [--repeats 1] [--threads 0]

Runs the demo in a fresh run directory as a child process and reports wall time, peak RSS, seconds per stage
(from run.json), and how much CPU *other* processes used meanwhile (from /proc/stat): on a shared 2-core
machine a contaminated figure then shows itself. The package install is not included.

`rlhf_s` is the part the RLHF issue bounds (world → PPO → eval: every stage but the moderation classifier, the
red-team campaign and the adversarial rounds, which `safety_s` sums); `cpu` names the processor, since the same
demo takes longer on one machine kind than on another (README, Figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAFETY_STAGES = ("moderation", "redteam", "adversarial")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def one_run(preset: str, threads: int, keep: Path | None = None) -> dict:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = keep if keep else Path(tmp) / "run"
        if run_dir.exists():
            sys.exit(f"{run_dir} exists: a timing needs a fresh run directory")
        before_busy, before_total = cpu_jiffies()
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "chatforge", "demo", "--preset", preset, "--run-dir",
                               str(run_dir)], env=env, capture_output=True, text=True)
        wall = time.time() - start
        if proc.returncode != 0:
            sys.exit(f"demo failed:\n{proc.stderr[-3000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, total = cpu_jiffies()
        ours = (after.ru_utime + after.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
        hz = os.sysconf("SC_CLK_TCK")
        machine_busy = (busy - before_busy) / hz
        stages = {k: v["seconds"] for k, v in json.loads((run_dir / "run.json").read_text())["stages"].items()}
        card = json.loads((run_dir / "scorecard.json").read_text())
        safety = sum(v for k, v in stages.items() if k in SAFETY_STAGES)
        return {"wall_s": round(wall, 1), "rlhf_s": round(sum(stages.values()) - safety, 1),
                "safety_s": round(safety, 1), "peak_rss_mb": round(after.ru_maxrss / 1024), "stages_s": stages,
                "our_cpu_s": round(ours, 1), "other_cpu_s": round(max(machine_busy - ours, 0.0), 1),
                "scorecard": card}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep", type=Path, help="run in this (new) directory and keep it")
    args = ap.parse_args()
    runs = [one_run(args.preset, args.threads, args.keep if args.repeats == 1 else None) for _ in range(args.repeats)]
    summary = {"preset": args.preset, "cores": os.cpu_count(), "cpu": cpu_model(), "runs": runs,
               "median_wall_s": statistics.median(r["wall_s"] for r in runs),
               "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
