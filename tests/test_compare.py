"""Comparison collection: pairs from rankings, the noise ceiling, resume, and head-to-head win rates."""

import json
import random

import pytest

from chatforge.data.collect import CompareConfig, collect, oracle_pairs, rater_ceiling
from chatforge.data.comparisons import Comparison, RankingTask, read_comparisons, read_tasks
from chatforge.evals.winrate import win_rate
from chatforge.world.config import WorldConfig
from chatforge.world.prompts import Prompt, user
from chatforge.world.raters import make_raters
from chatforge.world.world import World

HARMFUL = Prompt("harmful", [user("How do I forge a passport?")], {"category": "fraud", "act": "forge a passport"})
REFUSAL = "I'm sorry, but I can't help with that. Fraud is a crime."


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig.preset("tiny"))


def test_p_prefer_matches_what_raters_do(world):
    rater = make_raters(world.oracle, 1, noise=0.3)[0]
    a, b = REFUSAL, "I don't know."
    p = rater.p_prefer(HARMFUL, a, b)
    observed = sum(rater.prefer(HARMFUL, a, b) == 0 for _ in range(4000)) / 4000
    assert 0.5 < p < 1.0
    assert observed == pytest.approx(p, abs=0.03)


def test_ceiling_is_one_for_clear_pairs_and_a_half_for_coin_flips(world):
    raters = make_raters(world.oracle, 3, noise=0.05)
    clear = [Comparison(HARMFUL, REFUSAL, "Sure: [HARMFUL:fraud]", "sim-0")]
    coin = [Comparison(HARMFUL, REFUSAL, REFUSAL + " ", "sim-0")]
    assert rater_ceiling(raters, clear) == pytest.approx(1.0)
    # same oracle score: only length taste separates them, so raters are close to a coin flip
    assert rater_ceiling(raters, coin) == pytest.approx(0.5, abs=0.1)


def test_oracle_pairs_drop_ties_and_repeats(world):
    task = RankingTask(HARMFUL, [REFUSAL, "Sure: [HARMFUL:fraud]", REFUSAL, "I cannot help with that. It is illegal."])
    pairs = oracle_pairs(task, world.oracle)
    # three distinct replies; the two refusals tie, so only refusal-vs-harm pairs remain
    assert len(pairs) == 2
    assert all(c.rejected == "Sure: [HARMFUL:fraud]" and c.rater == "oracle" for c in pairs)


def test_collect_stores_every_pair_and_resumes(tiny_world, tiny_model_dir, tmp_path):
    cfg = CompareConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / "cmp"), prompts=12, test_prompts=6, k=3,
                        max_new_tokens=8, chunk=4, overlap=0.5)
    world_cfg = WorldConfig.preset("tiny")
    metrics = collect(cfg, world_cfg, progress=False)
    tasks = read_tasks(tmp_path / "cmp" / "tasks_train.jsonl")
    train = read_comparisons(tmp_path / "cmp" / "train.jsonl")
    assert len(tasks) == 12 and metrics["train_pairs"] == len(train)
    groups = {t.group: t for t in tasks}
    for c in train:  # every pair comes from a ranked task, with per-criterion labels and a rater
        assert c.group in groups and {c.chosen, c.rejected} <= set(groups[c.group].responses)
        assert c.rater.startswith("sim-") and c.source == "simulated" and c.criteria
    report = json.loads((tmp_path / "cmp" / "agreement.json").read_text())
    assert 0.5 <= report["test_ceiling"] <= 1.0 and "ceiling_method" in report
    # kill after the first chunk: its pairs are there, the rest is not; a rerun finishes the same way
    before = sorted(c.id for c in train)
    lines = (tmp_path / "cmp" / "tasks_train.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "cmp" / "tasks_train.jsonl").write_text("".join(lines[:4]))
    collect(cfg, world_cfg, progress=False)
    assert sorted(c.id for c in read_comparisons(tmp_path / "cmp" / "train.jsonl")) == before


def test_win_rate_counts_ties_half(tmp_path):
    def samples(name, scores):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"family": f, "messages": [user(str(i))], "verdict": {"score": s}}) + "\n"
                                for i, (f, s) in enumerate(scores)))
        return path

    a = samples("a", [("task", 1.0), ("task", 0.5), ("harmful", 1.0), ("harmful", 0.0)])
    b = samples("b", [("task", 0.0), ("task", 0.5), ("harmful", 1.0), ("harmful", 1.0)])
    r = win_rate(a, b)
    assert (r["wins"], r["ties"], r["losses"]) == (1, 2, 1)
    assert r["win_rate"] == 0.5 and r["decisive_win_rate"] == 0.5
    # 1, ½, ½, 0: sd = sqrt(0.5 / 3) = 0.4082, 1.96 · 0.4082 / 2 = 0.4001 either side of 0.5
    assert r["win_rate_interval"] == (0.1, 0.9)
    assert r["families"] == {"harmful": 0.25, "task": 0.75}


def test_win_rate_pairs_sampled_replies_draw_by_draw(tmp_path):
    def samples(name, scores):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"family": "task", "messages": [user(str(i % 2))], "sample": i // 2,
                                            "verdict": {"score": s}}) + "\n" for i, s in enumerate(scores)))
        return path

    # two prompts, two draws each: prompt 0 draw 0 1 vs 0 (win), prompt 1 draw 0 0 vs 0 (tie), prompt 0 draw 1
    # 0 vs 1 (loss), prompt 1 draw 1 1 vs 0 (win): 2.5 / 4
    r = win_rate(samples("a", [1.0, 0.0, 0.0, 1.0]), samples("b", [0.0, 0.0, 1.0, 0.0]))
    assert (r["wins"], r["ties"], r["losses"]) == (2, 1, 1)
    assert r["win_rate"] == 0.625 and r["prompts"] == 2 and r["pairs"] == 4
    # the interval is over the 2 prompts' means, ½ and ¾, not over the 4 draws: sd = 0.1768, 1.96 · 0.1768 / √2
    # = 0.245 either side of 0.625
    assert r["win_rate_interval"] == (0.38, 0.87)


def test_rating_is_deterministic_per_chunk(world):
    from chatforge.data.collect import rate

    task = RankingTask(HARMFUL, [REFUSAL, "Sure: [HARMFUL:fraud]", "I don't know."])
    r1, r2 = make_raters(world.oracle, 1)[0], make_raters(world.oracle, 1)[0]
    r1.rng, r2.rng = random.Random(1), random.Random(1)
    assert [c.id for c in rate(task, r1)] == [c.id for c in rate(task, r2)]


def test_cli_compare_with_a_second_model_and_top_p(tiny_model_dir, tmp_path):
    """The demo's comparisons by hand: one of K replies from a second model, nucleus sampling."""
    from chatforge.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", str(tiny_model_dir), "--out", str(out), "--prompts", "4", "--test-prompts", "2", "-k", "3",
                 "--second-model", str(tiny_model_dir), "--second-replies", "1",
                 "--top-p", "0.9", "--max-new-tokens", "6"]) == 0
    tasks = read_tasks(out / "tasks_train.jsonl")
    assert len(tasks) == 4 and all(len(t.responses) == 3 and t.policy == "sft+base" for t in tasks)
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["top_p"] == 0.9 and saved["second_replies"] == 1 and saved["second_model"] == str(tiny_model_dir)
