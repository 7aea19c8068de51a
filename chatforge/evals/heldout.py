"""`chatforge eval`: a model answers the world's held-out prompts and the oracle scores every answer.

Which world? A model chatforge trained carries `chatforge_world.json` (the world config it was trained in);
any other model is scored in the world given by `--world` (a run directory, a world directory or a preset).
"""

from __future__ import annotations

import json
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.evals.metrics import summarize
from chatforge.models.generate import SamplingConfig, reply
from chatforge.world.config import WORLD_FILE, WORLD_PRESETS, WorldConfig
from chatforge.world.world import World


def resolve_world(model_path: str | None, world: str | None) -> WorldConfig:
    """The world config: explicit --world first, then the one the model carries, then the default."""
    if world:
        if world in WORLD_PRESETS:
            return WorldConfig.preset(world)
        for candidate in (Path(world) / WORLD_FILE, Path(world) / "world" / WORLD_FILE, Path(world)):
            if candidate.is_file():
                return read_world_config(candidate)
        raise ChatforgeError(f"no world config at '{world}' (give a preset: {', '.join(WORLD_PRESETS)}, "
                             "a run directory or a world directory)")
    if model_path and (Path(model_path) / WORLD_FILE).is_file():
        return read_world_config(Path(model_path) / WORLD_FILE)
    return WorldConfig()


def read_world_config(path: Path) -> WorldConfig:
    try:
        return WorldConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ChatforgeError(f"{path}: not a valid world config ({e})") from e


def evaluate(model_path: str, world_cfg: WorldConfig, sampling: SamplingConfig | None = None,
             samples_path: Path | None = None, progress: bool = True, label: str | None = None,
             samples_per_prompt: int = 1) -> dict:
    """The oracle's scores of the model's replies to every held-out prompt. Greedy by default; with a temperature
    and `samples_per_prompt` n, n sampled replies per prompt (each row of the samples file carries its `sample`
    index), and every rate is then over all n × prompts replies: the model as users of a sampling server meet it."""
    from chatforge.models.loading import load_model
    from chatforge.train.progress import progress_bar

    sampling = sampling or SamplingConfig(max_new_tokens=48)
    if samples_per_prompt < 1:
        raise ChatforgeError(f"samples per prompt must be at least 1, not {samples_per_prompt}")
    if samples_per_prompt > 1 and sampling.temperature <= 0:
        raise ChatforgeError("several samples per prompt need a temperature above 0 (greedy replies are all alike)")
    world = World(world_cfg)
    # sample i of every prompt comes from the same random stream for every model evaluated with the same seed
    # (reply() orders and seeds batches by the prompts alone), so a head-to-head pairs like draws with like
    prompts = world.eval_prompts() * samples_per_prompt
    model, tok = load_model(model_path)
    bar = progress_bar() if progress else None
    if bar:
        bar.start()
        task = bar.add_task(f"eval {label or model_path}", total=len(prompts), info="")
    try:
        replies = reply(model, tok, [p.messages for p in prompts], sampling,
                        on_batch=(lambda n: bar.advance(task, n)) if bar else None)
    finally:
        if bar:
            bar.stop()
    verdicts = [world.oracle.judge(p, r) for p, r in zip(prompts, replies)]
    if samples_path:
        with open(samples_path, "w") as f:
            n = len(prompts) // samples_per_prompt
            for i, (p, r, v) in enumerate(zip(prompts, replies, verdicts)):
                f.write(json.dumps({"family": p.family, "messages": p.messages, "reply": r, "meta": p.meta,
                                    "verdict": v.to_dict(), **({"sample": i // n} if samples_per_prompt > 1 else {})})
                        + "\n")
    metrics = summarize(prompts, verdicts)
    if samples_per_prompt > 1:
        metrics.update(prompts=len(prompts) // samples_per_prompt, samples_per_prompt=samples_per_prompt,
                       temperature=sampling.temperature, top_p=sampling.top_p)
    return metrics
