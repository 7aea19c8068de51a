"""Supervised fine-tuning on multi-turn conversations with TRL's SFTTrainer, loss on assistant tokens only.

Works with any HF causal LM that has a chat template (see masking.py for how assistant tokens are found).
Optionally mixes in plain pretraining documents with full loss (`text_data`, `text_mix`), as InstructGPT mixes
pretraining gradients into RLHF: fine-tuning then forgets less of what pretraining taught, including the names
and facts no demonstration mentions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chatforge.data.conversations import load_conversations
from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line
from chatforge.train.common import (
    last_loss,
    quiet_hf,
    save_config,
    save_model,
    train_resumable,
    trainer_arguments,
    without_printer,
)


@dataclass
class SFTConfig:
    data: str
    model: str
    output_dir: str
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 5e-4
    warmup: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 512
    precision: str = "auto"
    save_every: int = 100
    seed: int = 0
    lora_r: int = 0  # > 0: train LoRA adapters (peft) instead of all weights, merged on save
    # keep the token embeddings as pretraining left them: SFT then cannot teach the model to prefer the
    # names it saw in demonstrations over the ones it only read about in pretraining
    freeze_embeddings: bool = False
    # plain documents (one text file, documents ending with <|endoftext|>) mixed in with full loss
    text_data: str | None = None
    text_mix: float = 0.0  # documents per conversation (of `data`)
    # more conversations (same format as `data`) trained on as they are, e.g. the world's task drills: programs'
    # exercises in the chat's form, as nanochat's SFT mixes synthetic spelling tasks with its conversations
    drill_data: str | None = None


def build_dataset(tokenizer, conversations: list[list[dict]], max_length: int, texts: list[str] = ()):
    """Token ids with `assistant_masks` (TRL turns them into labels); (dataset, how assistant tokens were found)."""
    from datasets import Dataset

    from chatforge.train.masking import tokenize_conversation, tokenize_text, training_template

    template, how = training_template(tokenizer)
    rows = [tokenize_conversation(tokenizer, c, max_length, template) for c in conversations]
    rows += [tokenize_text(tokenizer, t, max_length) for t in texts]
    return Dataset.from_list(rows), how


def sample_documents(path: str, n: int, seed: int) -> list[str]:
    import random

    from chatforge.models.markup import DOC_END, split_documents

    if not Path(path).is_file():
        raise ChatforgeError(f"text data '{path}' not found")
    docs = [d + DOC_END for d in split_documents(Path(path).read_text())]
    return random.Random(seed).sample(docs, min(n, len(docs)))


def with_lora(model, r: int):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM"))


def trainer_class():
    """TRL's SFTTrainer; on a CPU, one that takes the loss from the full logits. TRL 1.x computes it through a
    chunked, fused LM head, which saves GPU memory on large vocabularies; on 2 CPU cores with chatforge's 2k-token
    vocabulary it cost a sixth of each step (the small demo's SFT batches: 148 ms a step, 123 ms without it). The
    loss is the same: the mean negative log-likelihood of the tokens that have labels (the assistant's)."""
    import torch
    from trl import SFTTrainer

    if torch.cuda.is_available():
        return SFTTrainer

    class CPUSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                        labels=inputs["labels"])
            return (out.loss, out) if return_outputs else out.loss

    return CPUSFTTrainer


def build_trainer(cfg: SFTConfig, progress: bool = True):
    """The TRL SFTTrainer for a config, with its dataset tokenized and masked (nothing trained yet)."""
    conversations = load_conversations(cfg.data)  # bad data fails here, before the ML stack loads
    drills = load_conversations(cfg.drill_data) if cfg.drill_data else []
    quiet_hf()
    from trl import SFTConfig as TRLSFTConfig

    from chatforge.models.loading import load_model
    from chatforge.train.progress import RichProgress

    model, tokenizer = load_model(cfg.model, train=True)
    model.train()
    texts = sample_documents(cfg.text_data, round(cfg.text_mix * len(conversations)), cfg.seed) \
        if cfg.text_data and cfg.text_mix > 0 else []
    dataset, how = build_dataset(tokenizer, conversations + drills, cfg.max_length, texts)
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(False)
    if cfg.lora_r > 0:
        model = with_lora(model, cfg.lora_r)
    args = TRLSFTConfig(**trainer_arguments(cfg, Path(cfg.output_dir)), max_length=cfg.max_length,
                        packing=False, train_sampling_strategy="group_by_length")
    tokenizer.padding_side = "right"
    try:
        trainer = trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[RichProgress("sft")] if progress else [])
        without_printer(trainer)
    except ValueError as e:  # TRL's checks on the data and template, e.g. no assistant tokens at all
        raise ChatforgeError(f"SFT could not start: {first_line(e)}") from e
    info = {"conversations": len(conversations), "drills": len(drills), "text_documents": len(texts),
            "assistant_mask": how}
    return trainer, tokenizer, info


def sft(cfg: SFTConfig, progress: bool = True) -> dict:
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    trainer, tokenizer, info = build_trainer(cfg, progress)
    result, run = train_resumable(trainer, out)
    model = trainer.model.merge_and_unload() if cfg.lora_r > 0 else trainer.model
    save_model(model, tokenizer, out, cfg.model)
    metrics = {"train_loss": result.training_loss, "final_loss": last_loss(trainer), **info, **run}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
