"""`chatforge reward`: a reward model learns the raters' preferences (TRL's RewardTrainer).

The model is the SFT model with a one-output sequence-classification head (InstructGPT starts its reward model
from the SFT model too). After training it is scored on held-out comparisons three ways: against the raters'
labels (the ceiling their noise allows comes from `chatforge compare`'s agreement report), against the
noise-free oracle's labels, and per prompt family. Reward distributions are plotted beside the model.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from chatforge.data.comparisons import Comparison, read_comparisons
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
class RewardConfig:
    data: str  # comparisons (chatforge, TRL prompt/chosen/rejected or HH-RLHF)
    model: str  # the SFT model to start from
    output_dir: str
    test_data: str | None = None  # held-out comparisons labelled by raters
    test_oracle_data: str | None = None  # the same held-out replies labelled by the noise-free oracle
    ceiling: float | None = None  # best accuracy rater noise allows on test_data, if known
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 256
    precision: str = "auto"
    save_every: int = 100
    seed: int = 0
    center_rewards: float = 0.01  # keeps rewards near 0 (TRL's center_rewards_coefficient): PPO's KL term sees
    # rewards on a stable scale
    # fit a likelihood gate beside the model (train/likelihood_gate.py): the SFT model's likelihood of a reply joins
    # the score where the prompt asks for what the reward model cannot judge; PPO may use it (PPOConfig)
    likelihood_gate: bool = True
    gate_reg: float = 0.1  # L2 on the gate's weights


def build_trainer(cfg: RewardConfig, comparisons: list[Comparison], progress: bool = True):
    quiet_hf()
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    from chatforge.models.loading import check_model_dir, load_tokenizer, training_attention
    from chatforge.train.progress import RichProgress

    check_model_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(cfg.model, num_labels=1)
    except Exception as e:  # noqa: BLE001
        raise ChatforgeError(f"could not load '{cfg.model}' as a reward model: {first_line(e)}") from e
    model.config.pad_token_id = tokenizer.pad_token_id
    training_attention(model)
    tokenizer.padding_side = "right"
    dataset = Dataset.from_list([c.trl() for c in comparisons])
    args = TRLRewardConfig(**trainer_arguments(cfg, Path(cfg.output_dir)), max_length=cfg.max_length,
                           center_rewards_coefficient=cfg.center_rewards or None)
    try:
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                callbacks=[RichProgress("reward")] if progress else [])
    except ValueError as e:
        raise ChatforgeError(f"reward model training could not start: {first_line(e)}") from e
    return without_printer(trainer), tokenizer


def pairwise(model, tokenizer, comparisons: list[Comparison]) -> tuple[list[float], list[float]]:
    """Reward of the chosen and of the rejected reply of every comparison."""
    from chatforge.models.scoring import score_replies

    prompts = [c.prompt.messages for c in comparisons]
    chosen = score_replies(model, tokenizer, prompts, [c.chosen for c in comparisons])
    rejected = score_replies(model, tokenizer, prompts, [c.rejected for c in comparisons])
    return chosen, rejected


def accuracy_report(comparisons: list[Comparison], chosen: list[float], rejected: list[float]) -> dict:
    """Share of pairs where the chosen reply gets the higher reward, overall and per prompt family."""
    right = [c > r for c, r in zip(chosen, rejected)]
    per: dict[str, list[bool]] = defaultdict(list)
    for comp, ok in zip(comparisons, right):
        per[comp.prompt.family].append(ok)
    return {"accuracy": round(sum(right) / len(right), 4) if right else None, "pairs": len(right),
            "families": {f: round(sum(v) / len(v), 4) for f, v in sorted(per.items())}}


def plot_rewards(path: Path, sets: dict[str, tuple[list[Comparison], list[float], list[float]]]) -> None:
    """Histogram of chosen vs rejected rewards, and reward per family, for each held-out set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(6 * (len(sets) + 1), 4))
    for ax, (name, (_, chosen, rejected)) in zip(axes, sets.items()):
        ax.hist(chosen, bins=40, alpha=0.6, label="chosen")
        ax.hist(rejected, bins=40, alpha=0.6, label="rejected")
        ax.set_title(f"reward on held-out pairs ({name})")
        ax.set_xlabel("reward")
        ax.legend()
    comps, chosen, rejected = next(iter(sets.values()))
    per: dict[str, list[float]] = defaultdict(list)
    for c, a, b in zip(comps, chosen, rejected):
        per[c.prompt.family] += [a - b]
    names = sorted(per)
    axes[-1].boxplot([per[f] for f in names], tick_labels=names, orientation="horizontal")
    axes[-1].axvline(0, color="grey", lw=0.8)
    axes[-1].set_title("reward margin (chosen - rejected) per family")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def likelihood_gate(cfg: RewardConfig, model, tokenizer, comparisons: list[Comparison],
                    tests: dict[str, list[Comparison]], model_dir: Path) -> dict:
    """Fit the gate on the train comparisons, save it beside the model and score the gated reward on the tests."""
    from chatforge.models.loading import load_model
    from chatforge.train.likelihood_gate import GATE_FILE, fit_gate, gated_margins, pair_features

    lm, _ = load_model(cfg.model, device=str(model.device))  # the SFT model: PPO's reference
    # one pass over every split: the held-out sets rated by raters and by the oracle share their replies
    splits = {"train": comparisons, **tests}
    deltas, states = pair_features(lm, model, tokenizer, [c for comps in splits.values() for c in comps])
    parts, start = {}, 0
    for name, comps in splits.items():
        parts[name], start = (deltas[start:start + len(comps)], states[start:start + len(comps)]), start + len(comps)
    try:
        gate = fit_gate(*parts["train"], reg=cfg.gate_reg)
    except ChatforgeError as e:  # a reward model that learnt nothing: no gate, and PPO is told why if it asks
        return {"likelihood_gate": None, "likelihood_gate_error": str(e)}
    gate.save(model_dir / GATE_FILE, reference=str(cfg.model), reg=cfg.gate_reg)
    metrics = {"likelihood_gate": str(model_dir / GATE_FILE)}
    for name, comps in tests.items():
        report = accuracy_report(comps, gated_margins(gate, *parts[name]).tolist(), [0.0] * len(comps))
        metrics[f"test_accuracy_{name}_gated"] = report["accuracy"]
        metrics[f"test_families_{name}_gated"] = report["families"]
    if cfg.ceiling is not None and "raters" in tests:
        metrics["gap_to_ceiling_gated"] = round(cfg.ceiling - metrics["test_accuracy_raters_gated"], 4)
    return metrics


def train_reward(cfg: RewardConfig, progress: bool = True) -> dict:
    out = Path(cfg.output_dir)
    comparisons = read_comparisons(cfg.data)  # bad data fails here, before the ML stack loads
    if not comparisons:
        raise ChatforgeError(f"{cfg.data}: no comparisons to train on")
    tests = {name: read_comparisons(path) for name, path in (("raters", cfg.test_data),
                                                               ("oracle", cfg.test_oracle_data)) if path}
    save_config(cfg, out)
    trainer, tokenizer = build_trainer(cfg, comparisons, progress)
    result, run = train_resumable(trainer, out)
    model = trainer.model.eval()
    save_model(model, tokenizer, out, cfg.model, padding_side="right")
    metrics = {"pairs": len(comparisons), "train_loss": result.training_loss, "final_loss": last_loss(trainer),
               "steps": run["steps"], "train_seconds": run["seconds"], "resumed_from": run["resumed_from"]}
    scored = {}
    for name, comps in tests.items():
        chosen, rejected = pairwise(model, tokenizer, comps)
        scored[name] = (comps, chosen, rejected)
        report = accuracy_report(comps, chosen, rejected)
        metrics[f"test_accuracy_{name}"] = report["accuracy"]
        metrics[f"test_pairs_{name}"] = report["pairs"]
        metrics[f"test_families_{name}"] = report["families"]
    if cfg.ceiling is not None and "raters" in tests:
        metrics["rater_ceiling"] = cfg.ceiling
        metrics["gap_to_ceiling"] = round(cfg.ceiling - metrics["test_accuracy_raters"], 4)
    if cfg.likelihood_gate:
        metrics.update(likelihood_gate(cfg, model, tokenizer, comparisons, tests, out / "model"))
    if scored:
        plot_rewards(out / "reward_distribution.png", scored)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
