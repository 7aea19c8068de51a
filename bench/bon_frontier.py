"""How far can a policy that stays near SFT get with this reward? Best-of-n as the yardstick (Gao et al. 2022).

    python bench/bon_frontier.py RUN [--n 64] [--temperature 0.8] [--json OUT]

For each held-out eval prompt, RUN/sft/model writes n replies at PPO's rollout temperature. Three judges then pick
the best of the first 1, 2, 4, ... n: the oracle (a perfect reward), RUN/reward/model alone, and the reward model
with the likelihood gate (the reward the demo's PPO gets). Each pick is played against SFT's greedy reply,
judged by the oracle, as the pipeline's win rate is. Best-of-n's KL to the policy it samples from is
log n - (n-1)/n nats, so the table reads as a win-rate-against-KL frontier. Beside it, RUN/ppo's own win rate and
final KL: the policy PPO found at the KL it spent.

The oracle column is the ceiling for any reward at that KL; the reward-model columns are what this reward model
allows. If the oracle's row at PPO's KL is already below a target, no reward model makes PPO reach it there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def bon_kl(n: int) -> float:
    """KL(best-of-n || sampling policy) in nats, for a judge without ties (Stiennon et al. 2020, appendix G.3)."""
    return math.log(n) - (n - 1) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=64, help="samples per prompt (the table stops at the last power of 2)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import torch

    from chatforge.evals.heldout import resolve_world
    from chatforge.evals.winrate import tally
    from chatforge.models.generate import SamplingConfig, reply
    from chatforge.models.loading import load_model, load_reward_model
    from chatforge.models.scoring import score_replies
    from chatforge.train.likelihood_gate import GATE_FILE, LikelihoodGate, features
    from chatforge.world.world import World

    world = World(resolve_world(str(a.run / "sft" / "model"), None))
    prompts = world.eval_prompts()
    messages = [p.messages for p in prompts]
    lm, tok = load_model(str(a.run / "sft" / "model"), device="cpu")
    rm, rm_tok = load_reward_model(str(a.run / "reward" / "model"))
    gate_path = a.run / "reward" / "model" / GATE_FILE
    gate = LikelihoodGate.load(gate_path) if gate_path.is_file() else None

    greedy = [world.oracle.judge(p, r).score
              for p, r in zip(prompts, reply(lm, tok, messages, SamplingConfig(a.max_new_tokens, 0.0)))]
    oracle, rm_score, gated = [], [], []  # [sample][prompt]
    for s in range(a.n):
        replies = reply(lm, tok, messages, SamplingConfig(a.max_new_tokens, a.temperature, 1.0, seed=s))
        oracle.append([world.oracle.judge(p, r).score for p, r in zip(prompts, replies)])
        r = torch.tensor(score_replies(rm, rm_tok, messages, replies))
        rm_score.append(r.tolist())
        if gate is not None:
            stats, states = features(lm, rm, tok, messages, replies)
            gated.append((r + gate.bonus(states, stats[:, 0], stats[:, 1])).tolist())
        print(f"\rsampled {s + 1}/{a.n}", end="", flush=True)
    print()

    judges = {"oracle": oracle, "reward_model": rm_score, **({"gated_reward": gated} if gated else {})}
    rows = []
    n = 1
    while n <= a.n:
        row = {"n": n, "kl": round(bon_kl(n), 3)}
        for name, scores in judges.items():
            picks = [oracle[max(range(n), key=lambda s: scores[s][i])][i] for i in range(len(prompts))]
            outcomes = [1.0 if x > g else 0.5 if x == g else 0.0 for x, g in zip(picks, greedy)]
            t = tally(outcomes)
            families = {f: tally([o for o, p in zip(outcomes, prompts) if p.family == f])["win_rate"]
                        for f in sorted({p.family for p in prompts})}
            row[name] = {"win_rate": t["win_rate"], "wins": t["wins"], "ties": t["ties"], "losses": t["losses"],
                         "families": families}
        rows.append(row)
        n *= 2
    ppo = {}
    if (a.run / "winrate" / "report.json").is_file() and (a.run / "ppo" / "metrics.json").is_file():
        ppo = {"win_rate": json.loads((a.run / "winrate" / "report.json").read_text())["ppo_vs_sft"]["win_rate"],
               "final_kl": json.loads((a.run / "ppo" / "metrics.json").read_text()).get("final_kl")}

    print(f"{'n':>4} {'KL':>6}  " + "  ".join(f"{name:>22}" for name in judges))
    for row in rows:
        print(f"{row['n']:>4} {row['kl']:>6}  " + "  ".join(
            f"{row[name]['win_rate']:>7} ({row[name]['wins']:>3}/{row[name]['ties']:>3}/{row[name]['losses']:>3})"
            for name in judges))
    if ppo:
        print(f"PPO: win rate {ppo['win_rate']} at KL {ppo['final_kl']}")
    if a.json:
        a.json.write_text(json.dumps({"run": str(a.run), "temperature": a.temperature, "prompts": len(prompts),
                                      "frontier": rows, "ppo": ppo}, indent=2))


if __name__ == "__main__":
    main()
