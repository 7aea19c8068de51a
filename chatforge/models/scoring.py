"""Scoring conversations with a reward model: the last assistant reply of each, one scalar per conversation.

Conversations are rendered with the chat template exactly as TRL's RewardTrainer renders them for training
(prompt + reply, no generation prompt), right-padded; the model's score head reads the last real token.
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def score(model, tokenizer, conversations: list[list[dict]], batch_size: int = 64) -> list[float]:
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = [0.0] * len(encoded)
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, :len(encoded[i])] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        for row, i in enumerate(idx):
            out[i] = float(logits[row, 0])
    return out


def score_replies(model, tokenizer, prompts: list[list[dict]], replies: list[str], batch_size: int = 64) -> list[float]:
    """Score reply i as the answer to conversation i."""
    return score(model, tokenizer, [p + [{"role": "assistant", "content": r}] for p, r in zip(prompts, replies)],
                 batch_size)
