"""Run directories and the stage interface every part of the loop plugs into.

A run directory holds one folder per stage. A stage is a name, the stages it reads from, a config (a plain
dict, saved as `stage.json`) and a function that writes into its folder and returns metrics. Finishing a
stage writes `DONE` (with its metrics and the hash of its config); running the pipeline again skips every
stage whose `DONE` matches its config. A stage killed mid-way has no `DONE` and runs again, resuming from
the checkpoints in its folder. A stage whose config changed runs afresh, and so do the stages after it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from chatforge.errors import ChatforgeError

console = Console(stderr=True)


@dataclass
class Stage:
    name: str
    run: Callable[["StageContext"], dict]
    config: dict = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)
    # what the stage makes, for the run manifest and (later) the model registry: "model", "data", "report"
    kind: str = "data"

    def config_hash(self) -> str:
        return hashlib.sha1(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class StageContext:
    run_dir: "RunDir"
    stage: Stage

    @property
    def dir(self) -> Path:
        return self.run_dir.path(self.stage.name)

    def input(self, stage: str, *parts: str) -> Path:
        """A path inside the folder of a stage this one needs."""
        if stage not in self.stage.needs:
            raise ChatforgeError(f"stage '{self.stage.name}' reads '{stage}' but does not declare it in needs")
        return self.run_dir.path(stage, *parts)


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, stage: str, *parts: str) -> Path:
        return self.root.joinpath(stage, *parts)

    def done(self, stage: Stage) -> dict | None:
        marker = self.path(stage.name, "DONE")
        if not marker.is_file():
            return None
        try:
            info = json.loads(marker.read_text())
        except json.JSONDecodeError:
            return None
        return info if info.get("config_hash") == stage.config_hash() else None

    def manifest(self) -> dict:
        f = self.root / "run.json"
        return json.loads(f.read_text()) if f.is_file() else {"stages": {}}

    def record(self, stage: Stage, info: dict) -> None:
        m = self.manifest()
        m["stages"][stage.name] = {"kind": stage.kind, "needs": stage.needs, "config": stage.config, **info}
        (self.root / "run.json").write_text(json.dumps(m, indent=2))

    def run(self, stages: list[Stage]) -> dict[str, dict]:
        """Run the stages in order, skipping finished ones; metrics of every stage by name."""
        self.root.mkdir(parents=True, exist_ok=True)
        results, rerun = {}, set()
        for stage in stages:
            missing = [n for n in stage.needs if n not in results]
            if missing:
                raise ChatforgeError(f"stage '{stage.name}' needs {missing}, which come later or not at all")
            inputs_changed = bool(rerun & set(stage.needs))
            done = None if inputs_changed else self.done(stage)
            if done is not None:
                console.print(f"[dim]✓ {stage.name}: already done, skipped[/dim]")
                results[stage.name] = done["metrics"]
                self.register(stage, done["metrics"], only_if_missing=True)  # e.g. a run made before the registry
                continue
            rerun.add(stage.name)
            results[stage.name] = self.run_stage(stage, fresh=inputs_changed)
        return results

    def run_stage(self, stage: Stage, fresh: bool = False) -> dict:
        """Run one stage; unless `fresh`, a folder left by a killed run with the same config is resumed."""
        folder = self.path(stage.name)
        saved = folder / "stage.json"
        stale = saved.is_file() and json.loads(saved.read_text()).get("config") != stage.config
        if folder.exists() and (fresh or stale):
            shutil.rmtree(folder)  # checkpoints made from other inputs or settings: start afresh
        folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"name": stage.name, "needs": stage.needs, "config": stage.config}, indent=2))
        (folder / "DONE").unlink(missing_ok=True)
        console.print(f"[bold]▶ {stage.name}[/bold]")
        start = time.time()
        metrics = stage.run(StageContext(self, stage)) or {}
        info = {"metrics": metrics, "config_hash": stage.config_hash(), "seconds": round(time.time() - start, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (folder / "DONE").write_text(json.dumps(info, indent=2))
        self.record(stage, info)
        self.register(stage, metrics)
        console.print(f"[green]✓ {stage.name}[/green] in {info['seconds']}s")
        return metrics

    def register(self, stage: Stage, metrics: dict, only_if_missing: bool = False) -> None:
        """Record a finished model stage in the model registry (its eval's metrics go onto that version).
        The registry is bookkeeping: a problem with it is a warning, never a failed run."""
        try:
            from chatforge.models.registry import Registry
            from chatforge.pipeline.stages import MODEL_STAGES  # read late: the stage list grows with the pipeline

            reg = Registry()
            if only_if_missing and stage.kind == "model" and reg.by_path(self.path(stage.name, "model")):
                return
            if stage.kind == "model":
                # the parent is the model it starts from: for PPO the SFT policy (in MODEL_STAGES), not the reward
                # model, which counts as data like the other inputs
                kinds = {n: s.get("kind") for n, s in self.manifest()["stages"].items()}
                models = sorted((n for n in stage.needs if kinds.get(n) == "model"), key=lambda n: n in MODEL_STAGES)
                parent = models[-1] if models else None
                reg.register(MODEL_STAGES.get(stage.name, stage.name), self.path(stage.name, "model"), stage.name,
                             parent=str(self.path(parent, "model")) if parent else None,
                             data=[str(self.path(n).resolve()) for n in stage.needs if n != parent],
                             config=stage.config, metrics=metrics, run=self.root)
            elif stage.name.startswith("eval-"):
                version = reg.by_path(self.path(stage.name.removeprefix("eval-"), "model"))
                if version:
                    reg.add_metrics(version.ref, metrics)
        except Exception as e:  # noqa: BLE001 - see the docstring
            console.print(f"warning: could not update the model registry: {e}", style="yellow", markup=False,
                          highlight=False)
