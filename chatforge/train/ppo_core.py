"""The math of PPO for language models (InstructGPT; Ziegler et al. 2019), as small functions on tensors.

Shapes: every per-token tensor is [batch, T] over the *response* tokens, right-padded; `mask` is 1 on real
response tokens (the stop token included) and 0 on padding. Nothing here knows about models or tokenizers.
"""

from __future__ import annotations

import torch


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log π(token) = log_softmax(logits)[token], per position: [B, T, V], [B, T] -> [B, T]."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ(x·m) / Σm over the valid positions (over all of them, or along `dim`); 0 where nothing is valid.
    Padding is selected out, not multiplied by 0: an inf there (a ratio of two tiny probabilities of a pad
    token) would make inf·0 = NaN."""
    x = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    mask = mask.to(x.dtype)
    if dim is None:
        return x.sum() / mask.sum().clamp(min=1)
    return x.sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / sqrt(σ² + eps), μ and σ² the mean and (population) variance over valid tokens only; padding → 0.

    Advantages are whitened over the whole rollout batch so the policy step size does not depend on the
    reward's scale, and padding must not pull the mean towards zero."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask.to(x.dtype)


def kl_penalty_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor,
                       mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards r_t = −β·(log π(a_t) − log π_ref(a_t)), plus the sequence score at the last valid token.

    This is the InstructGPT objective R(x, y) − β·log(π(y|x)/π_ref(y|x)) spread over tokens: the KL term is
    dense, the reward model's score arrives once, at the end. Returns (rewards [B, T], KL per sequence [B],
    Σ_t (log π − log π_ref), the sampled estimate of KL(π‖π_ref) for that response)."""
    m = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * m
    rewards = -beta * kl
    last = (torch.arange(mask.shape[1], device=mask.device) * mask.long()).argmax(dim=1)
    rewards[torch.arange(len(scores), device=mask.device), last] += scores.to(rewards.dtype)
    return rewards, kl.sum(dim=1)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards over the response:

        δ_t = r_t + γ·V_{t+1} − V_t          (V after the last valid token is 0: the episode ended)
        A_t = δ_t + γ·λ·A_{t+1}
        returns_t = A_t + V_t                 (the value head's regression target)

    Returns (advantages, returns), both 0 on padding."""
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * m


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, with ρ_t = exp(log π − log π_old):

        loss = mean_t max(−A_t·ρ_t, −A_t·clip(ρ_t, 1−ε, 1+ε))

    Returns (loss, clip fraction = share of tokens where the clipped term was the larger one, approx KL(π_old‖π)
    = mean_t (ρ_t − 1) − log ρ_t, Schulman's low-variance non-negative estimator)."""
    # 0 on padding before exp: an overflow there would reach the gradient as 0·inf = NaN even if masked after
    log_ratio = (logprobs - old_logprobs).masked_fill(mask == 0, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
    return loss, clip_frac.detach(), approx_kl.detach()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss: V_clip = V_old + clip(V − V_old, −ε, ε),

        loss = 0.5 · mean_t max((V − R)², (V_clip − R)²)

    so one update cannot move a value estimate further than ε from where the rollout saw it.
    Returns (loss, share of tokens where the clipped error was the larger one)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_err = (values - returns) ** 2
    clipped_err = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_err, clipped_err), mask)
    return loss, masked_mean((clipped_err > unclipped_err).float(), mask).detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = −Σ_v p_v·log p_v = logsumexp(z) − Σ_v p_v·z_v, per position: [..., V] -> [...]."""
    logits = logits.float()
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(dim=-1)


class FixedKLController:
    """β stays what it was set to."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_samples: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): steer β so the policy's KL to the reference tracks a target:

        e = clip(KL / target − 1, −0.2, 0.2)
        β ← β · (1 + e · n / horizon)

    with n the samples in this batch: β moves by at most 20% per `horizon` samples."""

    def __init__(self, init: float, target: float, horizon: int):
        super().__init__(init)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_samples: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_samples / self.horizon


def leave_one_out(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Each score minus the mean of the other k − 1 scores of its group (consecutive rows, k to a group): RLOO's
    baseline (Ahmadian et al. 2024). [B] -> [B], B a multiple of k ≥ 2."""
    groups = scores.view(-1, k)
    return (groups - (groups.sum(1, keepdim=True) - groups) / (k - 1)).flatten()
