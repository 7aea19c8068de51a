"""Comparisons: the one format every preference stage reads and writes (reward model, DPO, the UI's votes).

A comparisons file is JSONL, one pairwise judgement per line:

    {"id": "c-…",                       # stable: hash of prompt, chosen, rejected and rater
     "prompt": {"family", "messages", "meta", "split", "id"},   # the conversation before the reply
     "chosen": "…", "rejected": "…",    # the two assistant replies, preferred one first
     "rater": "sim-0" | "human:ana" | "ui:7" | "oracle" | "import",
     "criteria": {"harmless": "chosen", "helpful": "tie", …},   # per criterion, which reply was better
     "margin": 0.31,                    # how much better (rater utility gap), or null
     "group": "…",                      # the set of K samples the pair came from
     "source": "simulated" | "human" | "ui" | "import",
     "policy": "sft",                   # the model that wrote the replies
     "time": "2026-11-25T17:00:00+00:00"}

`prompt.family` and `prompt.meta` are what the oracle needs to judge; imported data has family "imported".
Imports read TRL's prompt/chosen/rejected (strings or message lists) and Anthropic HH-RLHF transcripts
(`chosen`/`rejected` only, "\\n\\nHuman: … \\n\\nAssistant: …"); exports write both back.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.world.prompts import Prompt

CHOICES = ("chosen", "rejected", "tie")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Comparison:
    prompt: Prompt
    chosen: str
    rejected: str
    rater: str
    criteria: dict[str, str] = field(default_factory=dict)
    margin: float | None = None
    group: str = ""
    source: str = "simulated"
    policy: str = ""
    time: str = field(default_factory=now)
    id: str = ""

    def __post_init__(self):
        if not self.id:
            key = json.dumps([self.prompt.id, self.prompt.messages, self.chosen, self.rejected, self.rater])
            self.id = "c-" + hashlib.sha1(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["prompt"] = self.prompt.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        missing = [k for k in ("prompt", "chosen", "rejected", "rater") if k not in d]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        if not isinstance(d["chosen"], str) or not isinstance(d["rejected"], str):
            raise ValueError("'chosen' and 'rejected' must be strings")
        if not isinstance(d.get("criteria") or {}, dict):
            raise ValueError("'criteria' must be an object of criterion: chosen|rejected|tie")
        bad = {k: v for k, v in (d.get("criteria") or {}).items() if v not in CHOICES}
        if bad:
            raise ValueError(f"criteria values must be one of {CHOICES}, got {bad}")
        p = d["prompt"]
        if not isinstance(p, dict) or not isinstance(p.get("messages"), list):
            raise ValueError("'prompt' must be an object with 'messages'")
        check_prompt(p["messages"], d["chosen"])
        fields = {k: d[k] for k in ("criteria", "margin", "group", "source", "policy", "time", "id") if k in d}
        return cls(Prompt.from_dict({"family": "imported", **p}), d["chosen"], d["rejected"], d["rater"],
                   **fields)

    # --- the shapes trainers read ---

    def trl(self) -> dict:
        """TRL's conversational preference row: what RewardTrainer and DPOTrainer train on."""
        return {"prompt": self.prompt.messages, "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}]}

    def hh(self) -> dict:
        """Anthropic HH-RLHF: two whole transcripts that differ in the last assistant turn."""
        head = transcript(self.prompt.messages)
        return {"chosen": head + f"\n\nAssistant: {self.chosen}", "rejected": head + f"\n\nAssistant: {self.rejected}"}


def read_comparisons(path: str | Path) -> list[Comparison]:
    """Comparisons from a file in chatforge's format, TRL's prompt/chosen/rejected, or HH-RLHF; each line's
    format is detected on its own, and a bad line stops the read with its file and line number."""
    path = Path(path)
    if not path.is_file():
        raise ChatforgeError(f"{path}: no such comparisons file")
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            out.append(parse(json.loads(line)))
        except (json.JSONDecodeError, ValueError, KeyError, TypeError) as e:
            raise ChatforgeError(f"{path}:{n}: {e}") from None
    return out


def parse(d: dict) -> Comparison:
    if not isinstance(d, dict):
        raise ValueError("expected a JSON object")
    if isinstance(d.get("prompt"), dict):
        return Comparison.from_dict(d)
    if "prompt" in d:  # TRL: prompt as text or messages; chosen/rejected as text or one assistant message
        missing = [k for k in ("chosen", "rejected") if k not in d]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        messages = d["prompt"] if isinstance(d["prompt"], list) else [{"role": "user", "content": d["prompt"]}]
        return imported(messages, last_text(d["chosen"]), last_text(d["rejected"]))
    if "chosen" in d and "rejected" in d:  # HH-RLHF transcripts
        head_c, chosen = split_transcript(d["chosen"])
        head_r, rejected = split_transcript(d["rejected"])
        if head_c != head_r:
            raise ValueError("HH transcripts differ before the last assistant turn")
        return imported(head_c, chosen, rejected)
    raise ValueError("expected chatforge comparisons, prompt/chosen/rejected or HH-RLHF chosen/rejected")


def check_prompt(messages: list, chosen: str) -> None:
    """The conversation before the replies: well-formed messages ending with the user turn they answer."""
    from chatforge.data.conversations import validate

    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        raise ValueError("the prompt must end with a user turn")
    validate(messages + [{"role": "assistant", "content": chosen}])


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ChatforgeError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None


def imported(messages: list[dict], chosen: str, rejected: str) -> Comparison:
    check_prompt(messages, chosen)
    return Comparison(Prompt("imported", messages, split="train"), chosen, rejected, "import", source="import")


def last_text(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict) and x[-1].get("role") == "assistant":
        return x[-1]["content"]
    raise ValueError("chosen/rejected must be a string or a list ending with an assistant message")


def transcript(messages: list[dict]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names[m['role']]}: {m['content']}" for m in messages)


TURN = re.compile(r"\n\n(Human|Assistant|System): ")


def split_transcript(text: str) -> tuple[list[dict], str]:
    """HH transcript → (messages before the last assistant turn, that turn's text)."""
    if not isinstance(text, str):
        raise ValueError("HH chosen/rejected must be strings")
    parts = TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    roles = {"Human": "user", "Assistant": "assistant", "System": "system"}
    turns = [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts) - 1, 2)]
    if not turns or turns[-1]["role"] != "assistant":
        raise ValueError("HH transcript must end with an Assistant turn")
    return turns[:-1], turns[-1]["content"]


def write_comparisons(comparisons: list[Comparison], path: str | Path, fmt: str = "chatforge",
                      append: bool = False) -> None:
    """Write in chatforge's format, as TRL prompt/chosen/rejected (`trl`), or as HH-RLHF (`hh`)."""
    shape = {"chatforge": Comparison.to_dict, "trl": Comparison.trl, "hh": Comparison.hh}
    if fmt not in shape:
        raise ChatforgeError(f"unknown comparisons format '{fmt}' (choose from: {', '.join(shape)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        for c in comparisons:
            f.write(json.dumps(shape[fmt](c)) + "\n")


# --- ranking tasks: one prompt and K replies, ranked by a rater (simulated, at the terminal or in the UI) ---

@dataclass
class RankingTask:
    """One line of a `tasks.jsonl`: a prompt and the K replies a policy sampled for it."""
    prompt: Prompt
    responses: list[str]
    policy: str = ""
    group: str = ""

    def __post_init__(self):
        if not self.group:
            key = json.dumps([self.prompt.id, self.responses, self.policy])
            self.group = "g-" + hashlib.sha1(key.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"group": self.group, "prompt": self.prompt.to_dict(), "responses": self.responses,
                "policy": self.policy}

    @classmethod
    def from_dict(cls, d: dict) -> "RankingTask":
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        responses = d.get("responses")
        if not isinstance(responses, list) or len(responses) < 2 or not all(isinstance(r, str) for r in responses):
            raise ValueError("'responses' must be a list of at least 2 strings")
        return cls(Prompt.from_dict(d["prompt"]), list(d["responses"]), d.get("policy", ""), d.get("group", ""))

    def pairs(self, ranking: list[int], rater: str, source: str, criteria: dict[tuple[int, int], dict] | None = None,
              utilities: list[float] | None = None) -> list[Comparison]:
        """Every pair a ranking implies (K·(K−1)/2 of them), better reply as `chosen`. A reply that repeats one
        ranked higher counts once, at its best place: pairs with it would be duplicates, or contradict the ranking.
        `criteria[(i, j)]` holds the per-criterion labels of reply i against reply j, if known."""
        order, seen = [], set()
        for i in ranking:
            if self.responses[i] not in seen:
                order.append(i)
                seen.add(self.responses[i])
        out, t = [], now()
        for a in range(len(order)):
            for b in range(a + 1, len(order)):
                i, j = order[a], order[b]
                margin = round(utilities[i] - utilities[j], 4) if utilities else None
                out.append(Comparison(self.prompt, self.responses[i], self.responses[j], rater,
                                      (criteria or {}).get((i, j), {}), margin, self.group, source, self.policy, t))
        return out


def read_tasks(path: str | Path) -> list[RankingTask]:
    path = Path(path)
    if not path.is_file():
        raise ChatforgeError(f"{path}: no such ranking-task file")
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if line.strip():
            try:
                out.append(RankingTask.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ChatforgeError(f"{path}:{n}: not a ranking task ({e})") from None
    return out
