"""`chatforge redteam`: one function with every option the command takes (the CLI wires it to Typer).

    chatforge redteam runs/small/ppo/model --attacker templates,lm --queries 300 --out runs/small/redteam
    chatforge redteam --target-url http://127.0.0.1:8000/v1 --target-model ppo:1 --rate 20 --out rt
"""

from __future__ import annotations

import json
from pathlib import Path

from chatforge.errors import ChatforgeError

ATTACKERS = ("templates", "lm", "trained")


def run_dir_of(model_path: str | None) -> Path | None:
    """RUN for a model at RUN/<stage>/model of a chatforge run directory, else None."""
    if not model_path or not Path(model_path).exists():
        return None
    candidate = Path(model_path).resolve().parent.parent
    return candidate if (candidate / "world").is_dir() or (candidate / "run.json").is_file() else None


def redteam_command(model: str | None = None, target_url: str | None = None, target_model: str = "default",
                    attacker: str = "templates", queries: int = 200, out: str = "redteam", seed: int = 0,
                    rate: float = 10.0, judge: str = "oracle", moderation: str | None = None,
                    split: str = "heldout", attacker_model: str | None = None, world: str | None = None,
                    temperature: float = 0.0, top_p: float = 1.0, max_tokens: int = 48, batch_size: int = 32,
                    round: int = 0, campaign: str = "redteam", store_db: str | None = None,
                    concurrency: int = 8, train_steps: int = 40, progress: bool = True) -> dict:
    """Run (or resume) a campaign; returns the report. `attacker`: comma-separated from templates, lm, trained (the
    attacker LM tuned with RL against this target first, `train_steps` RLOO steps into OUT/attacker); `split`: the
    template attacker's wrappers (heldout: evaluation; train: a training round); `store_db`: a product store URL or
    SQLite path that keeps every judged attack too, and whose chats tagged #<campaign> are judged into the campaign;
    `rate` (requests/s, 0 = unbounded) and `concurrency` (requests in flight) bound what an endpoint target is sent."""
    from chatforge.evals.heldout import resolve_world
    from chatforge.models.registry import Registry
    from chatforge.redteam.attackers import LMAttacker, TemplateAttacker
    from chatforge.redteam.campaign import CampaignConfig, run_campaign
    from chatforge.redteam.judge import make_judge
    from chatforge.redteam.targets import EndpointTarget, ModelTarget, campaign_sampling
    from chatforge.world.world import World

    if (model is None) == (target_url is None):
        raise ChatforgeError("give a MODEL (directory or registry ref) or --target-url, not both")
    kinds = [k.strip() for k in attacker.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ATTACKERS]
    if unknown or not kinds:
        raise ChatforgeError(f"unknown attacker '{','.join(unknown) or attacker}' "
                             f"(choose from: {', '.join(ATTACKERS)})")
    if queries < 1 or batch_size < 1 or concurrency < 1 or train_steps < 1:
        raise ChatforgeError("--queries, --batch-size, --concurrency and --train-steps must be at least 1")
    if rate < 0 or not 0 <= temperature <= 5 or not 0 < top_p <= 1 or max_tokens < 1:
        raise ChatforgeError("--rate must be >= 0, --temperature 0-5, --top-p in (0, 1], --max-tokens >= 1")
    if split not in ("train", "heldout"):
        raise ChatforgeError(f"--split must be train or heldout, got '{split}'")
    sampling = campaign_sampling(max_tokens, temperature, top_p)
    endpoint = EndpointTarget(target_url, target_model, sampling, rate, concurrency=concurrency) if target_url else None
    path = Registry().resolve(model) if model else None
    run = run_dir_of(path) or run_dir_of(attacker_model)
    if moderation is None and judge != "oracle" and run and (run / "moderation" / "model").is_dir():
        moderation = str(run / "moderation" / "model")
    world_obj = World(resolve_world(path, world or (str(run) if run and not path else None)))
    the_judge = make_judge(judge, world_obj, moderation)
    target, store = endpoint or ModelTarget(path, sampling), None
    try:
        if store_db:  # before any attacker is trained: a bad --store fails at once
            from chatforge.store import open_store

            if "://" not in store_db and not Path(store_db).expanduser().is_file():
                raise ChatforgeError(f"--store: no database at '{store_db}'")
            store = open_store(store_db) if "://" in store_db else open_store(path=store_db)
        attackers, training = [], None
        for kind in kinds:
            if kind == "templates":
                attackers.append(TemplateAttacker(world_obj, split))
                continue
            # the attacker LM starts from the run's SFT model, else from the target model itself
            lm = attacker_model or (str(run / "sft" / "model") if run and (run / "sft" / "model").is_dir() else path)
            if not lm:
                raise ChatforgeError(f"--attacker {kind} needs --attacker-model (a model to write attacks, e.g. the "
                                     "SFT model) when the target is an endpoint")
            if kind == "lm":
                attackers.append(LMAttacker(Registry().resolve(lm)))
                continue
            training = trained_attacker(Registry().resolve(lm), Path(out) / "attacker", train_steps, target,
                                        the_judge, seed, progress)
            attackers.append(LMAttacker(training["model"], name="trained"))
        cfg = CampaignConfig(out=out, queries=queries, batch_size=batch_size, seed=seed, round=round,
                             campaign=campaign)
        report = run_campaign(cfg, target, the_judge, attackers, progress=progress, store=store,
                              console=False if training else None)
        if training:  # what the attacker's training cost, beside what its campaign found
            from chatforge.redteam.report import add_training, print_report

            add_training(report, training)
            (Path(out) / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
            print_report(report)
        return report
    finally:
        target.close()
        if store is not None:
            store.close()


def trained_attacker(start: str, out: Path, steps: int, target, judge, seed: int, progress: bool) -> dict:
    """Train (or resume, or reuse when finished) the RL attacker in OUT; its metrics, with "model"."""
    from chatforge.redteam.trained_attacker import AttackerTrainConfig, train_attacker

    done = out / "metrics.json"
    if done.is_file() and (out / "model" / "config.json").is_file():
        metrics = json.loads(done.read_text())
        if metrics.get("steps") == steps:
            return metrics
    return train_attacker(AttackerTrainConfig(model=start, output_dir=str(out), steps=steps, seed=seed), target,
                          judge, progress=progress)


def adversarial_command(model: str, rounds: int = 3, out: str = "adversarial", queries: int = 64,
                        heldout_queries: int = 64, attacker: str = "templates,lm", attacker_model: str | None = None,
                        train: str = "sft+dpo", retrain_from: str = "previous", k: int = 0,
                        sft_data: str | None = None, replay: int = 0,
                        benign: float = 0.5, sft_epochs: float = 1.0, sft_learning_rate: float = 1e-3,
                        dpo_epochs: float = 1.0, dpo_learning_rate: float = 1e-4, max_tokens: int = 48,
                        temperature: float = 0.0, world: str | None = None, name: str = "adversarial", seed: int = 0,
                        check_prompts: int = 0, progress: bool = True) -> dict:
    """`chatforge adversarial MODEL --rounds N --out DIR`: N rounds of attack → safe responses → SFT/DPO → held-out
    attacks and eval, resumable; returns rounds.json's content (and prints the rounds). MODEL: a directory or a
    registry ref. The SFT data defaults to the run's RUN/world/sft.jsonl when MODEL lives in a run directory, else
    the world's own demonstrations; the attacker LM to the run's SFT model, else MODEL."""
    from chatforge.evals.heldout import resolve_world
    from chatforge.models.registry import Registry
    from chatforge.redteam.adversarial import AdversarialConfig, adversarial, check_config, print_rounds

    cfg = AdversarialConfig(output_dir=out, rounds=rounds, queries=queries, heldout_queries=heldout_queries,
                            attackers=attacker, attacker_model=attacker_model, train=train, k=k, sft_data=sft_data,
                            retrain_from=retrain_from, replay=replay, benign=benign, sft_epochs=sft_epochs,
                            sft_learning_rate=sft_learning_rate,
                            dpo_epochs=dpo_epochs, dpo_learning_rate=dpo_learning_rate, max_new_tokens=max_tokens,
                            temperature=temperature, name=name, seed=seed, check_prompts=check_prompts)
    check_config(cfg)
    if max_tokens < 1:
        raise ChatforgeError("--max-tokens must be at least 1")
    if sft_data and not Path(sft_data).is_file():
        raise ChatforgeError(f"--sft-data: no file at '{sft_data}'")
    path = Registry().resolve(model)
    run = run_dir_of(path)
    if run and not sft_data and (run / "world" / "sft.jsonl").is_file():
        cfg.sft_data = str(run / "world" / "sft.jsonl")
    if run and not attacker_model and "lm" in attacker and (run / "sft" / "model").is_dir():
        cfg.attacker_model = str(run / "sft" / "model")
    result = adversarial(cfg, path, resolve_world(path, world or (str(run) if run else None)), progress=progress)
    print_rounds(result)
    return result
