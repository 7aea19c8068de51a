"""Topic tagging for usage monitoring: which of the world's prompt families a request most likely belongs to.

A multinomial naive Bayes over word unigrams and bigrams, fitted in well under a second on the world's *train*
prompts (every family equally often), so its accuracy on held-out prompts (`accuracy`) is an honest figure.
Hand-written because the stack has no scikit-learn and twenty lines beat a dependency. Three features carry
what words alone cannot: `<entity>` replaces names the world's knowledge base knows (a question about an
unknown name is an unknown_fact), `<noentity>` marks their absence, and `<context>` marks earlier turns
(a bare "What is its capital?" is ambiguous, after a first exchange it is a multi_turn follow-up); a
length bucket and the final punctuation mark short greetings, and `<nonum>` a task with nothing to work on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from chatforge.world.config import WORLD_FILE, WorldConfig
from chatforge.world.prompts import Prompt
from chatforge.world.world import World

WORD = re.compile(r"<entity>|\d+|[a-z]+(?:'[a-z]+)?|[-+:]")


def _user_turns(conversation: str | list[dict]) -> tuple[str, bool]:
    """(the last user turn, whether earlier turns exist)."""
    if isinstance(conversation, str):
        return conversation, False
    users = [m.get("content", "") for m in conversation if m.get("role") == "user"]
    return (users[-1] if users else ""), len(conversation) > 1


class FamilyTagger:
    def __init__(self, world: World | WorldConfig | None = None, n_prompts: int = 4000, alpha: float = 0.1):
        world = world if isinstance(world, World) else World(world or WorldConfig())
        names = sorted((e.name for e in world.kb.entities), key=len, reverse=True)
        self.entities = re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b")
        self.families = list(world.families)
        uniform = dict.fromkeys(self.families, 1.0)
        counts: dict[str, Counter] = defaultdict(Counter)
        for p in world.prompts("train", n_prompts, "topics", uniform):
            counts[p.family].update(self.features(p.messages))
        vocab = set().union(*counts.values())
        # log P(feature | family) with additive smoothing; unseen features are skipped at tagging time
        self.log_prob = {}
        for f in self.families:
            total = sum(counts[f].values()) + alpha * len(vocab)
            self.log_prob[f] = {w: math.log((counts[f][w] + alpha) / total) for w in vocab}

    @classmethod
    def for_model(cls, path: str | Path | None) -> "FamilyTagger":
        """The tagger for the world a model was trained in (its chatforge_world.json), else the default world."""
        world_file = Path(path) / WORLD_FILE if path else None
        if world_file and world_file.is_file():
            return _cached(world_file.read_text())
        return _cached(json.dumps(WorldConfig().to_dict()))

    def features(self, conversation: str | list[dict]) -> list[str]:
        text, context = _user_turns(conversation)
        text, found = self.entities.subn(" <entity> ", text)
        words = WORD.findall(text.lower())
        words = ["<num>" if w.isdigit() else w for w in words]
        flags = ["<entity>" if found else "<noentity>", "<context>" if context else "<single>",
                 "<num>" if "<num>" in words else "<nonum>",
                 f"<words:{min(len(words), 8) // 3}>", f"<end:{text.strip()[-1:]}>"]
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])] + flags

    def scores(self, conversation: str | list[dict]) -> dict[str, float]:
        """Posterior probability of each family (uniform prior)."""
        feats = self.features(conversation)
        logits = {f: sum(self.log_prob[f].get(w, 0.0) for w in feats if w in self.log_prob[f])
                  for f in self.families}
        top = max(logits.values())
        weights = {f: math.exp(v - top) for f, v in logits.items()}
        total = sum(weights.values())
        return {f: w / total for f, w in weights.items()}

    def tag(self, conversation: str | list[dict]) -> str:
        scores = self.scores(conversation)
        return max(scores, key=scores.get)

    def accuracy(self, prompts: list[Prompt]) -> dict:
        """Share of prompts tagged with their own family, overall and per family."""
        per: dict[str, list[bool]] = defaultdict(list)
        for p in prompts:
            per[p.family].append(self.tag(p.messages) == p.family)
        right = [ok for oks in per.values() for ok in oks]
        return {"accuracy": round(sum(right) / max(1, len(right)), 4),
                "families": {f: round(sum(v) / len(v), 4) for f, v in per.items()}}


@lru_cache(maxsize=4)
def _cached(world_json: str) -> FamilyTagger:
    return FamilyTagger(WorldConfig.from_dict(json.loads(world_json)))


def tag_family(conversation: str | list[dict], world: WorldConfig | None = None) -> str:
    """The most likely world family of a request (a user text, or a whole conversation's messages)."""
    return _cached(json.dumps((world or WorldConfig()).to_dict())).tag(conversation)
