"""Confidence intervals of the reports' rates, on hand-computed cases, and where the red-team reports carry them."""

import math

import pytest

from chatforge.evals.intervals import mean_interval, rate_interval, ratio_interval


def test_wilson_interval_hand_computed():
    # 0 of 10: centre and half-width are both (z²/2n) / (1 + z²/n) = 0.19207 / 1.38415 = 0.13877 → [0, 27.8]
    assert rate_interval(0, 10) == (0.0, 27.8)
    assert rate_interval(5, 5) == (56.6, 100.0)  # the mirror image
    # 12 of 400: p = 0.03, d = 1.0096, centre 0.032465, half 1.96 · sqrt(0.03 · 0.97 / 400 + 3.8415 / 640000) / d
    half = 1.959964 * math.sqrt(0.03 * 0.97 / 400 + 1.959964 ** 2 / 640000) / (1 + 1.959964 ** 2 / 400)
    centre = (0.03 + 1.959964 ** 2 / 800) / (1 + 1.959964 ** 2 / 400)
    assert rate_interval(12, 400) == (round(100 * (centre - half), 1), round(100 * (centre + half), 1)) == (1.7, 5.2)
    assert rate_interval(0, 0) is None


def test_ratio_interval_hand_computed():
    # 154 / 997 against 40 / 1000: ratio 3.8616; spread 1.96 · sqrt(1/154 − 1/997 + 1/40 − 1/1000) = 0.33658
    r = ratio_interval(154, 997, 40, 1000)
    assert r == {"ratio": 3.86, "low": 2.76, "high": 5.41}
    same = ratio_interval(41, 1000, 41, 1000)
    assert same["ratio"] == 1.0 and same["low"] * same["high"] == pytest.approx(1.0, abs=0.01)
    assert ratio_interval(0, 10, 5, 10) is None and ratio_interval(3, 10, 0, 10) is None


def test_mean_interval_hand_computed():
    # the demo's PPO vs SFT: 28 wins, 330 ties, 11 losses; mean 0.5230, sd 0.1612, se 0.00839 → ± 0.0164
    outcomes = [1.0] * 28 + [0.5] * 330 + [0.0] * 11
    assert mean_interval(outcomes) == (0.507, 0.539)
    assert mean_interval([1.0, 1.0]) == (1.0, 1.0) and mean_interval([1.0]) is None
    assert mean_interval([0.0, 1.0]) == (0.0, 1.0)  # 0.5 ± 1.96 · 0.707 / 1.414 = ± 0.98, clipped to [0, 1]


def row(attacker, violation, template="Tell me how to {x}."):
    return {"attacker": attacker, "verdict": {"violation": violation, "rule": "harmful_compliance" if violation else
                                              None, "confidence": 1.0},
            "template": template, "category": "weapons", "wrapper": "w", "messages": [{"role": "user", "content": "x"}],
            "reply": "r"}


def test_campaign_report_carries_intervals_and_the_ratio_to_the_templates():
    from chatforge.redteam.report import build_report

    rows = ([row("templates", i < 4) for i in range(100)]
            + [row("trained", i < 12, f"Variant {i} tell me how to {{x}}.") for i in range(100)])
    report = build_report(rows)
    assert report["by_attacker"]["templates"]["asr_interval"] == rate_interval(4, 100)
    assert report["by_attacker"]["trained"]["asr_interval"] == rate_interval(12, 100)
    assert report["vs_templates"] == {"trained": ratio_interval(12, 100, 4, 100)}
    assert report["vs_templates"]["trained"]["ratio"] == 3.0 and report["vs_templates"]["trained"]["low"] < 3.0
    assert build_report([row("lm", True)])["vs_templates"] == {}  # no baseline in the campaign: no ratio


def test_rounds_summary_carries_the_after_over_before_ratio():
    from chatforge.redteam.adversarial import summarize_rounds

    rounds = [{"round": 0, "heldout_asr": 4.1, "heldout_successes": 41, "heldout_queries": 1000},
              {"round": 3, "heldout_asr": 1.1, "heldout_successes": 11, "heldout_queries": 1000}]
    s = summarize_rounds(rounds)
    expected = ratio_interval(11, 1000, 41, 1000)
    assert (s["asr_ratio"], s["asr_ratio_low"], s["asr_ratio_high"]) == (expected["ratio"], expected["low"],
                                                                         expected["high"])
    assert s["asr_ratio_high"] < 0.6 and s["asr_relative_change_pct"] == -73.2
