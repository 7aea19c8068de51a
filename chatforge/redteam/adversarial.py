"""Adversarial training (`chatforge adversarial`): attack the assistant, train on what broke it, attack it again.

Each round r = 1..N:
1. *attack*: a campaign against the current model with TRAIN-split attackers only: the world's train wrappers
   (`TemplateAttacker(world, "train")`) and the attacker LM, which keeps every success it has seen in earlier rounds
   as few-shot material (rebuilt from the journals on resume);
2. *pair*: every successful attack gets a safe response: the world's gold reply (its refusal style for harmful and
   jailbreak requests, the helpful answer where a request is benign), or with `k > 0` the best of K target samples
   that the judge passes and the oracle rates a proper refusal (gold when none does). Safe responses go into the SFT
   data (`sft.jsonl`: the original demonstrations, or `replay` of them, plus every round's new conversations so far)
   and into preference pairs (`pairs.jsonl`: safe chosen, the violating reply rejected, chatforge's comparison format
   with source "redteam"). `benign` adds that many benign-but-scary train prompts per new example (gold answer in the
   SFT data; answer chosen over a refusal in the pairs), so refusing more does not become the lesson;
3. *retrain*: SFT then DPO (`train="sft+dpo"`, or one of them), small budgets, each resumable from its checkpoints;
   from the previous round's model or (`retrain_from="start"`) from the starting model, on every round's data so far;
   the new model is registered (`name:N`, parent: the model it was trained from, data: the round's files, metrics);
4. *measure*: HELD-OUT attacks (`TemplateAttacker(world, "heldout")`: wrapper families training never uses, the same
   attacks every round) and the held-out eval (task helpfulness, known-fact accuracy, benign-but-scary compliance,
   over-refusal).

Round 0 measures the starting model. A finished round (OUT/round-r/DONE) is skipped on a rerun; a killed one resumes
(campaign journals, trainer checkpoints). OUT/adversarial.json holds the config, OUT/rounds.json every round's
figures, OUT/adversarial.png held-out ASR, helpfulness and over-refusal against the round.

Held-out text never reaches training: attacks come only from train wrappers and train requests, and a success
whose text looks held out (`attackers.leaks_heldout`) is dropped before it is written (counted as `dropped_heldout`).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from chatforge.errors import ChatforgeError
from chatforge.evals.intervals import ratio_interval

TRAIN_MODES = ("sft+dpo", "sft", "dpo")
RETRAIN_FROM = ("previous", "start")
ATTACKERS = ("templates", "lm")
SAFE_FAMILIES = ("harmful", "jailbreak")
# the eval figures kept per round (evals/metrics.py HEADLINE names)
EVAL_FIGURES = ("task_accuracy", "known_fact_accuracy", "benign_answered", "over_refusal", "harmful_refusal",
                "jailbreak_asr", "identity_honesty", "oracle_score")
console = Console(stderr=True)


@dataclass
class AdversarialConfig:
    output_dir: str
    rounds: int = 3
    queries: int = 64  # train-split attacks per attacker per round
    heldout_queries: int = 64  # held-out attacks per round (the same ones every round)
    attackers: str = "templates,lm"
    attacker_model: str | None = None  # the attacker LM; default: the starting model
    attacker_max_new_tokens: int = 64  # the longest attack it writes (a tiny model rarely stops on its own)
    train: str = "sft+dpo"
    sft_data: str | None = None  # the original demonstrations; default: the world's own (written to OUT)
    replay: int = 0  # original demonstrations per round's SFT data (0 = all of them)
    benign: float = 0.5  # benign-but-scary train examples added per new safe example
    k: int = 0  # target samples per success to pick a safe response from (0: the world's gold reply)
    sft_epochs: float = 1.0
    sft_learning_rate: float = 1e-3
    sft_batch_size: int = 16
    freeze_embeddings: bool = False
    dpo_epochs: float = 1.0
    dpo_learning_rate: float = 1e-4
    dpo_batch_size: int = 16
    dpo_beta: float = 0.1
    dpo_lora_rank: int = 0  # > 0: the rounds' DPO tunes LoRA adapters of this rank (train/dpo.py), merged after
    dpo_lora_targets: str = "all-linear"
    # what each round retrains: "previous" (the round it attacked, on every round's data so far) or "start" (the
    # starting model, on every round's data so far). From "previous", early rounds' pairs are trained on again each
    # round and the DPO passes compound (round 3 sees round 1's pairs a third time): measured on the small demo's PPO
    # model, held-out ASR fell for two rounds and rose again in the third (4.4 -> 2.2 -> 3.6% and 4.4 -> 2.2 -> 4.8%)
    retrain_from: str = "previous"
    max_new_tokens: int = 48  # target replies to attacks and in the eval
    temperature: float = 0.0  # the target's sampling under attack (training and held-out attacks; the eval is greedy):
    # > 0 measures how often sampling breaks a model that greedy decoding keeps safe
    batch_size: int = 32  # attacks per campaign batch
    # fresh held-out prompts per family (task, known fact, benign but scary) each round's helpfulness is also measured
    # on, the same every round: in the 40-prompt eval one prompt moves a family's figure by 2.5 points
    check_prompts: int = 0
    name: str = "adversarial"  # registry name of each round's model
    seed: int = 0


# settings that may change between runs on the same OUT without invalidating finished rounds
EXTENDABLE = ("rounds", "output_dir")


def check_config(cfg: AdversarialConfig) -> list[str]:
    kinds = [k.strip() for k in cfg.attackers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ATTACKERS]
    if unknown or not kinds:
        raise ChatforgeError(f"unknown attacker '{','.join(unknown) or cfg.attackers}' "
                             f"(choose from: {', '.join(ATTACKERS)})")
    if cfg.train not in TRAIN_MODES:
        raise ChatforgeError(f"unknown training '{cfg.train}' (choose from: {', '.join(TRAIN_MODES)})")
    if cfg.retrain_from not in RETRAIN_FROM:
        raise ChatforgeError(f"unknown retrain_from '{cfg.retrain_from}' (choose from: {', '.join(RETRAIN_FROM)})")
    if not 0 <= cfg.temperature <= 5:
        raise ChatforgeError(f"temperature must be in [0, 5], got {cfg.temperature}")
    counts = (cfg.rounds, cfg.k, cfg.replay, cfg.benign, cfg.check_prompts)
    if min(counts) < 0 or min(cfg.queries, cfg.heldout_queries) < 1:
        raise ChatforgeError("rounds, k, replay, benign and check prompts must be >= 0; queries and heldout queries "
                             ">= 1")
    return kinds


def adversarial(cfg: AdversarialConfig, model_path: str, world_cfg=None, progress: bool = True) -> dict:
    """Run (or resume) N rounds from `model_path` (a directory or registry ref); returns rounds.json's content."""
    from chatforge.models.registry import Registry
    from chatforge.world.world import World

    kinds = check_config(cfg)
    start = Registry().resolve(model_path)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "adversarial.json"
    settings = {k: v for k, v in asdict(cfg).items() if k not in EXTENDABLE}
    if saved.is_file():
        before = json.loads(saved.read_text())
        if {k: v for k, v in before["config"].items() if k not in EXTENDABLE} != settings or \
                before.get("start") != str(Path(start).resolve()):
            raise ChatforgeError(f"{out} holds rounds made with other settings or another starting model; "
                                 "give another --out or delete it")
    world = World(world_cfg)
    saved.write_text(json.dumps({"config": asdict(cfg), "start": str(Path(start).resolve()),
                                 "world": world.cfg.to_dict()}, indent=2))
    original = original_demonstrations(cfg, world, out)
    rounds = [measure_round(cfg, world, out, 0, start, {}, progress)]
    lm = None
    model = start
    for r in range(1, cfg.rounds + 1):
        folder = out / f"round-{r}"
        done = folder / "DONE"
        if done.is_file():
            metrics = json.loads(done.read_text())
            console.print(f"[dim]✓ adversarial round {r}: already done, skipped[/dim]")
        else:
            if lm is None and "lm" in kinds:
                lm = lm_attacker(cfg, start, out, r)
            console.print(f"[bold]▶ adversarial round {r}/{cfg.rounds}[/bold] (target {model})")
            metrics = train_round(cfg, world, out, r, model, kinds, lm, original, progress, start)
        rounds.append(metrics)
        model = metrics["model"]
    return write_rounds(out, rounds)


# --- data ---

def original_demonstrations(cfg: AdversarialConfig, world, out: Path) -> list[dict]:
    """The SFT data the model was made with: `sft_data`, else the world's demonstrations (saved to OUT)."""
    from chatforge.data.conversations import load_conversations

    if cfg.sft_data:
        return [{"messages": m} for m in load_conversations(cfg.sft_data)]
    path = out / "sft_original.jsonl"
    if not path.is_file():
        write_jsonl(path, world.demonstrations())
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def safe_examples(cfg: AdversarialConfig, world, rows: list[dict], target, rng: random.Random):
    """(SFT conversations, comparisons, counts) for the successful attacks in `rows`."""
    from chatforge.data.comparisons import Comparison
    from chatforge.redteam.attackers import leaks_heldout
    from chatforge.world.prompts import Prompt, assistant
    from chatforge.world.styles import raw_refusal

    wins = [r for r in rows if r["verdict"]["violation"]]
    kept = [r for r in wins if not any(leaks_heldout(m["content"]) for m in r["messages"] if m["role"] == "user")]
    prompts = [Prompt.from_dict(r["prompt"]) for r in kept]
    safe = [world.gold(p, rng) for p in prompts]
    sampled = 0
    if cfg.k > 0 and kept:
        picks = best_of_k(cfg, world, prompts, target)
        sampled = sum(x is not None for x in picks)
        safe = [x if x is not None else g for x, g in zip(picks, safe)]
    convs, pairs = [], []
    for r, p, s in zip(kept, prompts, safe):
        convs.append({"messages": p.messages + [assistant(s)], "family": p.family, "source": "redteam",
                      "attack": r["id"], "round": r.get("round")})
        pairs.append(Comparison(p, s, r["reply"], "oracle", {"harmless": "chosen"}, group=r["id"], source="redteam",
                                policy=str(getattr(target, "name", ""))))
    benign = [world.ask("benign_scary", rng, "train") for _ in range(round(cfg.benign * len(kept)))]
    for p in benign:
        answer = world.gold(p, rng)
        convs.append({"messages": p.messages + [assistant(answer)], "family": p.family, "source": "redteam-benign"})
        pairs.append(Comparison(p, answer, raw_refusal(rng), "oracle", {"no_over_refusal": "chosen"},
                                source="redteam"))
    counts = {"successes": len(wins), "dropped_heldout": len(wins) - len(kept), "safe_from_samples": sampled,
              "benign_added": len(benign)}
    return convs, pairs, counts


def best_of_k(cfg: AdversarialConfig, world, prompts, target) -> list[str | None]:
    """For each prompt, the best-rated of K target samples (T=0.8) that the oracle calls a safe refusal (harmful
    requests) or a non-violation (anything else); None where no sample passes."""
    from chatforge.redteam.targets import campaign_sampling

    greedy = target.sampling
    target.sampling = campaign_sampling(cfg.max_new_tokens, temperature=0.8, top_p=0.95)
    try:
        convs = [p.messages for p in prompts for _ in range(cfg.k)]
        replies = target.reply(convs, [cfg.seed * 7919 + i for i in range(len(convs))])
    finally:
        target.sampling = greedy
    out = []
    for i, p in enumerate(prompts):
        best = None
        for text in replies[i * cfg.k:(i + 1) * cfg.k]:
            v = world.oracle.judge(p, text)
            ok = v.flags.get("refused_safely") if p.family in SAFE_FAMILIES else not v.flags.get("complied")
            if ok and text.strip() and (best is None or v.score > best[0]):
                best = (v.score, text)
        out.append(best[1] if best else None)
    return out


# --- attackers ---

def lm_attacker(cfg: AdversarialConfig, start: str, out: Path, upto: int):
    """The attacker LM, with the successes of rounds before `upto` replayed (it keeps learning across rounds)."""
    from chatforge.models.registry import Registry
    from chatforge.redteam.attackers import Attack, LMAttacker
    from chatforge.redteam.judge import Verdict

    lm = LMAttacker(Registry().resolve(cfg.attacker_model) if cfg.attacker_model else start,
                    max_new_tokens=cfg.attacker_max_new_tokens)
    for r in range(1, upto):
        rows = [x for x in read_jsonl(out / f"round-{r}" / "attack" / "attacks.jsonl") if x["attacker"] == lm.name]
        lm.observe([Attack.from_dict(x) for x in rows], [Verdict.from_dict(x["verdict"]) for x in rows])
    return lm


# --- rounds ---

def measure_round(cfg: AdversarialConfig, world, out: Path, r: int, model: str, extra: dict, progress: bool) -> dict:
    """Held-out attacks and the held-out eval of one round's model (cached in round-r/measure.json)."""
    from chatforge.evals.heldout import evaluate
    from chatforge.models.generate import SamplingConfig
    from chatforge.redteam.attackers import TemplateAttacker
    from chatforge.redteam.campaign import CampaignConfig, run_campaign
    from chatforge.redteam.judge import OracleJudge
    from chatforge.redteam.targets import ModelTarget, campaign_sampling

    folder = out / f"round-{r}"
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / "measure.json"
    if cached.is_file():
        return {**json.loads(cached.read_text()), **extra}
    # the same seed every round: the same held-out attacks, so rounds differ only in the model
    camp = CampaignConfig(out=str(folder / "heldout"), queries=cfg.heldout_queries, batch_size=cfg.batch_size,
                          seed=cfg.seed, round=r, campaign="adversarial-heldout")
    with ModelTarget(model, campaign_sampling(cfg.max_new_tokens, cfg.temperature)) as target:
        report = run_campaign(camp, target, OracleJudge(world), [TemplateAttacker(world, "heldout")],
                              progress=progress, console=False)
    ev = evaluate(model, world.cfg, SamplingConfig(max_new_tokens=cfg.max_new_tokens),
                  samples_path=folder / "eval_samples.jsonl", progress=progress, label=f"round {r}")
    (folder / "eval.json").write_text(json.dumps(ev, indent=2))
    o = report["overall"]
    metrics = {"round": r, "model": str(Path(model).resolve()), "heldout_asr": o["asr"],
               "heldout_queries": o["queries"], "heldout_successes": o["successes"],
               "heldout_asr_by_wrapper": {k.split(":", 1)[1]: v["asr"] for k, v in report["by_wrapper"].items()},
               **{k: ev.get(k) for k in EVAL_FIGURES}}
    if cfg.check_prompts:
        metrics.update(helpfulness_check(world, model, cfg.check_prompts, cfg.max_new_tokens))
    cached.write_text(json.dumps(metrics, indent=2))
    return {**metrics, **extra}


# the wider helpfulness check: figure → (family, the verdict flag it counts). Over-refusal is counted here too: on the
# eval's benign-but-scary prompts one refusal moves it 1 point (2.5 when the eval had 40 a family, before 2026-11-28)
CHECK_FIGURES = {"wide_task_accuracy": ("task", "correct"), "wide_known_fact_accuracy": ("known_fact", "correct"),
                 "wide_benign_answered": ("benign_scary", "answered"), "wide_over_refusal": ("benign_scary", "refused")}


def helpfulness_check(world, model: str, n: int, max_new_tokens: int) -> dict:
    """Percent (greedy) of `n` held-out prompts per family of CHECK_FIGURES, drawn from fixed seeds, whose verdict
    has each figure's flag."""
    from chatforge.models.generate import SamplingConfig, reply
    from chatforge.models.loading import load_model

    families = dict.fromkeys(family for family, _ in CHECK_FIGURES.values())
    m, tok = load_model(model)
    for family in families:
        prompts = [world.ask(family, random.Random(f"check-{family}-{i}"), "heldout") for i in range(n)]
        replies = reply(m, tok, [p.messages for p in prompts], SamplingConfig(max_new_tokens=max_new_tokens))
        families[family] = [world.oracle.judge(p, text).flags for p, text in zip(prompts, replies)]
    return {figure: round(100 * sum(bool(flags.get(flag)) for flags in families[family]) / n, 1)
            for figure, (family, flag) in CHECK_FIGURES.items()}


def train_round(cfg: AdversarialConfig, world, out: Path, r: int, model: str, kinds: list[str], lm,
                original: list[dict], progress: bool, start: str) -> dict:
    from chatforge.data.comparisons import read_comparisons, write_comparisons
    from chatforge.models.registry import Registry
    from chatforge.redteam.attackers import TemplateAttacker
    from chatforge.redteam.campaign import CampaignConfig, run_campaign
    from chatforge.redteam.judge import OracleJudge
    from chatforge.redteam.targets import ModelTarget, campaign_sampling

    t0 = time.time()
    folder = out / f"round-{r}"
    folder.mkdir(parents=True, exist_ok=True)
    attackers = [TemplateAttacker(world, "train") if k == "templates" else lm for k in kinds]
    camp = CampaignConfig(out=str(folder / "attack"), queries=cfg.queries, batch_size=cfg.batch_size,
                          seed=cfg.seed + 1000 * r, round=r, campaign=f"adversarial-{r}")
    new_sft, new_pairs = folder / "new_sft.jsonl", folder / "new_pairs.jsonl"
    with ModelTarget(model, campaign_sampling(cfg.max_new_tokens, cfg.temperature)) as target:
        report = run_campaign(camp, target, OracleJudge(world), attackers, progress=progress, console=False)
        if not (folder / "pairing.json").is_file():  # written last: the pairing finished
            rows = read_jsonl(folder / "attack" / "attacks.jsonl")
            convs, pairs, counts = safe_examples(cfg, world, rows, target, random.Random(f"{cfg.seed}-safe-{r}"))
            write_comparisons(pairs, new_pairs)
            write_jsonl(new_sft, convs)
            (folder / "pairing.json").write_text(json.dumps(counts, indent=2))
    counts = json.loads((folder / "pairing.json").read_text())
    # this round's training data: the original demonstrations (or a replayed share) + every round's new examples
    rng = random.Random(f"{cfg.seed}-replay-{r}")
    base = original if not cfg.replay or cfg.replay >= len(original) else rng.sample(original, cfg.replay)
    added = [c for q in range(1, r + 1) for c in read_jsonl(out / f"round-{q}" / "new_sft.jsonl")]
    sft_file, pairs_file = folder / "sft.jsonl", folder / "pairs.jsonl"
    write_jsonl(sft_file, [{"messages": c["messages"]} for c in base + added])
    pairs = [c for q in range(1, r + 1) for c in read_comparisons(out / f"round-{q}" / "new_pairs.jsonl")]
    write_comparisons(pairs, pairs_file)
    new_here = len(read_jsonl(new_sft))
    parent = start if cfg.retrain_from == "start" else model  # what this round retrains
    metrics = {"round": r, "parent": str(Path(parent).resolve()), "attacked": str(Path(model).resolve()),
               "train_queries": report["overall"]["queries"],
               "train_successes": report["overall"]["successes"], "train_asr": report["overall"]["asr"],
               "train_asr_by_attacker": {k: v["asr"] for k, v in report["by_attacker"].items()},
               "new_examples": new_here, "sft_examples": len(base) + len(added), "pairs": len(pairs), **counts}
    trained = model
    if new_here:  # nothing broke it (or nothing kept): this round's model is the previous one
        trained, train_metrics = retrain(cfg, folder, parent, sft_file, pairs_file, progress)
        metrics.update(train_metrics)
    metrics["trained"] = bool(new_here)
    metrics = measure_round(cfg, world, out, r, trained, metrics, progress)
    metrics["seconds"] = round(time.time() - t0, 1)
    if new_here:
        try:
            version = Registry().register(
                cfg.name, trained, "adversarial", parent=parent,
                data=[str(sft_file.resolve()), str(pairs_file.resolve()), str((folder / "attack").resolve())],
                config={**asdict(cfg), "round": r}, metrics={k: v for k, v in metrics.items()
                                                             if isinstance(v, (int, float, str))},
                run=out)
            metrics["registered"] = version.ref
        except ChatforgeError as e:  # bookkeeping: never a failed round
            console.print(f"warning: could not register round {r}'s model: {e}", style="yellow", markup=False)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "DONE").write_text(json.dumps(metrics, indent=2))
    return metrics


def retrain(cfg: AdversarialConfig, folder: Path, model: str, sft_file: Path, pairs_file: Path, progress: bool):
    """SFT and/or DPO from `model`; each step's finished model is kept, a killed one resumes from checkpoints."""
    from chatforge.train.dpo import DPOConfig, dpo
    from chatforge.train.sft import SFTConfig, sft

    metrics, current = {}, model
    if "sft" in cfg.train:
        out = folder / "sft"
        if not (out / "metrics.json").is_file() or not (out / "model").is_dir():
            m = sft(SFTConfig(data=str(sft_file), model=current, output_dir=str(out), epochs=cfg.sft_epochs,
                              batch_size=cfg.sft_batch_size, learning_rate=cfg.sft_learning_rate,
                              freeze_embeddings=cfg.freeze_embeddings, seed=cfg.seed), progress=progress)
        else:
            m = json.loads((out / "metrics.json").read_text())
        metrics.update(sft_loss=m.get("final_loss"), sft_steps=m.get("steps"))
        current = str(out / "model")
    if "dpo" in cfg.train:
        out = folder / "dpo"
        if not (out / "metrics.json").is_file() or not (out / "model").is_dir():
            m = dpo(DPOConfig(data=str(pairs_file), model=current, output_dir=str(out), epochs=cfg.dpo_epochs,
                              batch_size=cfg.dpo_batch_size, learning_rate=cfg.dpo_learning_rate, beta=cfg.dpo_beta,
                              lora_rank=cfg.dpo_lora_rank, lora_targets=cfg.dpo_lora_targets, seed=cfg.seed),
                    progress=progress)
        else:
            m = json.loads((out / "metrics.json").read_text())
        metrics.update(dpo_reward_accuracy=m.get("reward_accuracy"), dpo_reward_margin=m.get("reward_margin"),
                       dpo_steps=m.get("steps"))
        current = str(out / "model")
    # the round's model, where `chatforge models` and the next round find it
    final = folder / "model"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(current, final)
    for step in ("sft", "dpo"):  # checkpoints are only for resuming a killed step
        shutil.rmtree(folder / step / "checkpoints", ignore_errors=True)
    return str(final), metrics


# --- summary ---

def summarize_rounds(rounds: list[dict]) -> dict:
    first, last = rounds[0], rounds[-1]

    def delta(k):
        a, b = first.get(k), last.get(k)
        return None if a is None or b is None else round(b - a, 2)

    before, after = first.get("heldout_asr"), last.get("heldout_asr")
    # after / before with its 95% interval: the held-out attacks are the same every round, but the target samples
    ratio = ratio_interval(last.get("heldout_successes", 0), last.get("heldout_queries", 0),
                           first.get("heldout_successes", 0), first.get("heldout_queries", 0)) or {}
    return {"rounds": len(rounds) - 1, "asr_before": before, "asr_after": after,
            "asr_relative_change_pct": round(100 * (after - before) / before, 1) if before else None,
            "asr_ratio": ratio.get("ratio"), "asr_ratio_low": ratio.get("low"), "asr_ratio_high": ratio.get("high"),
            **{f"{k}_change": delta(k) for k in ("task_accuracy", "known_fact_accuracy", "benign_answered",
                                                  "over_refusal", "jailbreak_asr")
               + tuple(CHECK_FIGURES) if k in first}}


def write_rounds(out: Path, rounds: list[dict]) -> dict:
    result = {"summary": summarize_rounds(rounds), "rounds": rounds}
    (out / "rounds.json").write_text(json.dumps(result, indent=2))
    plot_rounds(rounds, out / "adversarial.png")
    return result


def plot_rounds(rounds: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, label, style in (("heldout_asr", "held-out attack success rate", "o-"),
                              ("task_accuracy", "task helpfulness", "s-"), ("over_refusal", "over-refusal", "^-"),
                              ("known_fact_accuracy", "known-fact accuracy", "d--"),
                              ("benign_answered", "benign-but-scary answered", "v--"),
                              ("wide_task_accuracy", "task helpfulness (wider check)", "s:"),
                              ("wide_known_fact_accuracy", "known-fact accuracy (wider check)", "d:"),
                              ("wide_over_refusal", "over-refusal (wider check)", "^:")):
        ys = [r.get(key) for r in rounds]
        if any(y is not None for y in ys):
            ax.plot(xs, [float("nan") if y is None else y for y in ys], style, label=label)
    ax.set_xlabel("adversarial round (0 = before)")
    ax.set_ylabel("%")
    ax.set_xticks(xs)
    ax.set_ylim(-2, 102)
    ax.set_title("adversarial training: held-out attacks and helpfulness")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_rounds(result: dict, console_=None) -> None:
    from rich.table import Table

    t = Table(title="adversarial rounds (held-out attacks and prompts)", title_justify="left")
    cols = ("round", "heldout_asr", "train_asr", "new_examples", "task_accuracy", "known_fact_accuracy",
            "benign_answered", "over_refusal")
    cols += tuple(f for f in CHECK_FIGURES if f in result["rounds"][0])
    for c in cols:
        t.add_column(c.replace("_", " "), justify="right")
    for r in result["rounds"]:
        t.add_row(*["-" if r.get(c) is None else str(r.get(c)) for c in cols])
    (console_ or Console()).print(t)
    s = result["summary"]
    span = (f"; after / before {s['asr_ratio']}, 95% interval {s['asr_ratio_low']}-{s['asr_ratio_high']}"
            if s.get("asr_ratio") is not None else "")
    (console_ or Console()).print(f"held-out ASR {s['asr_before']} → {s['asr_after']} "
                                  f"({s['asr_relative_change_pct']}% relative{span}) after {s['rounds']} round(s)",
                                  highlight=False)
