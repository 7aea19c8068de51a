"""Simulated raters: the oracle's criteria, weighted by each rater's own taste, plus noise.

Each rater has a per-criterion bias (one cares more about harmlessness, another about helpfulness), a
slight taste for longer or shorter answers, and judgement noise. The default noise is calibrated so that
two raters agree on about 73% of comparison pairs, the inter-rater agreement InstructGPT reports
(see `agreement` and tests/test_raters.py).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from chatforge.world.oracle import CRITERIA, WEIGHTS, Oracle
from chatforge.world.prompts import Prompt

DEFAULT_NOISE = 0.23  # 73-74% agreement on the calibration pairs of seeds 0 and 1 (tests/test_raters.py)


@dataclass
class SimulatedRater:
    rater_id: str
    oracle: Oracle
    noise: float = DEFAULT_NOISE
    bias: dict[str, float] = field(default_factory=dict)
    length_taste: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.rng = random.Random(f"rater-{self.rater_id}-{self.seed}")

    def utility(self, p: Prompt, response: str) -> float:
        """What this rater thinks of a response this time: their taste plus fresh judgement noise."""
        return self.mean_utility(p, response) + self.rng.gauss(0, self.noise)

    def mean_utility(self, p: Prompt, response: str) -> float:
        """The rater's taste without the noise: oracle criteria weighted by their bias, and length."""
        v = self.oracle.judge(p, response)
        parts = [(WEIGHTS[c] * (1 + self.bias.get(c, 0.0)), getattr(v, c)) for c in CRITERIA
                 if getattr(v, c) is not None]
        base = sum(w * s for w, s in parts) / sum(w for w, _ in parts) if response.strip() else 0.0
        length = min(len(response.split()), 60) / 60
        return base + self.length_taste * length

    def p_prefer(self, p: Prompt, a: str, b: str) -> float:
        """Probability that this rater prefers `a` to `b` (the difference of two Gaussian noises)."""
        gap = self.mean_utility(p, a) - self.mean_utility(p, b)
        return 0.5 * (1 + math.erf(gap / (2 * self.noise))) if self.noise > 0 else float(gap >= 0)

    def prefer(self, p: Prompt, a: str, b: str) -> int:
        """0 if the rater prefers `a`, 1 if `b`."""
        return 0 if self.utility(p, a) >= self.utility(p, b) else 1

    def rank(self, p: Prompt, responses: list[str]) -> list[int]:
        """Indices of `responses`, best first."""
        scores = [self.utility(p, r) for r in responses]
        return sorted(range(len(responses)), key=lambda i: -scores[i])


def make_raters(oracle: Oracle, n: int = 5, noise: float = DEFAULT_NOISE, seed: int = 0) -> list[SimulatedRater]:
    rng = random.Random(f"raters-{seed}")
    return [SimulatedRater(f"sim-{i}", oracle, noise, {c: rng.uniform(-0.3, 0.3) for c in CRITERIA},
                           rng.uniform(-0.05, 0.05), seed) for i in range(n)]


def agreement(raters: list[SimulatedRater], pairs: list[tuple[Prompt, str, str]]) -> float:
    """Share of (rater, rater, pair) judgements where two raters pick the same response."""
    choices = [[r.prefer(p, a, b) for p, a, b in pairs] for r in raters]
    same = total = 0
    for x, y in itertools.combinations(choices, 2):
        same += sum(i == j for i, j in zip(x, y))
        total += len(pairs)
    return same / total if total else 0.0


def calibration_pairs(world, n_prompts: int = 300) -> list[tuple[Prompt, str, str]]:
    """Pairs of contrasting answers (gold and each raw habit) to train prompts: what raters calibrate on."""
    rng = world.rng("calibration")
    pairs = []
    for p in world.prompts("train", n_prompts, "calibration"):
        answers = list(world.families[p.family].variants(world.kb, p, rng).values())
        for a, b in itertools.combinations(answers, 2):
            if a != b:
                pairs.append((p, a, b))
    return pairs


def oracle_agreement(raters: list[SimulatedRater], pairs: list[tuple[Prompt, str, str]]) -> float:
    """Share of judgements where a rater picks the response the noise-free oracle scores higher (ties left out)."""
    same = total = 0
    for p, a, b in pairs:
        sa, sb = raters[0].oracle.judge(p, a).score, raters[0].oracle.judge(p, b).score
        if sa == sb:
            continue
        best = 0 if sa > sb else 1
        for r in raters:
            same += r.prefer(p, a, b) == best
            total += 1
    return same / total if total else 0.0
