"""The model registry: every model a run makes, where it came from, how it scored, and which one is served.

One JSON file (default `$CHATFORGE_HOME/registry.json`, CHATFORGE_HOME defaulting to `~/.chatforge`) shared by
every run on the machine, so versions are named `name:N` (N counts up per name) rather than by run folder.
Each version keeps its lineage (the parent model it was trained from, the data it read, its config), so
`chatforge models show ppo` can say ppo:2 ← sft:1 ← base:1. Writers take an exclusive `flock` and replace the
file atomically, so a pipeline and a `promote` running at once never lose each other's changes and a reader
never sees half a file.
"""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chatforge.errors import ChatforgeError

SERVED = "served"


def default_path() -> Path:
    """Read at call time, so tests (and users) can point CHATFORGE_HOME elsewhere per process."""
    return Path(os.environ.get("CHATFORGE_HOME") or "~/.chatforge").expanduser() / "registry.json"


@dataclass
class ModelVersion:
    name: str  # what the model is called: base, sft, reward, ppo, dpo, ...
    version: int
    path: str  # absolute path of the HF model directory (or a hub id)
    kind: str  # how it was made: the stage that made it (pretrain, sft, ...) or what the caller says
    parent: str | None = None  # a ref ("sft:1") when the parent is registered, else its path or hub id
    data: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    run: str | None = None
    created: str = ""
    served: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("served")  # kept once, at the top of the file, so exactly one version can be served
        return d


def _abs(path: str | Path) -> str:
    """Paths are stored absolute so the same model is recognised from any working directory."""
    return str(Path(path).expanduser().resolve())


class Registry:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()

    # --- storage ---

    def _read(self) -> dict:
        if not self.path.is_file():
            return {"served": None, "models": []}
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ChatforgeError(f"{self.path}: the model registry is not valid JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ChatforgeError(f"{self.path}: not a chatforge model registry")
        return data

    @contextmanager
    def _update(self) -> Iterator[dict]:
        """Read-modify-write under an exclusive lock; the new file replaces the old in one rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".registry-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=2)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise

    def _versions(self, data: dict) -> list[ModelVersion]:
        keys = set(ModelVersion.__dataclass_fields__) - {"served"}  # ignore fields a newer chatforge added
        return [ModelVersion(**{k: v for k, v in m.items() if k in keys},
                             served=f"{m['name']}:{m['version']}" == data.get("served")) for m in data["models"]]

    # --- reading ---

    def list(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        return self._versions(self._read())

    def get(self, ref: str) -> ModelVersion:
        """`name` (its latest version), `name:N`, or `served`."""
        versions = self.list()
        if ref == SERVED:
            served = [v for v in versions if v.served]
            if not served:
                raise ChatforgeError("no model is promoted to serve (see: chatforge models promote REF)")
            return served[0]
        name, _, n = ref.rpartition(":")
        if name and n.isdigit():
            found = [v for v in versions if v.name == name and v.version == int(n)]
        else:
            found = [v for v in versions if v.name == ref][-1:]
        if not found:
            raise ChatforgeError(f"unknown model '{ref}'{self._hint(ref, versions)}")
        return found[0]

    def by_path(self, path: str | Path) -> ModelVersion | None:
        """The latest version registered at this path, if any: how a parent path becomes a ref."""
        found = [v for v in self.list() if v.path == _abs(path)]
        return found[-1] if found else None

    def resolve(self, ref_or_path: str) -> str:
        """A model argument as the user typed it → a path: existing paths win, then registry refs."""
        if Path(ref_or_path).expanduser().exists():
            return ref_or_path
        return self.get(ref_or_path).path

    def lineage(self, ref: str) -> list[str]:
        """The version itself, its parent, its parent's parent... up to the root (a path or hub id if the root
        was never registered)."""
        by_ref = {v.ref: v for v in self.list()}
        v: ModelVersion | None = self.get(ref)
        chain = [v.ref]
        while v and v.parent and v.parent not in chain:
            chain.append(v.parent)
            v = by_ref.get(v.parent)
        return chain

    @staticmethod
    def _hint(ref: str, versions: list[ModelVersion]) -> str:
        if not versions:
            return " (the registry is empty)"
        known = sorted({v.name for v in versions} | {v.ref for v in versions})
        close = difflib.get_close_matches(ref, known, n=4, cutoff=0.5)
        return f" (did you mean: {', '.join(close)}?)" if close else f" (known: {', '.join(known[:8])})"

    # --- writing ---

    def _parent_ref(self, parent: str) -> str:
        """A registered parent is stored as its exact ref (`sft` → `sft:3`); anything else as given."""
        if Path(parent).expanduser().exists():
            known = self.by_path(parent)
            return known.ref if known else _abs(parent)
        try:
            return self.get(parent).ref
        except ChatforgeError:
            return parent

    def register(self, name: str, path: str | Path, kind: str, parent: str | None = None,
                 data: list[str] | None = None, config: dict | None = None, metrics: dict | None = None,
                 run: str | Path | None = None) -> ModelVersion:
        """Add `name:N+1`, or update the version already registered under this name at this path (a rerun of
        the same stage overwrites the same folder, so it is the same model, not a new one)."""
        if not name or ":" in name or name == SERVED:
            raise ChatforgeError(f"invalid model name '{name}' (no ':' and not '{SERVED}')")
        path = _abs(path) if Path(path).expanduser().exists() else str(path)
        if parent:
            parent = self._parent_ref(str(parent))
        with self._update() as reg:
            entry = {"name": name, "path": path, "kind": kind, "parent": parent, "data": [str(d) for d in data or []],
                     "config": config or {}, "metrics": metrics or {}, "run": _abs(run) if run else None,
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            same = [m for m in reg["models"] if m["name"] == name and m["path"] == path]
            if same:
                same[-1].update(entry)
                entry = same[-1]
            else:
                entry["version"] = 1 + max((m["version"] for m in reg["models"] if m["name"] == name), default=0)
                reg["models"].append(entry)
        return self.get(f"{name}:{entry['version']}")

    def add_metrics(self, ref: str, metrics: dict) -> ModelVersion:
        """Merge metrics (an eval's, say) into a version's."""
        target = self.get(ref).ref
        with self._update() as reg:
            for m in reg["models"]:
                if f"{m['name']}:{m['version']}" == target:
                    m["metrics"].update(metrics)
        return self.get(target)

    def promote(self, ref: str) -> ModelVersion:
        """Mark this version as the one to serve; the previously served one stops being served."""
        target = self.get(ref).ref
        with self._update() as reg:
            reg["served"] = target
        return self.get(target)
