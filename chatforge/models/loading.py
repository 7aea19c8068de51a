"""Loading any HF causal LM (a local directory or a hub id) with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

from chatforge.errors import ChatforgeError


def first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_model_dir(path: str) -> None:
    p = Path(path)
    looks_like_hub_id = not p.exists() and path.count("/") == 1 and not path.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return
    if not p.exists():
        raise ChatforgeError(f"model directory '{path}' not found")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ChatforgeError(f"'{path}' is not a model directory (no config.json)")


def load_tokenizer(path: str):
    check_model_dir(path)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - any failure to parse is the user's file, not our bug
        raise ChatforgeError(f"could not load tokenizer from '{path}': {first_line(e)}") from e
    if not tok.chat_template:
        raise ChatforgeError(f"tokenizer in '{path}' has no chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def no_cudnn_attention() -> None:
    """Leave cuDNN out of PyTorch's scaled-dot-product attention. It builds an execution plan for every new
    shape, and chatforge's decode loop changes shape every step (rows leave the batch as they stop, the cache
    grows): on an H100, PPO on the small demo's models ran at 20 samples/s with it and 75 without it (generation 56%
    and 41% of a step). The flash and memory-efficient kernels take any shape as it comes."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def weights_dtype(device, train: bool = False):
    """bf16 for generation on any CUDA device that has it ("cuda", "cuda:1", torch.device("cuda", 0)), else float32."""
    import torch

    on_gpu = str(device).startswith("cuda")
    return torch.bfloat16 if not train and on_gpu and torch.cuda.is_bf16_supported() else torch.float32


def load_model(path: str, device: str | None = None, train: bool = False):
    """(model, tokenizer) in eval mode. On a GPU with bf16, weights are bf16 for generation; with `train` they stay
    float32 whatever the device: the trainers get bf16 from autocast, and AdamW on bf16 weights would lose every
    update smaller than a weight's last bit (at lr 5e-5, most of them)."""
    check_model_dir(path)
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda"):
        no_cudnn_attention()
    dtype = weights_dtype(device, train)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    except Exception as e:  # noqa: BLE001
        raise ChatforgeError(f"could not load model from '{path}': {first_line(e)}") from e
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if train:
        training_attention(model)
    return model, tok


def training_attention(model):
    """Without a GPU, train with plain ("eager") attention instead of SDPA. At chatforge's sizes (head dim 40, blocks of
    128) SDPA's CPU flash kernel, its backward above all, took ~30% of a training step (profiled on 2 cores); eager
    attention made a pretraining step 18% faster (163 instead of 198 ms) and an SFT-sized one 20% (78 instead of 97).
    Both compute exact attention. GPUs keep SDPA's kernels; models loaded to generate keep SDPA (PPO's rollouts run
    on its policy, so they too are eager on a CPU)."""
    import torch

    if not torch.cuda.is_available() and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return model


def load_reward_model(path: str, device: str | None = None):
    """(model, tokenizer) for a sequence-classification model with one output: a reward model."""
    check_model_dir(path)
    import torch
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device)
    except Exception as e:  # noqa: BLE001
        raise ChatforgeError(f"could not load reward model from '{path}': {first_line(e)}") from e
    if model.config.num_labels != 1:
        raise ChatforgeError(f"'{path}' has {model.config.num_labels} outputs; a reward model has exactly 1")
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok
