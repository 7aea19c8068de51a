"""Would the reward model judge facts and tasks better with the SFT model's own likelihood beside it? Offline, on a
finished demo run's comparisons; nothing is trained but a 2×hidden gate.

    python bench/rm_likelihood.py RUN [--reg 0.1] [--json OUT]

Why: the small reward model is right on only 0.62-0.74 of the oracle's known-fact pairs whatever its training
(learning rate, epochs, 3× the comparisons, frozen layers), while the SFT model's mean token log-probability of a
reply picks the oracle's choice on 0.82 of those pairs and 0.98 of the task pairs, and is at chance or worse on
refusals (a complete refusal is less likely than a bare one). So the likelihood should count where the prompt asks
for a fact or a sum and not elsewhere: a gate read from the prompt.

For each pair, with r the reward model's score, and m, n the mean and minimum log-probability of the reply's tokens
under RUN/sft/model (temperature 1):

    logit P(chosen ≻ rejected) = a·Δr + (W·h + b) · (Δm, Δn)

h is the reward model's last hidden state at the end of the prompt (standardised), shared by both replies. a, W, b
are fitted by logistic regression on RUN/compare/train.jsonl's rater labels (L2 `--reg` on W; `--reg -1`: no gate,
one global weight per feature), then scored on the held-out rater labels (test.jsonl, against the run's noise
ceiling) and the oracle's (test_oracle.jsonl), beside the reward model alone.

Measured on the timed small demo of 2026-11-27 (its reward model: 66.3% of a 71.4 ceiling, 83.8% on oracle pairs,
known facts 0.62, tasks 0.78): `--reg 0.1`, 68.3% (gap 3.1) and **87.9%** on oracle pairs (known facts 0.82, tasks
0.96); `--reg 1.0`, 67.8% (gap 3.5) and **88.6%** (known facts 0.85, tasks 0.96); no gate (`--reg -1`), 66.2% and
86.3%. Not yet a reward PPO uses: PPO already holds the reference model whose log-probs these are.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch


def reply_features(lm, rm, tok, messages: list[dict], reply: str) -> tuple[list[float], torch.Tensor]:
    """([reward-model score, mean log-prob, min log-prob], the reward model's hidden state at the prompt's end)."""
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": reply}], tokenize=False)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([tok(full, add_special_tokens=False)["input_ids"]])
    logp = lm(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0][n_prompt - 1:]
    hidden = rm.model(ids).last_hidden_state[0]  # causal: the prompt's last position sees the prompt alone
    score = rm.score(hidden[-1]).item()
    return [score, logp.mean().item(), logp.min().item()], hidden[n_prompt - 1]


@torch.no_grad()
def pair_table(lm, rm, tok, comparisons) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Per pair: chosen − rejected features [N, 3], the prompt state [N, H], the prompt family."""
    cache: dict[str, tuple[list[float], torch.Tensor]] = {}

    def get(messages, reply):
        key = json.dumps(messages) + "\x00" + reply
        if key not in cache:
            cache[key] = reply_features(lm, rm, tok, messages, reply)
        return cache[key]

    deltas, states, families = [], [], []
    for c in comparisons:
        (x, h), (y, _) = get(c.prompt.messages, c.chosen), get(c.prompt.messages, c.rejected)
        deltas.append([a - b for a, b in zip(x, y)])
        states.append(h)
        families.append(c.prompt.family)
    return torch.tensor(deltas), torch.stack(states), families


def fit(deltas: torch.Tensor, states: torch.Tensor, reg: float, steps: int = 600):
    """Logistic regression of "chosen wins" on the features; returns logit(deltas, states)."""
    mu, sd = states.mean(0), states.std(0) + 1e-6
    gated = reg >= 0
    a = torch.ones((), requires_grad=True)
    w = torch.zeros(states.shape[1], 2, requires_grad=gated)
    b = torch.zeros(2, requires_grad=True)

    def logit(d, s):
        gate = ((s - mu) / sd) @ w + b
        return a * d[:, 0] + (gate * d[:, 1:]).sum(1)

    opt = torch.optim.Adam([a, b] + ([w] if gated else []), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-logit(deltas, states)).mean() + max(reg, 0.0) * (w ** 2).sum()
        loss.backward()
        opt.step()
    return lambda d, s: logit(d, s).detach()


def accuracy(right: torch.Tensor, families: list[str]) -> dict:
    per = defaultdict(list)
    for f, ok in zip(families, right.tolist()):
        per[f].append(ok)
    return {"accuracy": round(right.float().mean().item(), 4), "pairs": len(families),
            "families": {f: round(sum(v) / len(v), 2) for f, v in sorted(per.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--reg", type=float, default=0.1, help="L2 on the gate; -1: no gate (one weight per feature)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from chatforge.data.comparisons import read_comparisons

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(a.run / "sft" / "model"))
    lm = AutoModelForCausalLM.from_pretrained(str(a.run / "sft" / "model")).eval()
    rm = AutoModelForSequenceClassification.from_pretrained(str(a.run / "reward" / "model")).eval()
    tables = {s: pair_table(lm, rm, tok, read_comparisons(a.run / "compare" / f"{s}.jsonl"))
              for s in ("train", "test", "test_oracle")}
    logit = fit(*tables["train"][:2], reg=a.reg)
    ceiling = json.loads((a.run / "reward" / "metrics.json").read_text()).get("rater_ceiling")
    out = {"run": str(a.run), "reg": a.reg, "rater_ceiling": ceiling}
    for split, (deltas, states, families) in tables.items():
        out[split] = {"reward_model": accuracy(deltas[:, 0] > 0, families),
                      "with_likelihood": accuracy(logit(deltas, states) > 0, families)}
    if ceiling:
        out["gap_to_ceiling"] = {k: round(ceiling - out["test"][k]["accuracy"], 4)
                                 for k in ("reward_model", "with_likelihood")}
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
