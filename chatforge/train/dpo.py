"""`chatforge dpo`: Direct Preference Optimization on the same comparisons (TRL's DPOTrainer).

The cheaper alternative to reward model + PPO: the policy is tuned on the preference pairs directly, kept close
to the SFT model (the frozen reference) by `beta`. No sampling, no reward model, no value model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chatforge.data.comparisons import read_comparisons
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
class DPOConfig:
    data: str  # comparisons (chatforge, TRL prompt/chosen/rejected or HH-RLHF)
    model: str  # the SFT model: the policy starts here and stays as the reference
    output_dir: str
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup: float = 0.05
    weight_decay: float = 0.0
    beta: float = 0.1
    loss_type: str = "sigmoid"  # any of TRL's DPO losses: sigmoid, ipo, hinge, robust, …
    max_length: int = 256
    # LoRA (peft): 0 tunes every weight; r > 0 tunes rank-r adapters on `lora_targets` and merges them into the saved
    # model, the reference being the policy with its adapters off
    lora_rank: int = 0
    lora_alpha: float | None = None  # default 2 * lora_rank
    lora_targets: str = "all-linear"  # peft's target_modules: "all-linear" or comma-separated names (q_proj,v_proj)
    precision: str = "auto"
    save_every: int = 100
    seed: int = 0


def lora_config(cfg: DPOConfig):
    """peft's LoraConfig for `cfg`, or None to tune every weight."""
    if cfg.lora_rank < 0:
        raise ChatforgeError(f"lora_rank must be >= 0, not {cfg.lora_rank}")
    if not cfg.lora_rank:
        return None
    from peft import LoraConfig

    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t.strip() for t in cfg.lora_targets.split(",")]
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_rank, target_modules=targets,
                      lora_dropout=0.0, task_type="CAUSAL_LM")


def dpo(cfg: DPOConfig, progress: bool = True) -> dict:
    peft_config = lora_config(cfg)
    comparisons = read_comparisons(cfg.data)
    if not comparisons:
        raise ChatforgeError(f"{cfg.data}: no comparisons to train on")
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    quiet_hf()
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from chatforge.models.loading import load_model
    from chatforge.train.progress import RichProgress

    model, tokenizer = load_model(cfg.model, train=True)
    model.train()
    dataset = Dataset.from_list([c.trl() for c in comparisons])
    args = TRLDPOConfig(**trainer_arguments(cfg, out), max_length=cfg.max_length, beta=cfg.beta,
                        loss_type=[cfg.loss_type])
    try:
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[RichProgress("dpo")] if progress else [])
    except ValueError as e:
        raise ChatforgeError(f"DPO could not start: {first_line(e)}") from e
    without_printer(trainer)
    result, run = train_resumable(trainer, out)
    save_model(trainer.model.merge_and_unload() if peft_config else trainer.model, tokenizer, out, cfg.model)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    last = logs[-1] if logs else {}
    metrics = {"pairs": len(comparisons), "train_loss": result.training_loss, "final_loss": last_loss(trainer),
               "reward_accuracy": last.get("rewards/accuracies"), "reward_margin": last.get("rewards/margins"), **run}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
