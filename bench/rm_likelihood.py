"""The reward model alone against the reward with the likelihood gate (chatforge/train/likelihood_gate.py), offline,
on a finished demo run's comparisons, for several strengths of the gate's L2 penalty.

    python bench/rm_likelihood.py RUN [--reg 0.01 0.1 1.0] [--json OUT]

The reward stage fits the gate once, with RewardConfig.gate_reg; this re-fits it on RUN/compare/train.jsonl's
rater labels with RUN/sft/model's likelihoods and RUN/reward/model's scores and states, and scores every fit on the
held-out rater labels (test.jsonl, against the run's noise ceiling) and the oracle's (test_oracle.jsonl).

Measured on the timed small demo of 2026-11-27 (its reward model: 66.3% of a 71.4 ceiling, 83.5% on oracle pairs,
known facts 0.62, tasks 0.78), with the gate before its weights were kept ≥ 0: reg 0.1, 68.3% (gap 3.1) and 87.9%
on oracle pairs (known facts 0.82, tasks 0.96); reg 1.0, 67.8% (gap 3.5) and 88.6%. With the softplus gate, reg 0.1:
67.8% (gap 3.5) and 89.1%.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--reg", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="L2 on the gate's weights")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import torch

    from chatforge.data.comparisons import read_comparisons
    from chatforge.models.loading import load_model, load_reward_model
    from chatforge.train.likelihood_gate import fit_gate, gated_margins, pair_features
    from chatforge.train.reward import accuracy_report

    lm, _ = load_model(str(a.run / "sft" / "model"), device="cpu")
    rm, tok = load_reward_model(str(a.run / "reward" / "model"))
    splits = {s: read_comparisons(a.run / "compare" / f"{s}.jsonl") for s in ("train", "test", "test_oracle")}
    tables = {s: pair_features(lm, rm, tok, comps) for s, comps in splits.items()}
    ceiling = json.loads((a.run / "reward" / "metrics.json").read_text()).get("rater_ceiling")

    def report(margins: torch.Tensor, split: str) -> dict:
        return accuracy_report(splits[split], margins.tolist(), [0.0] * len(margins))

    out = {"run": str(a.run), "rater_ceiling": ceiling,
           "reward_model": {s: report(tables[s][0][:, 0], s) for s in tables}}
    for reg in a.reg:
        gate = fit_gate(*tables["train"], reg=reg)
        out[f"gated_reg_{reg}"] = {s: report(gated_margins(gate, *tables[s]), s) for s in tables}
    for name, res in out.items():
        if isinstance(res, dict) and "test" in res:
            gap = f" (gap {ceiling - res['test']['accuracy']:.4f})" if ceiling else ""
            print(f"{name:18s} train {res['train']['accuracy']:.4f}  raters {res['test']['accuracy']:.4f}{gap}  "
                  f"oracle {res['test_oracle']['accuracy']:.4f}  {res['test_oracle']['families']}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
