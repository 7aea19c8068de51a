"""The stage interface and run directories: skip what is done, redo what changed, resume what was killed."""

import json

import pytest

from chatforge.errors import ChatforgeError
from chatforge.pipeline.run import RunDir, Stage
from chatforge.pipeline.stages import demo_stages, scorecard


def counting_stage(name, calls, needs=(), config=None, fail_once=None):
    def run(ctx):
        calls.append(name)
        (ctx.dir / "partial").write_text("checkpoint")  # what a killed run leaves behind
        if fail_once is not None and not fail_once:
            fail_once.append(True)
            raise KeyboardInterrupt  # killed mid-way
        return {"value": len(calls), "saw_partial": (ctx.dir / "partial").exists()}

    return Stage(name, run, config or {"x": 1}, needs=list(needs))


def test_rerun_skips_finished_stages(tmp_path):
    calls = []
    stages = [counting_stage("a", calls), counting_stage("b", calls, needs=["a"])]
    first = RunDir(tmp_path).run(stages)
    again = RunDir(tmp_path).run(stages)
    assert calls == ["a", "b"] and first == again
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert set(manifest["stages"]) == {"a", "b"} and manifest["stages"]["b"]["needs"] == ["a"]
    assert json.loads((tmp_path / "a" / "stage.json").read_text())["config"] == {"x": 1}


def test_changed_config_reruns_the_stage_and_everything_after_it(tmp_path):
    calls = []
    RunDir(tmp_path).run([counting_stage("a", calls), counting_stage("b", calls, needs=["a"]),
                          counting_stage("c", calls)])
    calls.clear()
    RunDir(tmp_path).run([counting_stage("a", calls, config={"x": 2}), counting_stage("b", calls, needs=["a"]),
                          counting_stage("c", calls)])
    assert calls == ["a", "b"]  # c does not depend on a


def test_killed_stage_runs_again_on_top_of_what_it_left(tmp_path):
    calls, killed = [], []
    stages = [counting_stage("a", calls), counting_stage("b", calls, needs=["a"], fail_once=killed)]
    with pytest.raises(KeyboardInterrupt):
        RunDir(tmp_path).run(stages)
    assert not (tmp_path / "b" / "DONE").exists() and (tmp_path / "b" / "partial").exists()
    results = RunDir(tmp_path).run(stages)
    assert calls == ["a", "b", "b"] and results["b"]["saw_partial"]


def test_stages_must_declare_what_they_read(tmp_path):
    def sneaky(ctx):
        ctx.input("a", "file")

    with pytest.raises(ChatforgeError, match="does not declare"):
        RunDir(tmp_path).run([counting_stage("a", []), Stage("b", sneaky)])
    with pytest.raises(ChatforgeError, match="needs"):
        RunDir(tmp_path).run([Stage("b", sneaky, needs=["later"])])


def test_demo_stages_wire_the_loop():
    names = [s.name for s in demo_stages("tiny")]
    assert names == ["world", "tokenizer", "pretrain", "midtrain", "sft", "compare", "reward", "ppo", "dpo",
                     "moderation", "eval-pretrain", "eval-sft", "eval-ppo", "eval-dpo", "winrate", "redteam",
                     "adversarial"]
    stages = {s.name: s for s in demo_stages("tiny")}
    seen = set()
    for s in stages.values():  # every stage reads only from stages that ran before it
        assert set(s.needs) <= seen, s.name
        seen.add(s.name)
    assert stages["adversarial"].needs == ["world", "sft", "ppo"] and "ppo" in stages["redteam"].needs
    assert stages["adversarial"].config["rounds"] == 3
    with pytest.raises(ChatforgeError, match="unknown preset"):
        demo_stages("enormous")
    assert stages["sft"].config["drills"]
    small = {s.name: s for s in demo_stages("small")}  # the demo pays for its drills with mid-training's time
    assert small["sft"].config["drills"] and "midtrain" not in small and small["sft"].needs == ["world", "pretrain"]


def test_a_preset_may_go_without_mid_training(monkeypatch):
    from chatforge.pipeline import presets

    monkeypatch.setitem(presets.PIPELINE_PRESETS, "nomid", {**presets.PIPELINE_PRESETS["tiny"], "midtrain": None})
    stages = {s.name: s for s in demo_stages("nomid")}
    assert "midtrain" not in stages and stages["sft"].needs == ["world", "pretrain"]  # SFT starts from the base model


def test_scorecard_is_one_flat_object_of_numbers_per_model():
    metrics = {"known_fact_accuracy": 50.0, "oracle_score": 0.5, "prompts": 10, "criteria": {"helpful": 40.0},
               "families": {"task": 0.3}}
    card = scorecard({"eval-pretrain": metrics, "eval-sft": metrics})
    assert set(card) == {"base", "sft"}
    assert card["sft"] == {"known_fact_accuracy": 50.0, "oracle_score": 0.5, "criterion_helpful": 40.0,
                           "family_task": 0.3}
    adv = {"asr_before": 40.0, "asr_after": 10.0, "heldout_asr_round_0": 40.0, "heldout_asr_round_1": 10.0,
           "over_refusal_round_1": 5.0}
    card = scorecard({"eval-sft": metrics, "adversarial": adv, "redteam": {"asr": 12.5, "target": "ppo"}})
    assert card["adversarial"] == adv and card["redteam"] == {"asr": 12.5}


def test_resume_skips_a_checkpoint_killed_while_being_written(tmp_path):
    from chatforge.train.common import resume_point

    assert resume_point(tmp_path) is None
    for step, complete in ((10, True), (20, True), (30, False)):
        ckpt = tmp_path / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    assert resume_point(tmp_path) == str(tmp_path / "checkpoints" / "checkpoint-20")
    assert not (tmp_path / "checkpoints" / "checkpoint-30").exists()  # the half-written one is gone


def test_scorecard_names_the_family_furthest_below_sft_greedy_and_as_served():
    from chatforge.evals.scorecard import worst_families

    sft = {"oracle_score": 0.8, "families": {"task": 0.70, "ambiguous": 0.99}}
    ppo = {"oracle_score": 0.8, "families": {"task": 0.69, "ambiguous": 0.935}}
    served = {"served_sft": {"oracle_score": 0.7, "families": {"task": 0.60, "ambiguous": 0.90}},
              "served_ppo": {"oracle_score": 0.7, "families": {"task": 0.573, "ambiguous": 0.897}},
              "ppo_vs_sft_served": {"win_rate": 0.55, "win_rate_interval": [0.53, 0.57]}}
    card = scorecard({"eval-sft": sft, "eval-ppo": ppo, "winrate": served})
    assert card["ppo"]["served_win_rate_vs_sft"] == 0.55 and card["ppo"]["served_win_rate_vs_sft_low"] == 0.53
    assert card["sft"]["served_family_task"] == 0.60
    # greedy: ambiguous 99 → 93.5 (−5.5) against task −1.0; as served: task 60 → 57.3 (−2.7) against ambiguous −0.3
    assert worst_families(card, "ppo") == "ambiguous -5.5 (greedy), task -2.7 (as served)"
