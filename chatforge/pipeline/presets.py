"""Pipeline presets: how big the world, the model and each training stage are for `chatforge demo`."""

from __future__ import annotations

from chatforge.errors import ChatforgeError

PIPELINE_PRESETS: dict[str, dict] = {
    # seconds: proves every stage runs; the model is too small to learn much
    "tiny": {
        "world": "tiny",
        "tokenizer": {"vocab_size": 1024},
        "pretrain": {"preset": "tiny", "epochs": 1.0, "seq_len": 128, "batch_size": 16, "learning_rate": 3e-3},
        "sft": {"epochs": 2.0, "batch_size": 16, "learning_rate": 2e-3},
        "eval": {"max_new_tokens": 32},
    },
    # minutes on 2 CPU cores: a ~4M-parameter model that learns the world's facts and the assistant's manners
    "small": {
        "world": "small",
        "tokenizer": {"vocab_size": 2048},
        "pretrain": {"preset": "small", "epochs": 1.0, "seq_len": 256, "batch_size": 32, "learning_rate": 2e-3},
        "sft": {"epochs": 3.0, "batch_size": 16, "learning_rate": 5e-4},
        "eval": {"max_new_tokens": 48},
    },
}


def pipeline_preset(name: str) -> dict:
    if name not in PIPELINE_PRESETS:
        raise ChatforgeError(f"unknown preset '{name}' (choose from: {', '.join(PIPELINE_PRESETS)})")
    return PIPELINE_PRESETS[name]
