"""The reward model's blind spot, filled by the SFT model's own likelihood behind a gate read from the prompt.

A reward model of a few million parameters, trained on a few thousand comparisons, cannot tell which fact goes
with a name or whether a sum is right: on the small demo it picks the oracle's choice on 0.62 of known-fact pairs
and 0.78 of task pairs whatever its training (learning rate, epochs, 3x the comparisons, frozen layers). The SFT
model it starts from knows both: its mean token log-probability of a reply picks the oracle's choice on 0.82 and
0.98 of those pairs. It is no judge of refusals, though (a complete refusal is less likely than a bare one), so
the likelihood must count where the prompt asks for a fact or a sum and not elsewhere. The gate reads that from
the prompt, through the reward model's own hidden state at the prompt's end:

    reward(prompt, reply) = r + softplus(W·h + b) · (mean log-prob, min log-prob) / a

r is the reward model's score, h its standardised hidden state at the prompt's last token, the log-probs those of
the reply's tokens (its end-of-turn token included) under the SFT model at temperature 1. a, W and b are fitted by
logistic regression on the raters' train comparisons (logit P(chosen ≻ rejected) = a·Δr + gate·Δ(mean, min)), so
the reward keeps the reward model's scale. The softplus keeps the gate's weights ≥ 0: PPO maximises this reward,
and a negative weight would pay it for writing text the SFT model finds unlikely.

PPO already holds the SFT model (its frozen reference) and the reward model, so the term costs it one prompt
forward of the reward model per batch; the reference's log-probs at temperature 1 come from the forward it already
makes for the KL penalty (PPOTrainer.reference_logprobs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from chatforge.errors import ChatforgeError
from chatforge.train.ppo_core import logprobs_from_logits
from chatforge.train.rollout import left_pad, positions

GATE_FILE = "likelihood_gate.safetensors"
FEATURES = ("mean_logprob", "min_logprob")


@dataclass
class LikelihoodGate:
    a: torch.Tensor  # [] the reward model's weight in the fitted logit
    w: torch.Tensor  # [H, 2]
    b: torch.Tensor  # [2]
    mu: torch.Tensor  # [H] the train prompts' mean hidden state
    sd: torch.Tensor  # [H] and its standard deviation

    def weights(self, states: torch.Tensor) -> torch.Tensor:
        """The likelihood features' weights for each prompt, [B, 2], all ≥ 0."""
        return torch.nn.functional.softplus(((states.float() - self.mu) / self.sd) @ self.w + self.b)

    def bonus(self, states: torch.Tensor, mean_lp: torch.Tensor, min_lp: torch.Tensor) -> torch.Tensor:
        """What the likelihood adds to the reward model's score, in the reward model's units: [B]."""
        return (self.weights(states) * torch.stack([mean_lp, min_lp], dim=1).float()).sum(1) / self.a

    def to(self, device) -> "LikelihoodGate":
        return LikelihoodGate(**{k: v.to(device) for k, v in vars(self).items()})

    def save(self, path: Path, **meta) -> None:
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in vars(self).items()}, str(path),
                  metadata={"features": json.dumps(FEATURES), **{k: json.dumps(v) for k, v in meta.items()}})

    @classmethod
    def load(cls, path: str | Path) -> "LikelihoodGate":
        from safetensors.torch import load_file

        if not Path(path).is_file():
            raise ChatforgeError(f"likelihood gate '{path}' not found")
        try:
            tensors = load_file(str(path))
            return cls(**{k: tensors[k] for k in ("a", "w", "b", "mu", "sd")})
        except Exception as e:  # noqa: BLE001
            raise ChatforgeError(f"'{path}' is not a likelihood gate: {str(e).splitlines()[0]}") from e


def reply_stats(logprobs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and minimum log-prob over each row's reply tokens: [B, T], [B, T] -> [B], [B]."""
    m = mask.bool()
    mean = torch.where(m, logprobs, 0.0).sum(1) / m.sum(1).clamp(min=1)
    return mean, torch.where(m, logprobs, torch.inf).amin(1).clamp(max=0.0)


def prompt_states(rm, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """The reward model's last hidden state at each left-padded prompt's last token: [B, H]."""
    out = rm.base_model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions(prompt_mask),
                        use_cache=False)
    return out.last_hidden_state[:, -1].float()


def reply_tokens(tokenizer, messages: list[dict], reply: str) -> tuple[list[int], list[int]]:
    """(prompt ids, reply ids) as PPO sees them: the prompt with the assistant's turn opened, then the reply and
    the template's end of turn."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": reply}], tokenize=False)
    rest = full[len(prompt):] if full.startswith(prompt) else reply
    return (tokenizer(prompt, add_special_tokens=False)["input_ids"],
            tokenizer(rest, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def features(lm, rm, tokenizer, prompts: list[list[dict]], replies: list[str],
             batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per reply: [mean log-prob, min log-prob] under `lm` at temperature 1 [N, 2], and the reward model's hidden
    state at its prompt's end [N, H]."""
    pairs = [reply_tokens(tokenizer, p, r) for p, r in zip(prompts, replies)]
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), len(pairs[i][1])))  # little padding
    pad = tokenizer.pad_token_id
    stats, states = [], []
    for i in range(0, len(pairs), batch_size):
        chunk = [pairs[j] for j in order[i:i + batch_size]]
        prompt_ids, prompt_mask = left_pad([p for p, _ in chunk], pad)
        width = max(len(r) for _, r in chunk)
        tokens = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, r) in enumerate(chunk):
            tokens[row, :len(r)], mask[row, :len(r)] = torch.tensor(r, dtype=torch.long), 1
        prompt_ids, prompt_mask, tokens, mask = (t.to(lm.device) for t in (prompt_ids, prompt_mask, tokens, mask))
        attention = torch.cat([prompt_mask, mask], dim=1)
        logits = lm(input_ids=torch.cat([prompt_ids, tokens], dim=1), attention_mask=attention,
                    position_ids=positions(attention), use_cache=False).logits[:, prompt_ids.shape[1] - 1:-1]
        logp = logprobs_from_logits(logits, tokens)
        stats.append(torch.stack(reply_stats(logp, mask), dim=1).cpu())
        states.append(prompt_states(rm, prompt_ids.to(rm.device), prompt_mask.to(rm.device)).cpu())
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(stats)[back], torch.cat(states)[back]


def pair_features(lm, rm, tokenizer, comparisons, batch_size: int = 64):
    """Chosen − rejected [reward model score, mean log-prob, min log-prob] per comparison [N, 3], and the prompt
    state [N, H]. Each distinct (prompt, reply) is scored once."""
    from chatforge.models.scoring import score_replies

    index: dict[str, int] = {}
    prompts, replies = [], []
    for c in comparisons:
        for reply in (c.chosen, c.rejected):
            key = json.dumps(c.prompt.messages) + "\x00" + reply
            if key not in index:
                index[key] = len(replies)
                prompts.append(c.prompt.messages)
                replies.append(reply)
    lp, states = features(lm, rm, tokenizer, prompts, replies, batch_size)
    r = torch.tensor(score_replies(rm, tokenizer, prompts, replies, batch_size))[:, None]
    x = torch.cat([r, lp], dim=1)

    def at(c, reply):
        return index[json.dumps(c.prompt.messages) + "\x00" + reply]

    chosen = torch.tensor([at(c, c.chosen) for c in comparisons])
    rejected = torch.tensor([at(c, c.rejected) for c in comparisons])
    return x[chosen] - x[rejected], states[chosen]


def fit_gate(deltas: torch.Tensor, states: torch.Tensor, reg: float = 0.1, steps: int = 600) -> LikelihoodGate:
    """Logistic regression of "the chosen reply wins" on a·Δr + gate·Δ(mean, min), L2 `reg` on W."""
    torch.manual_seed(0)
    mu, sd = states.mean(0), states.std(0) + 1e-6
    z = (states - mu) / sd
    a = torch.ones((), requires_grad=True)
    w = torch.zeros(states.shape[1], 2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([a, w, b], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        gate = torch.nn.functional.softplus(z @ w + b)
        logit = a * deltas[:, 0] + (gate * deltas[:, 1:]).sum(1)
        loss = torch.nn.functional.softplus(-logit).mean() + reg * (w ** 2).sum()
        loss.backward()
        opt.step()
    if a.item() <= 0:
        raise ChatforgeError("likelihood gate: the reward model's score came out with a weight ≤ 0 on the "
                             "comparisons; the reward model did not learn them")
    return LikelihoodGate(a.detach(), w.detach(), b.detach(), mu, sd)


def gated_margins(gate: LikelihoodGate, deltas: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The gated reward's chosen − rejected margin per comparison (> 0: the chosen reply wins)."""
    return deltas[:, 0] + gate.bonus(states, deltas[:, 1], deltas[:, 2])
