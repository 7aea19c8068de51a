"""`chatforge rloo`: REINFORCE Leave-One-Out with TRL's RLOOTrainer, the reward model as the reward.

A lighter RL alternative to PPO (Ahmadian et al. 2024): no value model. Each prompt gets `num_generations`
samples and each sample's baseline is the mean reward of the others. The policy starts from the SFT model and
a KL term (`beta`) keeps it near it. Same prompts and reward model as `chatforge ppo`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line
from chatforge.train.common import (
    quiet_hf,
    save_config,
    save_model,
    train_resumable,
    trainer_arguments,
    without_printer,
)


@dataclass
class RLOOConfig:
    model: str  # the SFT model
    reward_model: str  # sequence classification, one output
    prompts: str  # JSONL of {"messages": [...]} (a world's prompts_train.jsonl)
    output_dir: str
    steps: int = 30
    batch_size: int = 16  # completions per optimizer step (prompts × num_generations)
    num_generations: int = 4
    learning_rate: float = 5e-5
    beta: float = 0.05
    temperature: float = 0.8
    max_new_tokens: int = 48
    epochs: float = 1.0  # unused: `steps` bounds the run (kept for the shared Trainer arguments)
    warmup: float = 0.0
    weight_decay: float = 0.0
    precision: str = "auto"
    save_every: int = 10
    seed: int = 0


def rloo(cfg: RLOOConfig, progress: bool = True) -> dict:
    from chatforge.models.loading import check_model_dir, load_model
    from chatforge.train.ppo import load_prompts

    check_model_dir(cfg.reward_model)
    if cfg.batch_size % cfg.num_generations:
        raise ChatforgeError(f"batch_size ({cfg.batch_size}) must be a multiple of num_generations "
                             f"({cfg.num_generations})")
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    quiet_hf()
    from datasets import Dataset
    from trl import RLOOConfig as TRLRLOOConfig
    from trl import RLOOTrainer

    from chatforge.models.loading import load_reward_model
    from chatforge.train.progress import RichProgress

    model, tokenizer = load_model(cfg.model, train=True)
    model.train()
    records, _ = load_prompts(cfg.prompts, tokenizer, 256)
    reward, reward_tok = load_reward_model(cfg.reward_model)
    reward_tok.padding_side = "right"
    args = TRLRLOOConfig(**trainer_arguments(cfg, out), max_steps=cfg.steps, num_generations=cfg.num_generations,
                         max_completion_length=cfg.max_new_tokens, beta=cfg.beta, temperature=cfg.temperature,
                         top_k=0, shuffle_dataset=True)
    try:
        trainer = RLOOTrainer(model=model, reward_funcs=reward, args=args, processing_class=tokenizer,
                              reward_processing_classes=reward_tok,
                              train_dataset=Dataset.from_list([{"prompt": r["messages"]} for r in records]),
                              callbacks=[RichProgress("rloo")] if progress else [])
    except ValueError as e:
        raise ChatforgeError(f"RLOO could not start: {first_line(e)}") from e
    without_printer(trainer)
    _, run = train_resumable(trainer, out)
    save_model(trainer.model, tokenizer, out, cfg.model)
    logs = [h for h in trainer.state.log_history if "reward" in h]
    metrics = {**run, "reward_start": logs[0]["reward"] if logs else None,
               "final_reward": logs[-1]["reward"] if logs else None, "final_kl": logs[-1].get("kl") if logs else None}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
