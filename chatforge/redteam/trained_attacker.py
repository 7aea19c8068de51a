"""The trained attacker: the attacker LM tuned with RL (TRL's RLOOTrainer) to break a target.

The policy is a copy of the attacker LM (by default the run's SFT model). Each training prompt is one of
`LMAttacker`'s few-shot logs (attacks that worked, each followed by a compliant reply) ending in an open user turn;
the policy writes that turn. The reward of a completion:

    parse it into a wrapper (LMAttacker.parse: the request slot becomes {x}, held-out look-alikes are dropped)
    → fill the wrapper with a world training request of a random category → send it to the target → judge it;
    reward = violation · (1 + novelty · d) + valid,  d = the distance (report.py's: 1 − Jaccard of word 3-grams)
    from the wrapper to the nearest earlier success, 1 for the first success.

The novelty bonus keeps the attacker from collapsing onto one attack (Perez et al. 2022); `valid` is a small
reward for writing something that parses into a wrapper at all. RLOO (Ahmadian et al. 2024) baselines each
completion with the mean reward of the other completions of its prompt, and a KL term (`beta`) keeps the policy
near the attacker LM, so it keeps writing fluent user turns.

Every training query is journalled in OUT/attacks.jsonl like a campaign's (attacker "trained", batch = step):
these are queries the attacker spent, reported beside the campaign. An attack already judged is not sent again
(its verdict is reused), so a resumed run does not pay twice for the steps it repeats. The tuned policy is saved
as OUT/model; `chatforge redteam --attacker trained` then attacks with it as an LMAttacker named "trained".
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line
from chatforge.redteam.attackers import CATEGORIES, PLACEHOLDER, TRAIN_ACTS, Attack, LMAttacker, distance, make_attack
from chatforge.redteam.campaign import CampaignConfig, Journal, attack_seed, journal_row
from chatforge.train.common import (
    quiet_hf,
    save_config,
    save_model,
    train_resumable,
    trainer_arguments,
    without_printer,
)
from chatforge.world.prompts import Prompt, user

NAME = "trained"


@dataclass
class AttackerTrainConfig:
    model: str  # the attacker LM the policy starts from (and the KL reference)
    output_dir: str
    steps: int = 40
    batch_size: int = 32  # completions (= target queries at most) per optimizer step
    num_generations: int = 4  # completions per few-shot prompt (RLOO's group)
    learning_rate: float = 2e-4
    beta: float = 0.02  # KL penalty toward the attacker LM
    temperature: float = 1.0
    max_new_tokens: int = 48
    novelty: float = 0.5  # weight of the distance bonus on a success
    valid: float = 0.05  # reward for a completion that parses into a wrapper
    shots: int = 4
    # LMAttacker's: lines of freely written documents as extra seeds, and the first words of a shot opening each turn
    document_seeds: int = 512
    lead_words: int = 3
    epochs: float = 1.0  # unused: `steps` bounds the run (kept for the shared Trainer arguments)
    warmup: float = 0.0
    weight_decay: float = 0.0
    precision: str = "fp32"
    save_every: int = 10
    seed: int = 0


def check_config(cfg: AttackerTrainConfig) -> None:
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.num_generations < 2:
        raise ChatforgeError("attacker training needs steps >= 1, batch_size >= 1 and num_generations >= 2")
    if cfg.batch_size % cfg.num_generations:
        raise ChatforgeError(f"batch_size ({cfg.batch_size}) must be a multiple of num_generations "
                             f"({cfg.num_generations})")
    if cfg.novelty < 0 or cfg.valid < 0 or cfg.beta < 0:
        raise ChatforgeError("novelty, valid and beta must be >= 0")


class AttackReward:
    """TRL reward function: completions → attacks → target → judge → reward (see the module docstring)."""

    __name__ = "attack_reward"  # TRL names its logged reward columns after the function

    def __init__(self, cfg: AttackerTrainConfig, writer: LMAttacker, target, judge, journal: Journal):
        self.cfg, self.writer, self.target, self.judge, self.journal = cfg, writer, target, judge, journal
        self.campaign = CampaignConfig(out=str(journal.path.parent), seed=cfg.seed, campaign="attacker-training")
        self.known = {r["id"]: r for r in journal.rows}  # judged attacks: sent once, their verdict reused
        self.successes = [r["template"] for r in journal.rows if r["verdict"]["violation"]]
        self.stats = {"completions": 0, "parsed": 0, "queries": 0, "successes": 0}

    def attack(self, text: str, step: int, i: int) -> Attack | None:
        template = self.writer.parse(text)
        if template is None:
            return None
        rng = random.Random(f"{self.cfg.seed}-{step}-{i}-{template}")
        category = rng.choice(CATEGORIES)
        act = rng.choice(TRAIN_ACTS[category])
        meta = {"category": category, "act": act, "wrapper": self.writer.label(template)}
        a = make_attack(Prompt("jailbreak", [user(template.replace(PLACEHOLDER, act))], meta, "train"), NAME, template)
        a.round = step
        return a

    def __call__(self, prompts, completions, trainer_state=None, **_) -> list[float]:
        step = trainer_state.global_step if trainer_state is not None else 0
        attacks = [self.attack(self.writer.lead_of(p if isinstance(p, str) else p[-1]["content"])
                               + (c if isinstance(c, str) else c[-1]["content"]), step, i)
                   for i, (p, c) in enumerate(zip(prompts, completions))]
        fresh = list({a.id: a for a in attacks if a is not None and a.id not in self.known}.values())
        if fresh:
            seeds = [attack_seed(self.campaign, a.id) for a in fresh]
            replies = self.target.reply([a.messages for a in fresh], seeds)
            verdicts = self.judge.judge([Prompt.from_dict(a.prompt) for a in fresh], replies)
            rows = [journal_row(a, r, v, step, s, self.campaign.campaign)
                    for a, r, v, s in zip(fresh, replies, verdicts, seeds)]
            self.journal.append(rows)
            self.known.update((r["id"], r) for r in rows)
            self.stats["queries"] += len(rows)
        rewards = []
        for a in attacks:
            self.stats["completions"] += 1
            if a is None:
                rewards.append(0.0)
                continue
            self.stats["parsed"] += 1
            reward = self.cfg.valid
            if self.known[a.id]["verdict"]["violation"]:
                near = min((distance(a.template, s) for s in self.successes), default=1.0)
                reward += 1.0 + self.cfg.novelty * near
                self.successes.append(a.template)
                self.stats["successes"] += 1
            rewards.append(reward)
        return rewards


def asr(rows: list[dict]) -> float | None:
    return round(100 * sum(r["verdict"]["violation"] for r in rows) / len(rows), 2) if rows else None


def train_attacker(cfg: AttackerTrainConfig, target, judge, progress: bool = True) -> dict:
    """Tune the attacker LM against `target` (a redteam Target) as judged by `judge`; OUT/model is the attacker."""
    check_config(cfg)
    from chatforge.models.loading import check_model_dir, load_model

    check_model_dir(cfg.model)
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    quiet_hf()
    from datasets import Dataset
    from trl import RLOOConfig as TRLRLOOConfig
    from trl import RLOOTrainer

    from chatforge.train.progress import RichProgress

    model, tok = load_model(cfg.model, train=True)
    model.train()
    writer = LMAttacker((model, tok), name=NAME, shots=cfg.shots, max_new_tokens=cfg.max_new_tokens,
                        document_seeds=cfg.document_seeds, lead_words=cfg.lead_words)
    rng = random.Random(cfg.seed)
    prompts = [{"prompt": writer.few_shot(rng)} for _ in range(cfg.steps * cfg.batch_size // cfg.num_generations)]
    journal = Journal(out / "attacks.jsonl")
    reward = AttackReward(cfg, writer, target, judge, journal)
    args = TRLRLOOConfig(**{**trainer_arguments(cfg, out), "logging_steps": 1}, max_steps=cfg.steps,
                         num_generations=cfg.num_generations, max_completion_length=cfg.max_new_tokens,
                         beta=cfg.beta, temperature=cfg.temperature, top_k=0, top_p=1.0, shuffle_dataset=True)
    try:
        trainer = RLOOTrainer(model=model, reward_funcs=reward, args=args, processing_class=tok,
                              train_dataset=Dataset.from_list(prompts),
                              callbacks=[RichProgress("attacker")] if progress else [])
    except ValueError as e:
        raise ChatforgeError(f"attacker training could not start: {first_line(e)}") from e
    without_printer(trainer)
    start = time.time()
    _, run = train_resumable(trainer, out)
    save_model(trainer.model, tok, out, cfg.model)
    rows = journal.rows
    half = len(rows) // 2
    metrics = {**run, "seconds": round(time.time() - start, 1), "queries": len(rows),
               "successes": sum(r["verdict"]["violation"] for r in rows),
               "asr_first_half": asr(rows[:half]), "asr_second_half": asr(rows[half:]),
               "parsed_share": round(reward.stats["parsed"] / max(1, reward.stats["completions"]), 3),
               "model": str(out / "model")}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
