"""Sampling PPO's responses: a batch of left-padded prompts in, right-padded response tokens out.

`sample` is a hand-written decode loop over the model's forward with a KV cache. Why not `model.generate`:
- its per-step overhead (logits processors, stopping criteria, cache and mask bookkeeping, output assembly) is
  paid once per generated token and, for a few-million-parameter model on a CPU, costs as much as the forward;
- it keeps finished rows in the batch until the longest one stops; we drop them, so a batch where most
  replies are short decodes only the long tail;
- PPO needs log π(token) for every sampled token; we have the logits in hand anyway.
`generate_baseline` is the same thing through `model.generate`, for `bench/ppo_throughput.py` to compare.

Both return a `Rollout`. Log-probs are those of the model at the sampling temperature, log_softmax(z / T),
without top-p truncation (as TRL does): that is the distribution PPO's forward passes compute, too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    tokens: torch.Tensor  # [B, T] response token ids, right-padded with pad_id; the stop token is included
    mask: torch.Tensor  # [B, T] 1 on response tokens, 0 on padding
    logprobs: torch.Tensor  # [B, T] log π(token) at the sampling temperature, 0 on padding


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both [B, max len], prompts aligned to the right edge."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[row, width - len(s):] = 1
    return ids, mask


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, whatever the left padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pick(logits: torch.Tensor, temperature: float, top_p: float, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row from logits [B, V]: (tokens [B], their log-probs at the temperature [B])."""
    if temperature <= 0:  # greedy; log-probs of the untempered model
        logp = torch.log_softmax(logits.float(), dim=-1)
        tokens = logp.argmax(dim=-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    probs = logp.exp()
    if top_p < 1.0:  # nucleus: the smallest set of top tokens whose mass reaches top_p (at least one token)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def max_new(model, width: int, max_new_tokens: int) -> int:
    limit = getattr(model.config, "max_position_embeddings", None)
    return max(1, min(max_new_tokens, limit - width)) if limit else max_new_tokens


@torch.inference_mode()
def sample(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int = 64,
           temperature: float = 1.0, top_p: float = 1.0, stop: list[int] = (), pad_id: int = 0,
           seed: int | None = None) -> Rollout:
    """Sample a response for every prompt with a KV cache, dropping rows from the batch as they stop."""
    from transformers import DynamicCache

    device = prompt_ids.device
    generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
    batch, width = prompt_ids.shape
    steps = max_new(model, width, max_new_tokens)
    tokens = torch.full((batch, steps), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, steps), device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    stop = torch.tensor(list(stop), dtype=torch.long, device=device)

    rows = torch.arange(batch, device=device)  # which original rows are still decoding
    attention = prompt_mask.long()
    pos = positions(attention)
    cache = DynamicCache(config=model.config)
    # the prompt in one forward; only the last position's logits are needed
    out = model(input_ids=prompt_ids, attention_mask=attention, position_ids=pos, cache=cache, use_cache=True,
                logits_to_keep=1)
    next_pos = pos[:, -1] + 1
    for t in range(steps):
        token, logp = pick(out.logits[:, -1], temperature, top_p, generator)
        tokens[rows, t], logprobs[rows, t], lengths[rows] = token, logp, t + 1
        if t == steps - 1:
            break
        finished = torch.isin(token, stop)
        if finished.any():
            keep = (~finished).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            rows, token, attention, next_pos = rows[keep], token[keep], attention[keep], next_pos[keep]
            cache.batch_select_indices(keep)
        attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
        out = model(input_ids=token[:, None], attention_mask=attention, position_ids=next_pos[:, None], cache=cache,
                    use_cache=True)
        next_pos = next_pos + 1
    width = int(lengths.max())
    mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
    return Rollout(tokens[:, :width], mask, logprobs[:, :width] * mask)


def response_mask(tokens: torch.Tensor, stop: list[int]) -> torch.Tensor:
    """1 up to and including each row's first stop token (everything, if it never stopped)."""
    is_stop = torch.isin(tokens, torch.tensor(list(stop), dtype=torch.long, device=tokens.device)).long()
    stopped_before = is_stop.cumsum(dim=1) - is_stop  # stop tokens strictly before this position
    return (stopped_before == 0).long()


@torch.inference_mode()
def generate_baseline(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int = 64,
                      temperature: float = 1.0, top_p: float = 1.0, stop: list[int] = (), pad_id: int = 0,
                      seed: int | None = None) -> Rollout:
    """The same as `sample`, through plain `model.generate` (for benchmarks)."""
    if seed is not None:
        torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
        else {"do_sample": False}
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                         max_new_tokens=max_new(model, prompt_ids.shape[1], max_new_tokens),
                         eos_token_id=list(stop), pad_token_id=pad_id, output_logits=True,
                         return_dict_in_generate=True, **sampling)
    tokens = out.sequences[:, prompt_ids.shape[1]:]
    mask = response_mask(tokens, stop)
    logits = torch.stack(out.logits, dim=1).float()  # raw logits, before temperature and top-p
    logp = torch.log_softmax(logits / temperature if temperature > 0 else logits, dim=-1)
    logprobs = logp.gather(-1, tokens[..., None]).squeeze(-1) * mask
    return Rollout(tokens.masked_fill(mask == 0, pad_id), mask, logprobs)
