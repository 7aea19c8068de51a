"""Supervised fine-tuning on multi-turn conversations with TRL's SFTTrainer, loss on assistant tokens only.

Works with any HF causal LM that has a chat template. Templates with `{% generation %}` markers (chatforge's
own, or those TRL knows how to patch) go through TRL's `assistant_only_loss`; any other template is masked
by chatforge (see masking.py) and handed to the same trainer already tokenized.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from chatforge.data.conversations import load_conversations
from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line
from chatforge.world.config import WORLD_FILE
from chatforge.train.common import last_loss, quiet_hf, resume_point, save_config, trainer_arguments


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


def template_has_markers(tokenizer) -> bool:
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        patched = get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - TRL raises for templates it does not know; we mask those ourselves
        return False
    return patched is not None


def build_dataset(tokenizer, conversations: list[list[dict]], max_length: int):
    from datasets import Dataset

    from chatforge.train.masking import tokenize_with_assistant_mask

    if template_has_markers(tokenizer):
        return Dataset.from_dict({"messages": conversations}), True
    rows = [tokenize_with_assistant_mask(tokenizer, c, max_length) for c in conversations]
    return Dataset.from_list(rows), False


def with_lora(model, r: int):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM"))


def build_trainer(cfg: SFTConfig, progress: bool = True):
    """The TRL SFTTrainer for a config, with its dataset tokenized and masked (nothing trained yet)."""
    quiet_hf()
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from chatforge.models.loading import load_model
    from chatforge.train.progress import RichProgress

    conversations = load_conversations(cfg.data)
    model, tokenizer = load_model(cfg.model)
    model.train()
    dataset, native = build_dataset(tokenizer, conversations, cfg.max_length)
    if cfg.lora_r > 0:
        model = with_lora(model, cfg.lora_r)
    args = TRLSFTConfig(**trainer_arguments(cfg, Path(cfg.output_dir)), max_length=cfg.max_length,
                        assistant_only_loss=native, packing=False)
    tokenizer.padding_side = "right"
    try:
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[RichProgress("sft")] if progress else [])
    except ValueError as e:  # TRL's checks on the data and template, e.g. no assistant tokens at all
        raise ChatforgeError(f"SFT could not start: {first_line(e)}") from e
    info = {"conversations": len(conversations), "assistant_only_loss": "trl" if native else "chatforge-prefix-mask"}
    return trainer, tokenizer, info


def sft(cfg: SFTConfig, progress: bool = True) -> dict:
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    trainer, tokenizer, info = build_trainer(cfg, progress)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume_point(out))
    model = trainer.model.merge_and_unload() if cfg.lora_r > 0 else trainer.model
    model.save_pretrained(str(out / "model"))
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(str(out / "model"))
    world = Path(cfg.model) / WORLD_FILE
    if world.is_file():  # the model keeps knowing which world it was trained in
        shutil.copy(world, out / "model" / WORLD_FILE)
    metrics = {"train_loss": result.training_loss, "final_loss": last_loss(trainer), **info,
               "steps": trainer.state.global_step, "seconds": round(time.time() - start, 1)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
