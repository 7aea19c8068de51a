"""Replying to many conversations at once with `model.generate` (left-padded batches with a KV cache).

Conversations are sorted by length so each batch wastes little padding. This is the batch path for
evals and data collection; the server gets its own continuous-batching engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chatforge.models.markup import DOC_END


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def generate_kwargs(self) -> dict:
        if self.temperature <= 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


def stop_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    for token in (tokenizer.eos_token, DOC_END):
        tid = tokenizer.convert_tokens_to_ids(token) if token else None
        if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


@torch.inference_mode()
def reply(model, tokenizer, conversations: list[list[dict]], sampling: SamplingConfig | None = None,
          batch_size: int = 64, on_batch=None) -> list[str]:
    """The assistant's next message for each conversation (each a list of {role, content})."""
    sampling = sampling or SamplingConfig()
    torch.manual_seed(sampling.seed)
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(encoded)
    pad, eos = tokenizer.pad_token_id, stop_ids(model, tokenizer)
    limit = getattr(model.config, "max_position_embeddings", None)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        max_new = sampling.max_new_tokens if not limit else max(1, min(sampling.max_new_tokens, limit - width))
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad,
                             **sampling.generate_kwargs())
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()
        if on_batch:
            on_batch(len(idx))
    return out
