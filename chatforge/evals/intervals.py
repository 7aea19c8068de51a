"""95% confidence intervals for the rates the reports print: how far a figure could move on another draw.

- `rate_interval`: the Wilson score interval of k successes in n trials (Wilson 1927). Unlike the normal
  approximation it stays inside [0, 100] and is sound at the rates red-teaming sees (a few percent, or zero).
- `ratio_interval`: the interval of a ratio of two rates (a/n1) / (b/n2), e.g. a trained attacker's ASR over the
  templates', by the log method of Katz et al. (1978): ln(ratio) ± z·sqrt(1/a − 1/n1 + 1/b − 1/n2). With no success on
  either side the ratio is undefined (None).
- `mean_interval`: the normal interval of a mean of per-item scores (a head-to-head win rate: 1 win, ½ tie, 0 loss
  per prompt), mean ± z · sd / √n with the sample standard deviation.
"""

from __future__ import annotations

import math

Z95 = 1.959964


def rate_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson interval of k/n, in percent (rounded to 0.1); None for n = 0."""
    if n <= 0:
        return None
    p, d = k / n, 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(100 * max(0.0, mid - half), 1), round(100 * min(1.0, mid + half), 1)


def ratio_interval(a: int, n1: int, b: int, n2: int, z: float = Z95) -> dict | None:
    """(a/n1) / (b/n2) with its interval, rounded to 0.01; None when either side has no trial or no success."""
    if min(a, b, n1, n2) <= 0:
        return None
    ratio = (a / n1) / (b / n2)
    spread = z * math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    return {"ratio": round(ratio, 2), "low": round(ratio * math.exp(-spread), 2),
            "high": round(ratio * math.exp(spread), 2)}


def mean_interval(values: list[float], z: float = Z95, lo: float = 0.0, hi: float = 1.0) -> tuple[float, float] | None:
    """mean ± z · sd / √n, clipped to [lo, hi] and rounded to 0.001; None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return round(max(lo, mean - half), 3), round(min(hi, mean + half), 3)
