"""Re-run the RLHF stages of a finished demo run with some settings changed, and compare with the run's own figures.

    python bench/rlhf_variant.py RUN OUT compare.top_p=0.9 ppo.kl_coef=0.3
    python bench/rlhf_variant.py RUN OUT --from ppo ppo.seed=1          # the run's comparisons and reward model
    python bench/rlhf_variant.py RUN OUT --from ppo --reward-model OTHER/reward/model

OUT becomes a run directory of its own: the stages the change does not touch (world, tokenizer, base and SFT models,
their evals, and with `--from` the comparisons and reward model) are links to RUN's, with the settings RUN ran them
with, so the pipeline counts them as done; from the first changed stage on (compare, reward or ppo), the pipeline's
own stages run again: comparisons → reward model → PPO (with PPO-ptx and the over-optimisation watch when the
settings ask for them) and DPO → held-out evals → oracle win rates against SFT. A changed stage takes RUN's
settings plus the overrides (`stage.key=value`); a RUN without that stage (a bench/recipe_sweep.py variant) takes
the preset's (`--preset`, default small). One process, one stage after another: on a 2-core machine run nothing
else beside it. PPO's win rate moves by a few points with its seed and with the reward model's, so compare variants
over seeds before believing a difference. The variant's models are registered in OUT/home, not in your registry.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path

CHANGEABLE = ("compare", "reward", "ppo", "dpo")  # the stages overrides may change, in pipeline order
WANTED = ("world", "tokenizer", "pretrain", "midtrain", "sft", "compare", "reward", "ppo", "dpo", "eval-sft",
          "eval-ppo", "eval-dpo", "winrate")
# beside each training stage's own scorecard figures (pipeline.stages.TRAINING_FIGURES), these evals'
EVAL_FIGURES = {"eval-ppo": ("oracle_score", "task_accuracy", "known_fact_accuracy"), "eval-dpo": ("oracle_score",)}


def overrides(pairs: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {s: {} for s in CHANGEABLE}
    for pair in pairs:
        key, _, value = pair.partition("=")
        stage, _, name = key.partition(".")
        if stage not in out or not name or not value:
            raise SystemExit(f"bad override '{pair}': write stage.key=value, stage one of {', '.join(CHANGEABLE)}")
        out[stage][name] = json.loads(value) if value[0] in "0123456789-[{tfn" else value
    return out


def check_keys(over: dict[str, dict]) -> None:
    """A misspelt setting is an error, not silently dropped."""
    from chatforge.data.collect import CompareConfig
    from chatforge.train.dpo import DPOConfig
    from chatforge.train.ppo import PPOConfig
    from chatforge.train.reward import RewardConfig

    stage_keys = {"ppo": {"ptx_source", "likelihood_gate"}}  # settings the pipeline's stage reads, not the trainer
    for stage, config in zip(CHANGEABLE, (CompareConfig, RewardConfig, PPOConfig, DPOConfig)):
        unknown = set(over[stage]) - {f.name for f in fields(config)} - stage_keys.get(stage, set())
        if unknown:
            raise SystemExit(f"unknown {stage} setting(s): {', '.join(sorted(unknown))}")


def saved_config(stage_dir: Path) -> dict | None:
    f = stage_dir / "stage.json"
    return json.loads(f.read_text())["config"] if f.is_file() else None


def metrics(run: Path, stage: str) -> dict:
    f = run / stage / "metrics.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--preset", default="small", help="settings for a stage RUN does not have")
    ap.add_argument("--from", dest="start", choices=CHANGEABLE[:3], default="compare")
    ap.add_argument("--reward-model", type=Path, help="with --from ppo: this reward model (a run's reward/model) "
                                                      "instead of RUN's")
    a = ap.parse_intermixed_args()
    if a.reward_model and a.start != "ppo":
        raise SystemExit("--reward-model needs --from ppo")
    over = overrides(a.overrides)
    check_keys(over)

    from chatforge.pipeline.run import RunDir
    from chatforge.pipeline.stages import TRAINING_FIGURES, demo_stages

    run, out = a.run.resolve(), a.out
    sources = {name: run / name for name in WANTED}
    if a.reward_model:
        sources["reward"] = a.reward_model.resolve().parent
    # which stages run again: the first changed one, every one with overrides, and all that read them
    rerun = {a.start} | {s for s in CHANGEABLE if over[s]}
    stages = [s for s in demo_stages(a.preset) if s.name in WANTED]
    for s in stages:
        if s.name in rerun or set(s.needs) & rerun or not (sources[s.name] / "DONE").is_file():
            rerun.add(s.name)
            s.config = {**(saved_config(sources[s.name]) or s.config), **over.get(s.name, {})}
            continue
        s.config = saved_config(sources[s.name])  # as RUN ran it: the pipeline counts it as done
        link = out / s.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(sources[s.name], target_is_directory=True)
    os.environ["CHATFORGE_HOME"] = str((out / "home").resolve())  # the variant's models stay out of your registry
    results = RunDir(out).run(stages)

    figures: dict = {"overrides": a.overrides, "from": a.start, "rerun": [s.name for s in stages if s.name in rerun]}
    shown = {s: TRAINING_FIGURES[s] for s in CHANGEABLE} | EVAL_FIGURES
    for stage, keys in shown.items():
        mine, theirs = results.get(stage, {}), metrics(run, stage)
        figures[stage] = {k: [mine.get(k), theirs.get(k)] for k in keys}
    for name, wr in results.get("winrate", {}).items():
        if "win_rate" not in wr:  # the served evals' own scores (served_sft, ...), not a head-to-head
            continue
        theirs = metrics(run, "winrate").get(name, {})
        figures[name] = {"win_rate": [wr["win_rate"], theirs.get("win_rate")],
                         "wins_ties_losses": [wr["wins"], wr["ties"], wr["losses"]]}
    sft = results["eval-sft"]["families"]
    figures["ppo_family_change_points"] = {f: round(100 * (v - sft[f]), 1)
                                           for f, v in results["eval-ppo"]["families"].items()}
    figures["columns"] = ["this variant", "RUN"]
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
