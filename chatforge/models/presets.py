"""Llama-architecture size presets for models chatforge pretrains itself."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from chatforge.errors import ChatforgeError

MODEL_PRESETS: dict[str, dict] = {
    # a few hundred thousand parameters: for tests, learns the format and little else
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192),
    # ~1.6M parameters: the demo model, pretrained in a few minutes on 2 CPU cores. Narrower beats wider at this
    # compute: for the same pretraining FLOPs, 2 epochs of this model reached 88-100% known-fact accuracy after SFT
    # where 1 epoch of a 4M one (hidden 256, FFN 768) reached 18-57% (bench/recipe_sweep.py, several seeds).
    # One previous-token head (init_prev_token_heads): in its few minutes of pretraining the model never formed one
    # (its most previous-token-like head put 0.42 of its weight there), so it could not copy from the prompt; with
    # it, SFT task accuracy 55 instead of 32.5 (pretraining seeds 0 and 1) and worksheet sorting 55% instead of 3%
    "small": dict(hidden_size=160, num_hidden_layers=4, num_attention_heads=4, intermediate_size=448,
                  prev_token_heads=1),
    # ~12M parameters: more capacity when you have more time
    "medium": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024),
}


def model_config(preset: str, tokenizer: PreTrainedTokenizerBase, max_positions: int = 512) -> LlamaConfig:
    if preset not in MODEL_PRESETS:
        raise ChatforgeError(f"unknown model preset '{preset}' (choose from: {', '.join(MODEL_PRESETS)})")
    end = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    shape = {k: v for k, v in MODEL_PRESETS[preset].items() if k != "prev_token_heads"}
    # the previous-token heads are set through q/k biases: a Llama option every Llama loader reads
    bias = MODEL_PRESETS[preset].get("prev_token_heads", 0) > 0
    return LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions, tie_word_embeddings=True,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=end, bos_token_id=None,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, attention_bias=bias, **shape)


def init_prev_token_heads(model: LlamaForCausalLM, heads: int, gap: float = 8.0) -> None:
    """Start the first `heads` heads of layer 0 as previous-token heads: position m attends to m − 1.

    Copying from the prompt (a number's second digit, the word after a name) is an induction circuit: a head that
    moves each token's predecessor into it, read by a later head that finds "the token after the one I just wrote".
    Language models learn the first half slowly and abruptly (Olsson et al. 2022); here it is set from the start,
    and training is free to change it. The head's query and key are content-free biases (its weights zero) chosen so
    that after RoPE their dot product is highest at a distance of one: with q_j·conj(k_j) = e^{-iθ_j} for each of
    RoPE's rotation pairs, score(Δ) ∝ Σ_j cos((Δ − 1)θ_j), scaled so that Δ = 1 beats every other Δ by `gap`
    logits."""
    import math

    import torch

    cfg = model.config
    dim = cfg.hidden_size // cfg.num_attention_heads
    theta = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    deltas = torch.arange(0, cfg.max_position_embeddings).float()
    score = torch.cos((deltas[:, None] - 1) * theta[None]).sum(-1)
    margin = (score[1] - torch.cat([score[:1], score[2:]]).max()).item()
    a = math.sqrt(gap * math.sqrt(dim) / margin)
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        for h in range(heads):
            rows = slice(h * dim, (h + 1) * dim)
            attn.q_proj.weight[rows] = 0
            attn.k_proj.weight[rows] = 0
            attn.q_proj.bias[rows] = a * torch.cat([torch.cos(theta), -torch.sin(theta)])
            attn.k_proj.bias[rows] = a * torch.cat([torch.ones_like(theta), torch.zeros_like(theta)])


def new_model(preset: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    import torch

    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config(preset, tokenizer))
    init_prev_token_heads(model, MODEL_PRESETS[preset].get("prev_token_heads", 0))
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
