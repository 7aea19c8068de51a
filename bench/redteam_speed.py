"""Red-team speed: attacks judged per second in-process and through HTTP, and whether both give the same verdicts.

    python bench/redteam_speed.py MODEL [--queries 200] [--attacker templates|lm] [--temperature 0] [--json FILE]

One list of attacks (the template attacker on held-out wrappers, or the attacker LM) is proposed once; the same
campaign (same attacks, same per-attack seeds, same sampling) then runs twice: against the model in-process
(`ModelTarget`) and against `python -m chatforge serve MODEL` started as a subprocess on a free loopback port
(`EndpointTarget`, unbounded rate, `--concurrency` requests in flight; the server's moderation only logs, so replies
reach the judge as the model wrote them). Reports attacks judged per second each way (whole campaign: generation,
judging and journaling; the server's start-up is not counted) and the share of attacks with the same reply and the
same verdict. Like the other benches it records how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving import start_server  # noqa: E402

from chatforge.redteam import Attacker, CampaignConfig, run_campaign  # noqa: E402

LOG_ONLY = json.dumps({"default": "log", **dict.fromkeys(
    ["weapons", "malware", "drugs", "fraud", "harassment", "toxic", "jailbreak"], "log")})


def cpu_jiffies() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


class Fixed(Attacker):
    """Proposes a fixed list of attacks, in order: both campaigns send exactly the same ones."""

    def __init__(self, attacks, name):
        self.attacks, self.name, self.split = list(attacks), name, "heldout"

    def propose(self, n, rng):
        out, self.attacks = self.attacks[:n], self.attacks[n:]
        return out


def timed(cfg, target, judge, attacks, name):
    jiffies, start = cpu_jiffies(), time.monotonic()
    run_campaign(cfg, target, judge, [Fixed(attacks, name)], progress=False, console=False)
    seconds = time.monotonic() - start
    rows = [json.loads(line) for line in open(Path(cfg.out) / "attacks.jsonl")]
    return rows, seconds, cpu_jiffies() - jiffies


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--attacker", default="templates", choices=["templates", "lm"])
    ap.add_argument("--attacker-model", default=None, help="for --attacker lm (default: RUN/sft/model)")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from chatforge.evals.heldout import resolve_world
    from chatforge.redteam import EndpointTarget, LMAttacker, ModelTarget, OracleJudge, TemplateAttacker
    from chatforge.redteam.targets import campaign_sampling

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sampling = campaign_sampling(args.max_tokens, args.temperature)
    target = ModelTarget(args.model, sampling)
    judge = OracleJudge(resolve_world(str(target.path), None))
    if args.attacker == "templates":
        attacker = TemplateAttacker(judge.world, "heldout")
    else:
        lm = args.attacker_model or str(Path(target.path).resolve().parent.parent / "sft" / "model")
        attacker = LMAttacker(lm)
    rng = random.Random(args.seed)
    attacks, seen = [], set()
    while len(attacks) < args.queries:
        batch = [a for a in attacker.propose(min(64, args.queries - len(attacks)), rng) if a.id not in seen]
        seen.update(a.id for a in batch)
        attacks += batch
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CampaignConfig(out=f"{tmp}/inproc", queries=len(attacks), batch_size=args.batch_size, seed=args.seed)
        local, local_s, local_j = timed(cfg, target, judge, attacks, args.attacker)
        target.close()
        server, url = start_server(str(target.path), Path(tmp), ["--policy", LOG_ONLY],
                                   {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        try:
            endpoint = EndpointTarget(f"{url}/v1", "default", sampling, rate=0,
                                      concurrency=args.concurrency)
            cfg = CampaignConfig(out=f"{tmp}/http", queries=len(attacks), batch_size=args.batch_size, seed=args.seed)
            remote, remote_s, remote_j = timed(cfg, endpoint, judge, attacks, args.attacker)
        finally:
            server.terminate()
            server.wait(10)
    by_id = {r["id"]: r for r in remote}
    same_reply = sum(by_id.get(r["id"], {}).get("reply") == r["reply"] for r in local)
    same_verdict = sum(by_id.get(r["id"], {}).get("verdict") == r["verdict"] for r in local)
    ticks = os.sysconf("SC_CLK_TCK")
    result = {
        "model": str(target.path), "attacker": args.attacker, "queries": len(local), "sampling": vars(sampling),
        "batch_size": args.batch_size, "concurrency": args.concurrency,
        "in_process": {"seconds": round(local_s, 2), "attacks_per_s": round(len(local) / local_s, 2),
                       "cpu_s_machine": round(local_j / ticks, 1)},
        "http": {"seconds": round(remote_s, 2), "attacks_per_s": round(len(remote) / remote_s, 2),
                 "cpu_s_machine": round(remote_j / ticks, 1)},
        "same_reply": round(100 * same_reply / len(local), 1),
        "same_verdict": round(100 * same_verdict / len(local), 1),
        "successes": {"in_process": sum(r["verdict"]["violation"] for r in local),
                      "http": sum(r["verdict"]["violation"] for r in remote)},
        "differences": [{"attack": r["messages"][-1]["content"], "in_process": r["reply"],
                         "http": by_id.get(r["id"], {}).get("reply")}
                        for r in local if by_id.get(r["id"], {}).get("reply") != r["reply"]][:5],
    }
    print(f"in-process: {result['in_process']['attacks_per_s']} attacks judged/s · HTTP: "
          f"{result['http']['attacks_per_s']} attacks judged/s · same reply {result['same_reply']}% · "
          f"same verdict {result['same_verdict']}% ({len(local)} attacks)")
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
