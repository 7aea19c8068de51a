"""Llama-architecture size presets for models chatforge pretrains itself."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from chatforge.errors import ChatforgeError

MODEL_PRESETS: dict[str, dict] = {
    # a few hundred thousand parameters: for tests, learns the format and little else
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192),
    # ~1.6M parameters: the demo model, pretrained in a few minutes on 2 CPU cores. Narrower beats wider at this
    # compute: for the same pretraining FLOPs, 2 epochs of this model reached 88-100% known-fact accuracy after SFT
    # where 1 epoch of a 4M one (hidden 256, FFN 768) reached 18-57% (bench/recipe_sweep.py, several seeds)
    "small": dict(hidden_size=160, num_hidden_layers=4, num_attention_heads=4, intermediate_size=448),
    # ~12M parameters: more capacity when you have more time
    "medium": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024),
}


def model_config(preset: str, tokenizer: PreTrainedTokenizerBase, max_positions: int = 512) -> LlamaConfig:
    if preset not in MODEL_PRESETS:
        raise ChatforgeError(f"unknown model preset '{preset}' (choose from: {', '.join(MODEL_PRESETS)})")
    end = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    return LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions, tie_word_embeddings=True,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=end, bos_token_id=None,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       **MODEL_PRESETS[preset])


def new_model(preset: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    import torch

    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config(preset, tokenizer))
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
