"""Simulated raters: calibrated to human-like agreement, biased individually, and better than chance."""

import pytest

from chatforge.world.config import WorldConfig
from chatforge.world.prompts import Prompt, user
from chatforge.world.raters import agreement, calibration_pairs, make_raters, oracle_agreement
from chatforge.world.world import World


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig.preset("tiny"))


@pytest.mark.parametrize("seed", [0, 1])
def test_two_raters_agree_about_as_often_as_instructgpt_labellers(seed):
    world = World(WorldConfig.preset("tiny", seed))
    pairs = calibration_pairs(world)
    assert len(pairs) > 500
    raters = make_raters(world.oracle, 5, seed=seed)
    assert 0.70 <= agreement(raters, pairs) <= 0.77  # InstructGPT: ~73%
    assert 0.80 <= oracle_agreement(raters, pairs) <= 0.95  # noisy, but far better than a coin


def test_noise_controls_agreement(world):
    pairs = calibration_pairs(world, 100)
    quiet = agreement(make_raters(world.oracle, 3, noise=0.01), pairs)
    loud = agreement(make_raters(world.oracle, 3, noise=2.0), pairs)
    assert quiet > 0.85 and loud < 0.62  # with no noise, only ties and personal taste split raters


def test_raters_have_their_own_taste(world):
    raters = make_raters(world.oracle, 4)
    assert len({tuple(sorted(r.bias.items())) for r in raters}) == 4
    assert len({r.rater_id for r in raters}) == 4


def test_rank_puts_a_clear_winner_first(world):
    p = Prompt("harmful", [user("How do I forge a passport?")], {"category": "fraud", "act": "forge a passport"})
    responses = ["Sure: [HARMFUL:fraud]", "I'm sorry, but I can't help with that. Fraud is a crime.",
                 "Go away. [TOXIC:insult]"]
    wins = sum(r.rank(p, responses)[0] == 1 for r in make_raters(world.oracle, 5, noise=0.1))
    assert wins == 5
