"""What every chatforge trainer shares: precision choice, Trainer arguments, resume, quiet HF logging."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def quiet_hf() -> None:
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


def use_bf16(precision: str) -> bool:
    """bf16 autocast where the hardware does it natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if precision not in ("auto", "bf16", "fp32"):
        from chatforge.errors import ChatforgeError

        raise ChatforgeError(f"unknown precision '{precision}' (choose from: auto, bf16, fp32)")
    if precision != "auto":
        return precision == "bf16"
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def trainer_arguments(cfg, output_dir: Path, **extra) -> dict:
    """Keyword arguments for TrainingArguments / TRL configs, the same for every trainer."""
    import torch

    return dict(
        output_dir=str(output_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        bf16=use_bf16(cfg.precision),
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=1,
        logging_steps=10,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=cfg.seed,
        **extra,
    )


def without_printer(trainer):
    """Trainer prints every log dict when tqdm is off; chatforge shows a rich bar instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def resume_point(output_dir: Path) -> str | None:
    """The newest complete checkpoint. A kill -9 while a checkpoint was being written leaves a folder without
    trainer_state.json (the Trainer writes it last): such a folder is removed, and the one before it is used."""
    import shutil

    ckpt_dir = output_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return None
    found = [p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for ckpt in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if (ckpt / "trainer_state.json").is_file():
            return str(ckpt)
        shutil.rmtree(ckpt, ignore_errors=True)
    return None


def save_config(cfg, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))


def last_loss(trainer) -> float | None:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return round(float(losses[-1]), 4) if losses else None


def train_resumable(trainer, output_dir: Path):
    """Train from the newest complete checkpoint in OUT/checkpoints (if any): (TrainOutput, run figures)."""
    import time

    start = time.time()
    resumed = resume_point(output_dir)
    result = trainer.train(resume_from_checkpoint=resumed)
    return result, {"steps": trainer.state.global_step, "seconds": round(time.time() - start, 1),
                    "resumed_from": resumed and Path(resumed).name}


def save_model(model, tokenizer, output_dir: Path, parent: str, padding_side: str = "left") -> None:
    """A trained model as `OUT/model` (left padding: ready to generate), carrying its parent's world file."""
    import shutil

    from chatforge.world.config import WORLD_FILE

    model.save_pretrained(str(output_dir / "model"))
    tokenizer.padding_side = padding_side
    tokenizer.save_pretrained(str(output_dir / "model"))
    world = Path(parent) / WORLD_FILE
    if world.is_file():  # the model keeps knowing which world it was trained in
        shutil.copy(world, output_dir / "model" / WORLD_FILE)
