"""Re-run the RLHF stages of a finished demo run with some settings changed, and compare with the run's own figures.

    python bench/rlhf_variant.py RUN OUT compare.top_p=0.9 ppo.kl_coef=0.3
    python bench/rlhf_variant.py RUN OUT --from ppo ppo.seed=1          # the run's comparisons and reward model
    python bench/rlhf_variant.py RUN OUT --from ppo --reward-model OTHER/model

From RUN's world, base and SFT models: comparisons → reward model → PPO → held-out eval → oracle win rate against
RUN's SFT samples, each stage with the preset's settings (`--preset`, default small) plus the overrides
(`stage.key=value`). `--from reward` reuses RUN's comparisons, `--from ppo` its reward model too. One process, one
stage after another: on a 2-core machine run nothing else beside it. PPO's win rate moves by a few points with
its seed and with the reward model's, so compare variants over seeds before believing a difference.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

STAGES = ("compare", "reward", "ppo")


def overrides(pairs: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {s: {} for s in STAGES}
    for pair in pairs:
        key, _, value = pair.partition("=")
        stage, _, name = key.partition(".")
        if stage not in out or not name or not value:
            raise SystemExit(f"bad override '{pair}': write stage.key=value, stage one of {', '.join(STAGES)}")
        out[stage][name] = json.loads(value) if value[0] in "0123456789-[{tfn" else value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--from", dest="start", choices=STAGES, default="compare")
    ap.add_argument("--reward-model", help="with --from ppo: this reward model instead of RUN's")
    a = ap.parse_intermixed_args()

    from chatforge.data.collect import CompareConfig, collect
    from chatforge.evals.heldout import evaluate
    from chatforge.evals.winrate import win_rate
    from chatforge.models.generate import SamplingConfig
    from chatforge.pipeline.presets import pipeline_preset
    from chatforge.pipeline.stages import oracle_scorer
    from chatforge.train.ppo import PPOConfig, ppo
    from chatforge.train.reward import RewardConfig, train_reward
    from chatforge.world.config import WORLD_FILE, WorldConfig
    from chatforge.world.world import World

    run, out, preset = a.run, a.out, pipeline_preset(a.preset)
    over = overrides(a.overrides)
    for stage, config in zip(STAGES, (CompareConfig, RewardConfig, PPOConfig)):  # a misspelt key fails, not vanishes
        unknown = set(over[stage]) - {f.name for f in fields(config)}
        if unknown:
            raise SystemExit(f"unknown {stage} setting(s): {', '.join(sorted(unknown))}")
    cfg = {s: {**preset[s], **over[s]} for s in STAGES}
    world = WorldConfig.from_dict(json.loads((run / "world" / WORLD_FILE).read_text()))
    figures: dict[str, object] = {"overrides": a.overrides, "from": a.start}
    cmp_dir = out / "compare" if a.start == "compare" else run / "compare"
    if a.start == "compare":
        c = cfg["compare"]
        second = str(run / "pretrain" / "model") if c.get("second_replies") else None
        collect(CompareConfig(model=str(run / "sft" / "model"), output_dir=str(cmp_dir), second_model=second, **c),
                world)
    ceiling = json.loads((cmp_dir / "agreement.json").read_text())["test_ceiling"]
    rm = a.reward_model or str(run / "reward" / "model")
    if a.start != "ppo":
        m = train_reward(RewardConfig(data=str(cmp_dir / "train.jsonl"), test_data=str(cmp_dir / "test.jsonl"),
                                      test_oracle_data=str(cmp_dir / "test_oracle.jsonl"), ceiling=ceiling,
                                      model=str(run / "sft" / "model"), output_dir=str(out / "reward"),
                                      **cfg["reward"]))
        rm = str(out / "reward" / "model")
        figures |= {k: m.get(k) for k in ("test_accuracy_raters", "rater_ceiling", "gap_to_ceiling",
                                          "test_accuracy_oracle")}
    m = ppo(PPOConfig(model=str(run / "sft" / "model"), reward_model=rm, output_dir=str(out / "ppo"),
                      prompts=str(run / "world" / "prompts_train.jsonl"), **cfg["ppo"]),
            oracle_fn=oracle_scorer(World(world)))
    figures |= {"final_kl": m.get("final_kl"), "final_reward": m.get("final_reward")}
    (out / "eval-ppo").mkdir(parents=True, exist_ok=True)
    ev = evaluate(str(out / "ppo" / "model"), world, SamplingConfig(**preset["eval"]),
                  samples_path=out / "eval-ppo" / "samples.jsonl", label="ppo")
    sft = json.loads((run / "eval-sft" / "report.json").read_text())
    wr = win_rate(out / "eval-ppo" / "samples.jsonl", run / "eval-sft" / "samples.jsonl")
    figures |= {"win_rate_vs_sft": wr["win_rate"], "wins_ties_losses": [wr["wins"], wr["ties"], wr["losses"]],
                "oracle_score": ev["oracle_score"], "sft_oracle_score": sft["oracle_score"],
                "family_change_points": {f: round(100 * (ev["families"][f] - sft["families"][f]), 1)
                                         for f in ev["families"]}}
    mine = run / "winrate" / "report.json"
    if mine.is_file():
        figures["run_win_rate_vs_sft"] = json.loads(mine.read_text())["ppo_vs_sft"]["win_rate"]
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
