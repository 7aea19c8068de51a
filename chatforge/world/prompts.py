"""A prompt, and the interface every prompt family implements.

A family knows four things: how users ask (templates, split into train and held-out phrasings), what a
careful labeller answers (`gold`), what a hurried one answers (`terse`: right, but bare), and how the raw
internet answers (`raw`, the habits a base model picks up from the corpus). The oracle judges answers from
a prompt's `meta`, never from its text.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field

from chatforge.world.knowledge import KnowledgeBase

SPLITS = ("train", "heldout")


@dataclass
class Prompt:
    family: str
    messages: list[dict]  # the conversation so far; ends with the user turn to answer
    meta: dict = field(default_factory=dict)
    split: str = "train"
    id: str = ""

    def __post_init__(self):
        if not self.id:
            key = json.dumps([self.family, self.messages], sort_keys=True)
            self.id = hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def user_text(self) -> str:
        return self.messages[-1]["content"]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Prompt":
        return cls(d["family"], d["messages"], d.get("meta", {}), d.get("split", "train"), d.get("id", ""))


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


class Family:
    name: str = ""

    def ask(self, kb: KnowledgeBase, rng: random.Random, split: str) -> Prompt:
        raise NotImplementedError

    def gold(self, kb: KnowledgeBase, p: Prompt, rng: random.Random) -> str:
        raise NotImplementedError

    def terse(self, kb: KnowledgeBase, p: Prompt, rng: random.Random) -> str | None:
        """What a hurried labeller writes: right, but bare (the oracle's `BARE` helpfulness); None if the family
        has no bare way to be right."""
        return None

    def raw(self, kb: KnowledgeBase, p: Prompt, rng: random.Random) -> tuple[str, str]:
        """One answer as the internet would give it: (habit label, text)."""
        raise NotImplementedError

    def variants(self, kb: KnowledgeBase, p: Prompt, rng: random.Random) -> dict[str, str]:
        """Contrasting answers to one prompt (gold, terse and every raw habit): for rater calibration and tests."""
        out = {"gold": self.gold(kb, p, rng)}
        if (bare := self.terse(kb, p, rng)) is not None:
            out["terse"] = bare
        for _ in range(12):
            label, text = self.raw(kb, p, rng)
            out.setdefault(label, text)
        return out
