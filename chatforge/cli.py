"""The `chatforge` command line. Heavy libraries are imported inside commands so `--help` and errors are fast.

Every user mistake (a bad flag, a missing file, an unknown preset) ends as one line on stderr and a non-zero
exit: 2 for usage errors, 1 for everything else. Set CHATFORGE_DEBUG=1 to see tracebacks of real bugs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from chatforge.errors import ChatforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn a language model into an assistant: world, pretrain, SFT, eval, chat.")
world_app = typer.Typer(no_args_is_help=True, help="The built-in world: build it, look at it, check its raters.")
app.add_typer(world_app, name="world")
out = Console()


def _save_json(obj: dict, path: Optional[Path]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2))


# ---------------------------------------------------------------- world

@world_app.command("build")
def world_build(out_dir: Path = typer.Option(..., "--out", help="Directory to write the world into."),
                preset: str = typer.Option("small", help="World size: tiny or small."),
                seed: int = typer.Option(0, help="Same seed, same world.")):
    """Write the knowledge base, corpus, SFT demonstrations, prompt pool and held-out eval prompts."""
    from chatforge.world.build import build_world_dir
    from chatforge.world.config import WorldConfig

    stats = build_world_dir(WorldConfig.preset(preset, seed), out_dir)
    out.print_json(data=stats)


@world_app.command("sample")
def world_sample(family: str = typer.Option("", help="Prompt family (default: all)."),
                 split: str = typer.Option("train", help="train or heldout."),
                 n: int = typer.Option(3, "-n", "--count", help="Prompts per family."),
                 preset: str = typer.Option("small"), seed: int = typer.Option(0)):
    """Print prompts with the gold answer and the raw internet's answer, and how the oracle scores both."""
    import random

    from chatforge.world.config import WorldConfig
    from chatforge.world.world import World

    world = World(WorldConfig.preset(preset, seed))
    if family and family not in world.families:
        raise ChatforgeError(f"unknown family '{family}' (choose from: {', '.join(world.families)})")
    if split not in ("train", "heldout"):
        raise ChatforgeError(f"unknown split '{split}' (choose from: train, heldout)")
    rng = random.Random(seed)
    for name in [family] if family else list(world.families):
        for p in world.prompts(split, n, f"cli-{name}", {name: 1.0}):
            out.rule(f"{name} · {p.meta}")
            for m in p.messages:
                out.print(f"[bold]{m['role']}:[/bold] {m['content']}", highlight=False)
            gold = world.gold(p, rng)
            label, raw = world.families[name].raw(world.kb, p, rng)
            out.print(f"[green]gold ({world.oracle.judge(p, gold).score}):[/green] {gold}", highlight=False)
            out.print(f"[red]raw/{label} ({world.oracle.judge(p, raw).score}):[/red] {raw}", highlight=False)


@world_app.command("agreement")
def world_agreement(raters: int = typer.Option(5), noise: Optional[float] = typer.Option(None),
                    preset: str = typer.Option("small"), seed: int = typer.Option(0)):
    """How often simulated raters agree with each other and with the oracle on comparison pairs."""
    from chatforge.world.config import WorldConfig
    from chatforge.world.raters import DEFAULT_NOISE, agreement, calibration_pairs, make_raters, oracle_agreement
    from chatforge.world.world import World

    world = World(WorldConfig.preset(preset, seed))
    pairs = calibration_pairs(world)
    pool = make_raters(world.oracle, raters, DEFAULT_NOISE if noise is None else noise, seed)
    out.print_json(data={"pairs": len(pairs), "raters": raters, "rater_vs_rater": round(agreement(pool, pairs), 4),
                         "rater_vs_oracle": round(oracle_agreement(pool, pairs), 4)})


# ---------------------------------------------------------------- training

@app.command()
def pretrain(corpus: Path = typer.Option(..., help="Text file; documents end with <|endoftext|>."),
             out_dir: Path = typer.Option(..., "--out", help="Output directory (model in OUT/model)."),
             preset: str = typer.Option("small", help="Model size: tiny, small or medium."),
             tokenizer: Optional[Path] = typer.Option(None, help="HF tokenizer dir; trained on the corpus if absent."),
             vocab_size: int = typer.Option(2048), epochs: float = typer.Option(1.0),
             batch_size: int = typer.Option(32), seq_len: int = typer.Option(256),
             learning_rate: float = typer.Option(2e-3), precision: str = typer.Option("auto"),
             save_every: int = typer.Option(50, help="Checkpoint every N steps."), seed: int = typer.Option(0),
             init: Optional[str] = typer.Option(None, help="Continue training this model (mid-training) instead of "
                                                           "starting from scratch; its tokenizer is used.")):
    """Pretrain a Llama-architecture model from scratch, or continue one with --init. Resumes from OUT/checkpoints
    if killed."""
    from chatforge.models.presets import MODEL_PRESETS
    from chatforge.train.pretrain import PretrainConfig

    if init:
        from chatforge.models.loading import check_model_dir

        check_model_dir(init)
        tokenizer = tokenizer or Path(init)
    if preset not in MODEL_PRESETS:
        raise ChatforgeError(f"unknown model preset '{preset}' (choose from: {', '.join(MODEL_PRESETS)})")
    if not corpus.is_file():
        raise ChatforgeError(f"corpus file '{corpus}' not found")
    if tokenizer is None:
        from chatforge.models.tokenizer import train_tokenizer

        tokenizer = out_dir / "tokenizer"
        if not (tokenizer / "tokenizer.json").is_file():
            train_tokenizer(corpus, vocab_size).save_pretrained(str(tokenizer))
    from chatforge.train.pretrain import pretrain as run

    metrics = run(PretrainConfig(corpus=str(corpus), tokenizer=str(tokenizer), output_dir=str(out_dir), preset=preset,
                                 epochs=epochs, batch_size=batch_size, seq_len=seq_len, learning_rate=learning_rate,
                                 precision=precision, save_every=save_every, seed=seed, init=init))
    out.print_json(data=metrics)


@app.command()
def sft(model: str = typer.Argument(..., help="Model directory or hub id (needs a chat template)."),
        data: Path = typer.Option(..., help="Conversations: JSONL (OpenAI messages, ShareGPT or prompt/completion)."),
        out_dir: Path = typer.Option(..., "--out", help="Output directory (model in OUT/model)."),
        epochs: float = typer.Option(3.0), batch_size: int = typer.Option(16),
        learning_rate: float = typer.Option(5e-4), max_length: int = typer.Option(512),
        lora_r: int = typer.Option(0, help="> 0: LoRA rank (peft); 0: full fine-tuning."),
        drills: Optional[Path] = typer.Option(None, help="More conversations trained on beside DATA, e.g. a "
                                                         "world's drills.jsonl (task exercises in the chat's form)."),
        precision: str = typer.Option("auto"), seed: int = typer.Option(0)):
    """Supervised fine-tuning on conversations, loss on assistant tokens only. Resumes if killed."""
    from chatforge.train.sft import SFTConfig
    from chatforge.train.sft import sft as run

    metrics = run(SFTConfig(data=str(data), model=model, output_dir=str(out_dir), epochs=epochs, batch_size=batch_size,
                            learning_rate=learning_rate, max_length=max_length, lora_r=lora_r, precision=precision,
                            seed=seed, drill_data=str(drills) if drills else None))
    out.print_json(data=metrics)


# ---------------------------------------------------------------- RLHF

@app.command()
def compare(model: str = typer.Argument(..., help="The policy that writes the replies (e.g. the SFT model)."),
            out_dir: Path = typer.Option(..., "--out", help="Output directory for tasks, comparisons, agreement."),
            world: Optional[str] = typer.Option(None, help="World preset, run dir or world dir (default: model's)."),
            prompts: int = typer.Option(1000, help="Train-split prompts."),
            test_prompts: int = typer.Option(200, help="Held-out prompts (the reward model's test set)."),
            k: int = typer.Option(4, "-k", help="Replies per prompt."), temperature: float = typer.Option(1.0),
            top_p: float = typer.Option(1.0, help="Nucleus sampling of the replies."),
            second_model: Optional[str] = typer.Option(None, help="A second, older model (e.g. the base model) "
                                                                  "that writes some of the K replies."),
            second_replies: int = typer.Option(0, help="How many of the K replies the second model writes."),
            raters: int = typer.Option(5, help="Simulated raters."), noise: Optional[float] = typer.Option(None),
            max_new_tokens: int = typer.Option(48), seed: int = typer.Option(0)):
    """Sample K replies per prompt, have simulated raters rank them, store every pair. Resumes if killed."""
    from chatforge.data.collect import CompareConfig, collect
    from chatforge.evals.heldout import resolve_world
    from chatforge.models.loading import check_model_dir
    from chatforge.world.raters import DEFAULT_NOISE

    check_model_dir(model)
    if second_model:
        check_model_dir(second_model)
    elif second_replies:
        raise ChatforgeError("--second-replies needs --second-model")
    cfg = CompareConfig(model=model, output_dir=str(out_dir), prompts=prompts, test_prompts=test_prompts, k=k,
                        temperature=temperature, top_p=top_p, second_model=second_model,
                        second_replies=second_replies, raters=raters,
                        noise=DEFAULT_NOISE if noise is None else noise, max_new_tokens=max_new_tokens, seed=seed)
    out.print_json(data=collect(cfg, resolve_world(model, world)))


@app.command()
def reward(model: str = typer.Argument(..., help="The model to start from (the SFT model)."),
           data: Path = typer.Option(..., help="Comparisons (chatforge, prompt/chosen/rejected or HH-RLHF)."),
           out_dir: Path = typer.Option(..., "--out", help="Output directory (reward model in OUT/model)."),
           test_data: Optional[Path] = typer.Option(None, help="Held-out comparisons labelled by raters."),
           test_oracle_data: Optional[Path] = typer.Option(None, help="The same, labelled by the oracle."),
           ceiling: Optional[float] = typer.Option(None, help="Best accuracy rater noise allows on --test-data."),
           epochs: float = typer.Option(1.0), batch_size: int = typer.Option(32),
           learning_rate: float = typer.Option(3e-4), precision: str = typer.Option("auto"),
           likelihood_gate: bool = typer.Option(True, help="Also fit the likelihood gate (OUT/model/"
                                                "likelihood_gate.safetensors, for `ppo --likelihood-gate`)."),
           seed: int = typer.Option(0)):
    """Train a reward model on comparisons (TRL RewardTrainer); report held-out accuracy and plot rewards."""
    from chatforge.train.reward import RewardConfig, train_reward

    metrics = train_reward(RewardConfig(data=str(data), model=model, output_dir=str(out_dir),
                                        test_data=test_data and str(test_data),
                                        test_oracle_data=test_oracle_data and str(test_oracle_data), ceiling=ceiling,
                                        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                        precision=precision, likelihood_gate=likelihood_gate, seed=seed))
    out.print_json(data=metrics)


@app.command()
def dpo(model: str = typer.Argument(..., help="The SFT model (policy start and frozen reference)."),
        data: Path = typer.Option(..., help="Comparisons (chatforge, prompt/chosen/rejected or HH-RLHF)."),
        out_dir: Path = typer.Option(..., "--out", help="Output directory (model in OUT/model)."),
        epochs: float = typer.Option(1.0), batch_size: int = typer.Option(32),
        learning_rate: float = typer.Option(2e-4), beta: float = typer.Option(0.1),
        loss_type: str = typer.Option("sigmoid"), precision: str = typer.Option("auto"),
        lora_rank: int = typer.Option(0, help="LoRA rank (peft); 0 tunes every weight. Adapters are merged on save."),
        lora_targets: str = typer.Option("all-linear", help="LoRA target modules, comma-separated."),
        seed: int = typer.Option(0)):
    """Direct Preference Optimization on comparisons (TRL DPOTrainer). Resumes if killed."""
    from chatforge.train.dpo import DPOConfig
    from chatforge.train.dpo import dpo as run

    metrics = run(DPOConfig(data=str(data), model=model, output_dir=str(out_dir), epochs=epochs,
                            batch_size=batch_size, learning_rate=learning_rate, beta=beta, loss_type=loss_type,
                            precision=precision, lora_rank=lora_rank, lora_targets=lora_targets, seed=seed))
    out.print_json(data=metrics)


@app.command()
def ppo(model: str = typer.Argument(..., help="The SFT model (policy start and frozen reference)."),
        reward_model: str = typer.Option(..., help="Reward model directory (sequence classification, 1 output)."),
        prompts: Path = typer.Option(..., help="JSONL of {\"messages\": [...]} (a world's prompts_train.jsonl)."),
        out_dir: Path = typer.Option(..., "--out", help="Output directory (model in OUT/model, log.jsonl)."),
        steps: int = typer.Option(100), rollout_batch_size: int = typer.Option(64),
        samples_per_prompt: int = typer.Option(1, help="Replies per prompt in a rollout; above 1 each score is "
                                               "taken against the mean of the other replies to its prompt."),
        minibatch_size: int = typer.Option(16), ppo_epochs: int = typer.Option(4),
        learning_rate: float = typer.Option(5e-5), kl_coef: float = typer.Option(0.05),
        kl_target: Optional[float] = typer.Option(None, help="Adaptive KL: target KL per reply (default: fixed)."),
        temperature: float = typer.Option(1.0), max_new_tokens: int = typer.Option(48),
        ptx_coef: float = typer.Option(0.0, help="PPO-ptx: weight of the pretraining loss."),
        ptx_data: Optional[Path] = typer.Option(None, help="PPO-ptx data: pretraining text, or conversations "
                                                "(.jsonl, e.g. the SFT demonstrations)."),
        likelihood_gate: Optional[Path] = typer.Option(None, help="The reward model's likelihood_gate.safetensors "
                                                       "(from `chatforge reward`): the SFT model's likelihood joins "
                                                       "the reward where the prompt asks for a fact or a sum."),
        world: Optional[str] = typer.Option(None, help="World for the oracle watch (default: the model's)."),
        precision: str = typer.Option("auto"), save_every: int = typer.Option(20), seed: int = typer.Option(0)):
    """RLHF with PPO against a reward model, with a per-token KL penalty to the SFT model. Resumes if killed."""
    from chatforge.evals.heldout import resolve_world
    from chatforge.evals.overoptimisation import watch
    from chatforge.pipeline.stages import oracle_scorer
    from chatforge.train.ppo import PPOConfig
    from chatforge.train.ppo import ppo as run
    from chatforge.world.world import World

    cfg = PPOConfig(model=model, reward_model=reward_model, prompts=str(prompts), output_dir=str(out_dir),
                    steps=steps, rollout_batch_size=rollout_batch_size, samples_per_prompt=samples_per_prompt,
                    minibatch_size=minibatch_size,
                    ppo_epochs=ppo_epochs, learning_rate=learning_rate, kl_coef=kl_coef, kl_target=kl_target,
                    temperature=temperature, max_new_tokens=max_new_tokens, ptx_coef=ptx_coef,
                    ptx_data=ptx_data and str(ptx_data), likelihood_gate=likelihood_gate and str(likelihood_gate),
                    precision=precision, save_every=save_every, seed=seed)
    metrics = run(cfg, oracle_fn=oracle_scorer(World(resolve_world(model, world))))
    metrics["overoptimisation"] = watch(out_dir / "log.jsonl", out_dir / "overoptimisation.png")
    out.print_json(data=metrics)


@app.command()
def rloo(model: str = typer.Argument(..., help="The SFT model (policy start and KL reference)."),
         reward_model: str = typer.Option(..., help="Reward model directory (sequence classification, 1 output)."),
         prompts: Path = typer.Option(..., help="JSONL of {\"messages\": [...]} (a world's prompts_train.jsonl)."),
         out_dir: Path = typer.Option(..., "--out", help="Output directory (model in OUT/model)."),
         steps: int = typer.Option(30), batch_size: int = typer.Option(16), num_generations: int = typer.Option(4),
         learning_rate: float = typer.Option(5e-5), beta: float = typer.Option(0.05),
         temperature: float = typer.Option(0.8), max_new_tokens: int = typer.Option(48),
         precision: str = typer.Option("auto"), seed: int = typer.Option(0)):
    """RLOO (TRL RLOOTrainer) against a reward model: RL without a value model. Resumes if killed."""
    from chatforge.train.rloo import RLOOConfig
    from chatforge.train.rloo import rloo as run

    metrics = run(RLOOConfig(model=model, reward_model=reward_model, prompts=str(prompts), output_dir=str(out_dir),
                             steps=steps, batch_size=batch_size, num_generations=num_generations,
                             learning_rate=learning_rate, beta=beta, temperature=temperature,
                             max_new_tokens=max_new_tokens, precision=precision, seed=seed))
    out.print_json(data=metrics)


@app.command()
def winrate(samples_a: Path = typer.Argument(..., help="samples.jsonl of model A (from `chatforge eval --samples`)."),
            samples_b: Path = typer.Argument(..., help="samples.jsonl of model B, same world."),
            json_path: Optional[Path] = typer.Option(None, "--json")):
    """How often the oracle prefers A's reply to B's on the same held-out prompts (ties count half)."""
    from chatforge.evals.winrate import win_rate

    result = win_rate(samples_a, samples_b)
    _save_json(result, json_path)
    out.print_json(data=result)


# ---------------------------------------------------------------- using models

@app.command("eval")
def eval_(model: str = typer.Argument(..., help="Model directory or hub id."),
          json_path: Optional[Path] = typer.Option(None, "--json", help="Write the metrics here as JSON."),
          world: Optional[str] = typer.Option(None, help="World preset, run dir or world dir (default: the model's)."),
          samples: Optional[Path] = typer.Option(None, help="Write every prompt, reply and verdict as JSONL."),
          max_new_tokens: int = typer.Option(48),
          temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy; e.g. 0.8 to score the model as the "
                                            "web chat samples it."),
          top_p: float = typer.Option(1.0, min=0.0, max=1.0), seed: int = typer.Option(0),
          samples_per_prompt: int = typer.Option(1, min=1, help="Sampled replies per prompt (with --temperature); "
                                                 "rates are over all of them.")):
    """Score a model on the held-out split with the oracle: per behaviour, family and criterion."""
    from chatforge.evals.heldout import evaluate, resolve_world
    from chatforge.evals.scorecard import print_scorecard
    from chatforge.models.generate import SamplingConfig
    from chatforge.models.loading import check_model_dir

    check_model_dir(model)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    metrics = evaluate(model, resolve_world(model, world), sampling, samples_path=samples,
                       samples_per_prompt=samples_per_prompt)
    _save_json(metrics, json_path)
    print_scorecard({Path(model).name or model: metrics}, out)


@app.command()
def chat(model: str = typer.Argument(..., help="Model directory or hub id."),
         message: Optional[str] = typer.Option(None, "-m", "--message", help="Reply to this once and exit."),
         system: Optional[str] = typer.Option(None, help="A system message to start the conversation with."),
         temperature: float = typer.Option(0.7, min=0.0), top_p: float = typer.Option(0.9, min=0.0, max=1.0),
         max_new_tokens: int = typer.Option(128, min=1), seed: Optional[int] = typer.Option(None)):
    """Talk to a model in the terminal (multi-turn), or get one reply with -m."""
    from chatforge.serve.terminal import chat_loop, one_reply

    if message is not None:
        print(one_reply(model, message, system, temperature, top_p, max_new_tokens, seed))
    else:
        chat_loop(model, system, temperature, top_p, max_new_tokens, seed)


# ---------------------------------------------------------------- the pipeline

@app.command()
def demo(preset: str = typer.Option("small", help="tiny (seconds) or small (minutes)."),
         run_dir: Optional[Path] = typer.Option(None, help="Run directory (default: runs/<preset>)."),
         chat_after: bool = typer.Option(False, "--chat", help="Open a terminal chat with the SFT model at the end."),
         serve_after: Optional[bool] = typer.Option(None, "--serve/--no-serve", help="Serve the best model at the "
                                                    "end (default: when run from a terminal, not under CI)."),
         port: int = typer.Option(8000, help="Port for the server at the end.")):
    """World → pretrain → SFT → comparisons → reward model → PPO and DPO → moderation → evals and win rates, then a
    side-by-side scorecard, then the best model served with the web UI. Re-running skips finished stages."""
    from chatforge.evals.scorecard import print_scorecard
    from chatforge.pipeline.presets import pipeline_preset
    from chatforge.pipeline.run import RunDir
    from chatforge.pipeline.stages import demo_stages, write_scorecard

    pipeline_preset(preset)
    run_dir = run_dir or Path("runs") / preset
    results = RunDir(run_dir).run(demo_stages(preset))
    card = write_scorecard(run_dir, results)
    print_scorecard(card, out)
    out.print(f"scorecard: {run_dir / 'scorecard.json'}", soft_wrap=True)
    out.print(f"talk to it: chatforge chat {run_dir / 'sft' / 'model'}", soft_wrap=True)
    if chat_after and sys.stdin.isatty():
        from chatforge.serve.terminal import chat_loop

        chat_loop(str(run_dir / "sft" / "model"))
    if serve_after is None:
        serve_after = sys.stdin.isatty() and not os.environ.get("CI")
    if serve_after:
        from chatforge.serve.from_run import serve_run

        serve_run(run_dir, card, port=port, console=out)


# ---------------------------------------------------------------- the model registry

models_app = typer.Typer(no_args_is_help=True, help="Every model the runs made: lineage, metrics, which one is served.")
app.add_typer(models_app, name="models")
REGISTRY_OPTION = typer.Option(None, "--registry", help="Registry file (default: $CHATFORGE_HOME/registry.json).")


@models_app.command("list")
def models_list(registry: Optional[Path] = REGISTRY_OPTION):
    """Every registered version, oldest first; * marks the served one."""
    from rich.table import Table

    from chatforge.models.registry import Registry

    versions = Registry(registry).list()
    if not versions:
        out.print("no models registered yet (a pipeline run registers every model it makes)")
        return
    table = Table("", "ref", "kind", "parent", "created", "key metric")
    for v in versions:
        key = next((k for k in ("oracle_score", "final_loss", "train_loss") if v.metrics.get(k) is not None), None)
        table.add_row("*" if v.served else "", v.ref, v.kind, v.parent or "", v.created[:16].replace("T", " "),
                      f"{key} {v.metrics[key]}" if key else "")
    for col in table.columns[:2]:
        col.no_wrap = True
    out.print(table)


@models_app.command("show")
def models_show(ref: str = typer.Argument(..., help="name (latest), name:N, or served."),
                registry: Optional[Path] = REGISTRY_OPTION):
    """One version as JSON: path, lineage up to the root, data, config, metrics."""
    from chatforge.models.registry import Registry

    reg = Registry(registry)
    v = reg.get(ref)
    out.print_json(data={"ref": v.ref, "served": v.served, "path": v.path, "kind": v.kind,
                         "lineage": reg.lineage(v.ref), "data": v.data, "config": v.config, "metrics": v.metrics,
                         "run": v.run, "created": v.created})


@models_app.command("promote")
def models_promote(ref: str = typer.Argument(..., help="name (latest) or name:N."),
                   registry: Optional[Path] = REGISTRY_OPTION):
    """Mark one version as the model to serve (only one is, at any time)."""
    from chatforge.models.registry import Registry

    v = Registry(registry).promote(ref)
    out.print(f"serving {v.ref} ({v.path})", soft_wrap=True, markup=False, highlight=False)


# ---------------------------------------------------------------- preference data

comparisons_app = typer.Typer(no_args_is_help=True, help="Pairwise comparisons: convert between formats.")
app.add_typer(comparisons_app, name="comparisons")


@comparisons_app.command("convert")
def comparisons_convert(src: Path = typer.Argument(..., metavar="IN", help="chatforge, TRL or HH-RLHF comparisons."),
                        dst: Path = typer.Argument(..., metavar="OUT", help="Output JSONL."),
                        to: str = typer.Option(..., "--to", help="chatforge, trl or hh.")):
    """Convert a comparisons file (any format chatforge reads, detected per line) into one format."""
    from chatforge.data.comparisons import read_comparisons, write_comparisons

    comparisons = read_comparisons(src)
    write_comparisons(comparisons, dst, fmt=to)
    out.print(f"wrote {len(comparisons)} comparisons to {dst} ({to})", soft_wrap=True, markup=False, highlight=False)


@app.command()
def rate(tasks: Path = typer.Argument(..., metavar="TASKS_FILE", help="JSONL: a prompt and K replies per line."),
         rater: str = typer.Option(..., help="Your name; comparisons are labelled human:NAME."),
         out_file: Path = typer.Option(..., "--out", help="Comparisons file to append to (resumes from it).")):
    """Rank replies at the terminal, best first; every answer is saved at once, so stopping loses nothing."""
    from chatforge.data.rate_terminal import rate_tasks

    rate_tasks(tasks, rater, out_file)


# ---------------------------------------------------------------- the product: serve, keys, users, export

DB_OPTION = typer.Option(None, "--db", help="Database: a SQLAlchemy URL, a .db file, or a directory holding "
                         "chatforge.db (default: $CHATFORGE_DB, else ./chatforge.db).")


def _db_url(db: Optional[str], default_dir: Optional[Path] = None) -> str:
    """A SQLAlchemy URL from --db: URLs as they are, a .db file, or a directory that holds chatforge.db."""
    from chatforge.store.db import sqlite_url

    db = db or os.environ.get("CHATFORGE_DB")
    if db and "://" in db:
        return db
    path = Path(db) if db else (default_dir or Path("."))
    if path.is_dir() or path.suffix not in (".db", ".sqlite", ".sqlite3"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / "chatforge.db"
    return sqlite_url(path)


@app.command()
def serve(model: str = typer.Argument(..., metavar="MODEL", help="Model directory or registry ref (served, ppo:1)."),
          host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every one)."),
          port: int = typer.Option(8000, help="Port."),
          db: Optional[str] = DB_OPTION,
          moderation: Optional[Path] = typer.Option(None, help="Moderation classifier directory (default: the run's "
                                                    "moderation/model if there is one)."),
          policy: Optional[str] = typer.Option(None, help="Moderation actions: JSON or a JSON file, e.g. "
                                               "'{\"malware\": \"block\", \"toxic\": \"flag\"}'."),
          rate_tasks: Optional[Path] = typer.Option(None, help="Ranking tasks for /rate (default: the run's "
                                                    "compare/tasks_train.jsonl)."),
          max_batch_size: int = typer.Option(32, help="Requests decoded together."),
          max_queue: int = typer.Option(256, help="Waiting requests before 429."),
          default_max_tokens: int = typer.Option(256, help="Reply length limit when a request sets none."),
          backend: str = typer.Option("chatforge", help="chatforge (continuous batching, CPU/GPU) or vllm (GPU)."),
          compare_rate: float = typer.Option(0.1, help="How often the chat page shows two replies side by side."),
          closed_signup: bool = typer.Option(False, "--closed-signup", help="Only admins create accounts.")):
    """Serve a model: OpenAI-compatible API at /v1, the chat page at /, raters at /rate, admins at /admin."""
    from chatforge.serve.app import serve as run_server
    from chatforge.serve.config import ServeConfig
    from chatforge.serve.service import resolve_model

    path, model_id = resolve_model(model)
    run_dir = _run_dir_of(Path(path))
    data_dir = run_dir or Path(".")
    if moderation is None and run_dir and (run_dir / "moderation" / "model" / "config.json").is_file():
        moderation = run_dir / "moderation" / "model"
    if rate_tasks is None and run_dir and (run_dir / "compare" / "tasks_train.jsonl").is_file():
        rate_tasks = run_dir / "compare" / "tasks_train.jsonl"
    if not 0 <= compare_rate <= 1:
        raise ChatforgeError("--compare-rate must be between 0 and 1")
    cfg = ServeConfig(model=path, model_id=model_id, host=host, port=port, db=_db_url(db, data_dir),
                      data_dir=str(data_dir), max_batch_size=max_batch_size, max_queue=max_queue,
                      default_max_tokens=default_max_tokens, backend=backend,
                      moderation=str(moderation) if moderation else None, moderation_policy=policy,
                      compare_rate=compare_rate, open_signup=not closed_signup,
                      rate_tasks=str(rate_tasks) if rate_tasks else None)
    out.print(f"database: {cfg.db}" + (f" · moderation: {cfg.moderation}" if cfg.moderation else ""),
              soft_wrap=True, markup=False, highlight=False)
    run_server(cfg)


def _run_dir_of(model_path: Path) -> Optional[Path]:
    """RUN for a model at RUN/<stage>/model (a chatforge run directory), else None."""
    candidate = model_path.resolve().parent.parent
    return candidate if (candidate / "world").is_dir() or (candidate / "scorecard.json").is_file() else None


keys_app = typer.Typer(no_args_is_help=True, help="API keys for /v1 (required once any key exists).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(name: str = typer.Argument(..., help="A label for the key (who or what uses it)."),
                user: Optional[str] = typer.Option(None, help="The account the key belongs to."),
                db: Optional[str] = DB_OPTION):
    """Create a key; its secret is printed once and only its hash is stored."""
    from chatforge.store import open_store

    store = open_store(_db_url(db))
    owner = store.get_user_by_name(user) if user else None
    if user and not owner:
        raise ChatforgeError(f"no user '{user}' (see: chatforge users list)")
    key, secret = store.create_key(name, owner["id"] if owner else None)
    print(secret)
    print(f"key {key['id']} '{name}' created; keep the secret above, it is not shown again", file=sys.stderr)


@keys_app.command("list")
def keys_list(db: Optional[str] = DB_OPTION):
    """Every key (never the secrets), revoked ones marked."""
    from rich.table import Table

    from chatforge.store import open_store

    table = Table("id", "name", "prefix", "user", "created", "revoked")
    for k in open_store(_db_url(db)).list_keys():
        table.add_row(str(k["id"]), k["name"], k.get("prefix", ""), str(k.get("user_id") or ""),
                      str(k.get("created", ""))[:16], "yes" if k.get("revoked") else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="Key id or name."), db: Optional[str] = DB_OPTION):
    """Revoke a key: requests with it get 401 from now on."""
    from chatforge.store import open_store

    open_store(_db_url(db)).revoke_key(key)
    out.print(f"revoked key {key}", markup=False, highlight=False)


users_app = typer.Typer(no_args_is_help=True, help="Accounts of the web product: user, rater, admin.")
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(name: str = typer.Argument(...), role: str = typer.Option("user", help="user, rater or admin."),
                 password: Optional[str] = typer.Option(None, help="Default: $CHATFORGE_PASSWORD, else asked for."),
                 db: Optional[str] = DB_OPTION):
    """Create an account (the first admin is made this way)."""
    from chatforge.store import open_store

    if role not in ("user", "rater", "admin"):
        raise ChatforgeError(f"unknown role '{role}' (choose from: user, rater, admin)")
    password = password or os.environ.get("CHATFORGE_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise ChatforgeError("no password: pass --password or set CHATFORGE_PASSWORD")
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    user = open_store(_db_url(db)).create_user(name, password, role)
    out.print(f"created {role} '{user['name']}' (id {user['id']})", markup=False, highlight=False)


@users_app.command("list")
def users_list(db: Optional[str] = DB_OPTION):
    """Every account and its role."""
    from chatforge.store import open_store

    for u in open_store(_db_url(db)).list_users():
        out.print(f"{u['id']}\t{u['name']}\t{u['role']}", markup=False, highlight=False)


@users_app.command("set-role")
def users_set_role(name: str = typer.Argument(...), role: str = typer.Argument(..., help="user, rater or admin."),
                   db: Optional[str] = DB_OPTION):
    """Change an account's role."""
    from chatforge.store import open_store

    if role not in ("user", "rater", "admin"):
        raise ChatforgeError(f"unknown role '{role}' (choose from: user, rater, admin)")
    open_store(_db_url(db)).set_role(name, role)
    out.print(f"{name} is now {role}", markup=False, highlight=False)


@app.command()
def export(out_dir: Path = typer.Option(..., "--out", help="Directory for sft.jsonl, preferences.jsonl, "
                                        "redteam.jsonl."),
           since: Optional[str] = typer.Option(None, help="Only data after this: an ISO date or 7d, 24h, 30m."),
           db: Optional[str] = DB_OPTION):
    """Write the store's feedback, votes, rankings and triaged chats as training data the stages read as is."""
    from chatforge.store import open_store
    from chatforge.store.export import export as run_export
    from chatforge.store.export import parse_since

    result = run_export(open_store(_db_url(db)), out_dir, parse_since(since) if since else None)
    out.print_json(data=result)


moderation_app = typer.Typer(no_args_is_help=True, help="The safety classifier that checks inputs and outputs.")
app.add_typer(moderation_app, name="moderation")


@moderation_app.command("train")
def moderation_train(out_dir: Path = typer.Option(..., "--out", help="Output directory (the model goes in OUT/model)."),
                     world: str = typer.Option("small", help="World preset to learn from: tiny or small."),
                     world_dir: Optional[Path] = typer.Option(None, help="A built world directory instead."),
                     epochs: float = typer.Option(4.0), seed: int = typer.Option(0)):
    """Train the multi-label safety classifier (weapons, malware, drugs, fraud, harassment, toxic, jailbreak) on the
    world's requests and replies; held-out precision and recall go to OUT/metrics.json."""
    from chatforge.moderation.train import ModerationConfig, train_moderation

    metrics = train_moderation(ModerationConfig(output_dir=str(out_dir), world=world, epochs=epochs, seed=seed,
                                                world_dir=str(world_dir) if world_dir else None))
    out.print_json(data={k: v for k, v in metrics.items() if k != "categories"})


@app.command()
def moderate(texts: list[str] = typer.Argument(..., metavar="TEXT...", help="Texts to check."),
             model: Path = typer.Option(..., "--model", help="Moderation model directory (any HF classifier)."),
             policy: Optional[str] = typer.Option(None, help="Per-category actions: JSON/TOML text or a file."),
             role: str = typer.Option("input", help="input (a user's message) or output (a model's reply).")):
    """Classify texts and show what the policy would do with each (allow, log, flag, block)."""
    from chatforge.moderation.classifier import moderate as run_moderate

    if role not in ("input", "output"):
        raise ChatforgeError(f"--role must be input or output, not '{role}'")
    for r in run_moderate(model, texts, policy, role):
        scores = {k: round(v, 3) for k, v in r["category_scores"].items() if v >= 0.05}
        out.print(f"{r['action']:>5}  {', '.join(r['triggered']) or '-':<20} {scores}  {r['text'][:80]}",
                  markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- red-teaming

@app.command()
def redteam(model: Optional[str] = typer.Argument(None, metavar="[MODEL]", help="Target model: directory or registry "
                                                   "ref (or use --target-url)."),
            target_url: Optional[str] = typer.Option(None, help="An OpenAI-compatible endpoint, e.g. "
                                                     "http://127.0.0.1:8000/v1 (key: $CHATFORGE_TARGET_KEY)."),
            target_model: str = typer.Option("default", help="Model name at the endpoint."),
            attacker: str = typer.Option("templates", help="Comma-separated: templates, lm, trained (the attacker "
                                         "LM tuned with RL against this target first)."),
            queries: int = typer.Option(200, help="Attacks per attacker."),
            train_steps: int = typer.Option(40, help="RL steps of the trained attacker (32 queries each)."),
            out_dir: Path = typer.Option(Path("redteam"), "--out", help="Campaign directory (resumes if it exists)."),
            judge: str = typer.Option("oracle", help="oracle, moderation or both."),
            split: str = typer.Option("heldout", help="Template wrappers: heldout (evaluation) or train."),
            attacker_model: Optional[str] = typer.Option(None, help="Model that writes attacks for --attacker lm "
                                                         "(default: the run's SFT model)."),
            rate: float = typer.Option(10.0, help="Requests/s to an endpoint (0 = unbounded)."),
            temperature: float = typer.Option(0.0, help="Target sampling; 0 (greedy) makes HTTP and in-process "
                                              "verdicts identical."),
            max_tokens: int = typer.Option(48), seed: int = typer.Option(0),
            batch_size: int = typer.Option(32, help="Attacks proposed, sent and judged together (the unit of "
                                           "resume): 256 judged 1000 attacks in 9.9 s on 2 cores, 32 in 16.6 s."),
            campaign: str = typer.Option("redteam", help="Campaign tag: product chats titled #TAG join it."),
            store: Optional[str] = typer.Option(None, "--store", "--human-db", help="The product database (path or "
                                                "URL): every attack is kept there too, and its #TAG chats join.")):
    """Attack a model or endpoint with jailbreak templates, an attacker LM or an RL-trained attacker; every attack,
    reply and verdict is kept in OUT/attacks.jsonl (resumable) and OUT/report.json has ASR per category, wrapper and
    attacker."""
    from chatforge.redteam.cli_entry import redteam_command

    redteam_command(model=model, target_url=target_url, target_model=target_model, attacker=attacker,
                    queries=queries, out=str(out_dir), seed=seed, rate=rate, judge=judge, split=split,
                    attacker_model=attacker_model, temperature=temperature, max_tokens=max_tokens, campaign=campaign,
                    store_db=store, train_steps=train_steps, batch_size=batch_size)


@app.command()
def adversarial(model: str = typer.Argument(..., metavar="MODEL", help="The assistant to harden: directory or ref."),
                rounds: int = typer.Option(3, help="Attack-and-retrain rounds."),
                out_dir: Path = typer.Option(Path("adversarial"), "--out", help="Output directory (resumes)."),
                queries: int = typer.Option(64, help="Training-split attacks per attacker per round."),
                heldout_queries: int = typer.Option(64, help="Held-out attacks that measure each round."),
                attacker: str = typer.Option("templates,lm", help="Comma-separated: templates, lm."),
                train: str = typer.Option("sft+dpo", help="How each round retrains: sft+dpo, sft or dpo."),
                retrain_from: str = typer.Option("previous", help="What each round retrains on every round's data "
                                                 "so far: the previous round's model, or the starting one (start)."),
                k: int = typer.Option(0, help="Safe responses: 0 = the world's gold reply, K = best of K target "
                                      "samples the judge passes."),
                sft_data: Optional[str] = typer.Option(None, help="Original SFT data mixed into every round "
                                                       "(default: the run's sft.jsonl)."),
                temperature: float = typer.Option(0.0, help="The target's sampling under attack (training and "
                                                  "held-out attacks); the eval stays greedy."),
                check_prompts: int = typer.Option(0, help="Also measure helpfulness each round on this many fresh "
                                                  "held-out prompts per family (task, known fact, benign but scary)."),
                seed: int = typer.Option(0)):
    """Adversarial training: attack, pair each success with a safe reply, retrain (SFT then DPO), register the new
    version, attack it again; held-out ASR, helpfulness and over-refusal per round in OUT/rounds.json and a plot."""
    from chatforge.redteam.cli_entry import adversarial_command

    adversarial_command(model=model, rounds=rounds, out=str(out_dir), queries=queries, heldout_queries=heldout_queries,
                        attacker=attacker, train=train, retrain_from=retrain_from, k=k, sft_data=sft_data,
                        temperature=temperature, seed=seed, check_prompts=check_prompts)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every expected failure into one line and an exit code."""
    def err(msg: str) -> None:  # plain text: never wrapped, never read as markup
        print(" ".join(msg.split()), file=sys.stderr)

    try:
        code = typer.main.get_command(app).main(args=argv, prog_name="chatforge", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.TyperException as e:  # usage errors from Typer's (vendored) click
        if type(e).__name__ == "NoArgsIsHelpError":  # `chatforge` alone: show the help
            print(e.format_message())
            return 0
        ctx = getattr(e, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None and e.exit_code == 2 else ""
        err(f"error: {e.format_message()}{hint}")
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt, EOFError):
        err("interrupted")
        return 130
    except ChatforgeError as e:
        err(f"error: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: still one line, the traceback on request
        if os.environ.get("CHATFORGE_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        err(f"error: {type(e).__name__}: {first} (set CHATFORGE_DEBUG=1 for the traceback)")
        return 1


def run() -> None:
    sys.exit(main())
