"""`chatforge compare`: the policy writes K replies per prompt, simulated raters rank them, every pair is kept.

This is InstructGPT's comparison data: labellers rank K samples of the current model and each ranking gives
K·(K−1)/2 pairs. Train comparisons use train-split prompts; test comparisons use held-out prompts (unseen
entities and phrasings) and come twice: labelled by a rater (noisy, like real data) and by the noise-free
oracle. The agreement report measures the raters against each other and against the oracle, and the ceiling
that rater noise puts on any reward model: the accuracy of the best possible predictor of a rater's label,
mean over pairs of max(p, 1 − p), where p is the probability that a randomly assigned rater prefers the first
reply (computed exactly from each rater's noise-free taste and Gaussian noise).

Work is done in chunks and appended as it goes, so a killed run resumes at the first unfinished chunk.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from chatforge.data.comparisons import Comparison, RankingTask, read_tasks, write_comparisons
from chatforge.errors import ChatforgeError
from chatforge.train.common import save_config
from chatforge.world.config import WorldConfig
from chatforge.world.oracle import CRITERIA
from chatforge.world.raters import DEFAULT_NOISE, SimulatedRater, make_raters


@dataclass
class CompareConfig:
    model: str
    output_dir: str
    prompts: int = 1000  # train-split prompts to compare on
    test_prompts: int = 200  # held-out prompts for the reward model's test set
    k: int = 4  # replies per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    raters: int = 5
    noise: float = DEFAULT_NOISE
    overlap: float = 0.15  # share of train tasks ranked by a second rater, to measure agreement
    chunk: int = 128  # prompts per generate-and-rate chunk (the unit of resume)
    policy: str = "sft"  # the name stored with every comparison
    # InstructGPT ranked samples from several models; a second, older model (e.g. the base model) writing some
    # of the K replies gives raters contrasts worth judging, where K samples of one model are often equally good
    second_model: str | None = None
    second_replies: int = 0  # of the K replies per prompt
    second_policy: str = "base"
    seed: int = 0


def criteria_labels(oracle, p, responses: list[str]) -> dict[tuple[int, int], dict]:
    """Per criterion, which of two replies the rubric finds better, for every ordered pair."""
    verdicts = [oracle.judge(p, r) for r in responses]
    out = {}
    for i, j in itertools.permutations(range(len(responses)), 2):
        labels = {}
        for c in CRITERIA:
            a, b = getattr(verdicts[i], c), getattr(verdicts[j], c)
            if a is not None and b is not None:
                labels[c] = "tie" if a == b else ("chosen" if a > b else "rejected")
        out[(i, j)] = labels
    return out


def rate(task: RankingTask, rater: SimulatedRater) -> list[Comparison]:
    utilities = [rater.utility(task.prompt, r) for r in task.responses]
    ranking = sorted(range(len(utilities)), key=lambda i: -utilities[i])
    return task.pairs(ranking, rater.rater_id, "simulated", criteria_labels(rater.oracle, task.prompt, task.responses),
                      utilities)


def oracle_pairs(task: RankingTask, oracle) -> list[Comparison]:
    """Noise-free labels: the oracle's scalar decides; ties give no pair."""
    replies = list(dict.fromkeys(task.responses))  # a repeated reply counts once
    scores = [oracle.judge(task.prompt, r).score for r in replies]
    out = []
    for i, j in itertools.combinations(range(len(scores)), 2):
        if scores[i] == scores[j]:
            continue
        a, b = (i, j) if scores[i] > scores[j] else (j, i)
        out.append(Comparison(task.prompt, replies[a], replies[b], "oracle", {},
                              round(scores[a] - scores[b], 4), task.group, "oracle", task.policy))
    return out


def rater_ceiling(raters: list[SimulatedRater], pairs: list[Comparison]) -> float:
    """Best accuracy any model can reach on labels from randomly assigned raters (see module docstring)."""
    if not pairs:
        return 0.0
    total = 0.0
    for c in pairs:
        p = sum(r.p_prefer(c.prompt, c.chosen, c.rejected) for r in raters) / len(raters)
        total += max(p, 1 - p)
    return total / len(pairs)


def agreement_report(raters, train_pairs: list[Comparison], test_pairs: list[Comparison]) -> dict:
    oracle = raters[0].oracle
    # rater vs rater: groups ranked twice, the same reply pair judged by two raters
    by_pair: dict[tuple, dict[str, bool]] = {}
    for c in train_pairs:
        key = (c.group, *sorted((c.chosen, c.rejected)))
        by_pair.setdefault(key, {})[c.rater] = c.chosen == key[1]
    twice = [list(v.values())[:2] for v in by_pair.values() if len(v) >= 2]
    # rater vs oracle, ties (equal oracle scores) left out
    agree = total = 0
    for c in train_pairs + test_pairs:
        a, b = oracle.judge(c.prompt, c.chosen).score, oracle.judge(c.prompt, c.rejected).score
        if a != b:
            agree += a > b
            total += 1
    return {"rater_vs_rater": round(sum(x == y for x, y in twice) / len(twice), 4) if twice else None,
            "pairs_rated_twice": len(twice),
            "rater_vs_oracle": round(agree / total, 4) if total else None,
            "test_ceiling": round(rater_ceiling(raters, test_pairs), 4),
            "ceiling_method": "mean over held-out pairs of max(p, 1-p), p = P(a random rater prefers the first "
                              "reply), exact from the raters' noise-free utilities and Gaussian noise"}


def sample_tasks(models, prompts, cfg: CompareConfig, seed: int) -> list[RankingTask]:
    """K replies per prompt: the last `second_replies` from the second model, if there is one."""
    from chatforge.models.generate import SamplingConfig, reply

    sampling = SamplingConfig(cfg.max_new_tokens, cfg.temperature, cfg.top_p, seed)
    counts = [cfg.k - cfg.second_replies, cfg.second_replies] if len(models) > 1 else [cfg.k]
    per_model = [reply(m, tok, [p.messages for p in prompts for _ in range(n)], sampling)
                 for (m, tok), n in zip(models, counts)]
    policy = f"{cfg.policy}+{cfg.second_policy}" if len(models) > 1 else cfg.policy
    tasks = []
    for i, p in enumerate(prompts):
        replies = [r for got, n in zip(per_model, counts) for r in got[i * n:(i + 1) * n]]
        tasks.append(RankingTask(p, replies, policy))
    return tasks


def collect(cfg: CompareConfig, world_cfg: WorldConfig, progress: bool = True) -> dict:
    from chatforge.models.loading import load_model
    from chatforge.train.common import quiet_hf
    from chatforge.train.progress import progress_bar
    from chatforge.world.world import World

    quiet_hf()
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    if cfg.k < 2:
        raise ChatforgeError(f"--k must be at least 2 to compare replies (got {cfg.k})")
    world = World(world_cfg)
    raters = make_raters(world.oracle, cfg.raters, cfg.noise, cfg.seed)
    if not raters:
        raise ChatforgeError("need at least one rater")
    if cfg.second_model and not 0 < cfg.second_replies < cfg.k:
        raise ChatforgeError(f"second_replies must be between 1 and k-1 (got {cfg.second_replies})")
    models = [load_model(cfg.model)] + ([load_model(cfg.second_model)] if cfg.second_model else [])
    splits = {"train": world.prompts("train", cfg.prompts, f"compare-{cfg.seed}"),
              "test": world.prompts("heldout", cfg.test_prompts, f"compare-test-{cfg.seed}")}
    start, bar = time.time(), progress_bar() if progress else None
    if bar:
        bar.start()
    try:
        for split, prompts in splits.items():
            tasks_file = out / f"tasks_{split}.jsonl"
            finished = read_tasks(tasks_file) if tasks_file.is_file() else []
            trim(out, split, {t.group for t in finished})
            done = len(finished)
            task_bar = bar.add_task(f"compare {split}", total=len(prompts), completed=done, info="") if bar else None
            for lo in range(done, len(prompts), cfg.chunk):
                tasks = sample_tasks(models, prompts[lo:lo + cfg.chunk], cfg, cfg.seed * 1000 + lo)
                rate_chunk(tasks, raters, world.oracle, split, lo, cfg, out)
                with open(tasks_file, "a") as f:  # last: a chunk counts as done once its tasks are written
                    f.writelines(json.dumps(t.to_dict()) + "\n" for t in tasks)
                if bar:
                    bar.update(task_bar, completed=lo + len(tasks))
    finally:
        if bar:
            bar.stop()
    return finish(out, raters, cfg, time.time() - start)


def rate_chunk(tasks, raters, oracle, split: str, lo: int, cfg: CompareConfig, out: Path) -> None:
    """Each task goes to one rater (round robin); a share of train tasks to a second one too."""
    rng = random.Random(f"assign-{cfg.seed}-{split}-{lo}")
    for r in raters:  # the same chunk gets the same judgements, resumed or not
        r.rng = random.Random(f"{r.rater_id}-{cfg.seed}-{split}-{lo}")
    pairs, truth = [], []
    for n, task in enumerate(tasks):
        first = raters[(lo + n) % len(raters)]
        pairs += rate(task, first)
        if split == "train" and len(raters) > 1 and rng.random() < cfg.overlap:
            pairs += rate(task, rng.choice([r for r in raters if r is not first]))
        if split == "test":
            truth += oracle_pairs(task, oracle)
    write_comparisons(pairs, out / f"{split}.jsonl", append=True)
    if split == "test":
        write_comparisons(truth, out / "test_oracle.jsonl", append=True)


def trim(out: Path, split: str, groups: set[str]) -> None:
    """Drop pairs of a chunk that was killed before its tasks were written: it is about to run again."""
    for name in (split, f"{split}_oracle"):
        path = out / f"{name}.jsonl"
        if path.is_file():
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(x for x in lines if json.loads(x)["group"] in groups))


def finish(out: Path, raters, cfg: CompareConfig, seconds: float) -> dict:
    from chatforge.data.comparisons import read_comparisons

    train = read_comparisons(out / "train.jsonl")
    test = read_comparisons(out / "test.jsonl")
    test_oracle = read_comparisons(out / "test_oracle.jsonl") if (out / "test_oracle.jsonl").is_file() else []
    report = agreement_report(raters, train, test)
    (out / "agreement.json").write_text(json.dumps(report, indent=2))
    tasks = read_tasks(out / "tasks_train.jsonl")
    distinct = sum(len(set(t.responses)) for t in tasks) / max(len(tasks), 1)
    return {"train_pairs": len(train), "test_pairs": len(test), "test_oracle_pairs": len(test_oracle),
            "distinct_replies_per_prompt": round(distinct, 2), **{k: v for k, v in report.items()
                                                                  if k != "ceiling_method"},
            "seconds": round(seconds, 1)}
