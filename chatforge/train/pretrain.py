"""Pretraining a Llama-architecture model from scratch on a text corpus, with the transformers Trainer; with
`init`, continued pretraining of an existing model (the demo's mid-training on exercises).

The corpus is one text file whose documents end with `<|endoftext|>`. Documents are tokenized, joined
and cut into fixed-length blocks (packing: no padding). Output: `OUTPUT/model` (safetensors + config +
tokenizer, loadable with `AutoModelForCausalLM.from_pretrained`), `OUTPUT/checkpoints` (for resume) and
`OUTPUT/metrics.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.models.markup import DOC_END, split_documents
from chatforge.train.common import last_loss, quiet_hf, resume_point, save_config, trainer_arguments, without_printer


@dataclass
class PretrainConfig:
    corpus: str
    tokenizer: str
    output_dir: str
    preset: str = "small"
    seq_len: int = 256
    batch_size: int = 32
    epochs: float = 1.0
    learning_rate: float = 2e-3
    warmup: float = 0.03
    weight_decay: float = 0.1
    precision: str = "auto"
    save_every: int = 50
    seed: int = 0
    compile: bool = False  # torch.compile: fixed-shape blocks compile once
    # continue training this model instead of starting from scratch (mid-training, domain adaptation); `preset` is
    # then unused
    init: str | None = None


def can_compile() -> bool:
    """torch.compile on CPU builds C++ kernels: it needs a compiler, or we train uncompiled."""
    import shutil

    import torch

    return torch.cuda.is_available() or bool(shutil.which("g++") or shutil.which("c++"))


def pack(tokenizer, corpus: Path, seq_len: int, docs: list[str] | None = None) -> list[list[int]]:
    """Blocks of `seq_len` tokens from the corpus's documents (or `docs`), each document ended by DOC_END."""
    docs = split_documents(corpus.read_text()) if docs is None else docs
    if not docs:
        raise ChatforgeError(f"corpus {corpus} has no documents")
    end = tokenizer.convert_tokens_to_ids(DOC_END)
    stream: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        stream.extend(ids + [end])
    blocks = [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    if not blocks:
        raise ChatforgeError(f"corpus {corpus} is shorter than one block of {seq_len} tokens")
    return blocks


def pretrain(cfg: PretrainConfig, progress: bool = True) -> dict:
    quiet_hf()
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from chatforge.models.loading import training_attention
    from chatforge.models.presets import new_model
    from chatforge.train.progress import RichProgress

    out = Path(cfg.output_dir)
    save_config(cfg, out)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    blocks = pack(tokenizer, Path(cfg.corpus), cfg.seq_len)
    if cfg.init:
        from chatforge.models.loading import load_model

        model, _ = load_model(cfg.init, device="cpu")  # float32 weights; the Trainer moves them and casts
    else:
        model = new_model(cfg.preset, tokenizer, cfg.seed)
    training_attention(model)
    # compiled, the last partial batch is dropped: its shape would cost a second compilation (~a minute on 2 cores)
    compiled = cfg.compile and can_compile()
    args = TrainingArguments(**trainer_arguments(cfg, out), torch_compile=compiled,
                             dataloader_drop_last=compiled and len(blocks) > cfg.batch_size)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": blocks}),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=[RichProgress("pretrain")] if progress else [])
    without_printer(trainer)
    start = time.time()
    resumed = resume_point(out)
    result = trainer.train(resume_from_checkpoint=resumed)
    seconds = time.time() - start
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(str(out / "model"))
    metrics = {"train_loss": result.training_loss, "final_loss": last_loss(trainer),
               "tokens": len(blocks) * cfg.seq_len * cfg.epochs, "steps": trainer.state.global_step,
               "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(seconds, 1),
               "bf16": args.bf16, "resumed_from": resumed and Path(resumed).name}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return metrics
