"""The moderation dataset: user requests and assistant replies from the built-in world, labelled by category.

Inputs are the last user turn of the world's prompts. Harmful requests carry their harm category; jailbreak
wrappers carry the category plus `jailbreak` (the multi-turn escalation's last turn reads as a plain request,
so it carries only the category); everything else is safe, benign_scary's scary words included.
Outputs are the labeller's gold replies (refusals are safe) and the raw internet's replies, labelled from their
markers: `[HARMFUL:cat]` gives cat, `[TOXIC:insult]` gives toxic. A share of outputs joins two replies, so a
marker counts wherever it stands in a longer reply. Counterfactual requests (a harmful template around an
object it never met) teach that the request, not its object, makes it harmful.

The train split comes from train prompts (train phrasings, entities, acts and wrappers), the eval split from
held-out prompts, and no eval text occurs in the train split, so eval metrics measure generalisation.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

from chatforge.world.detectors import is_toxic
from chatforge.world.families_safety import BENIGN, HARMFUL
from chatforge.world.phrasing import phrase
from chatforge.world.prompts import Prompt
from chatforge.world.world import World

HARM_CATEGORIES = list(HARMFUL)  # weapons, malware, drugs, fraud, harassment
CATEGORIES = [*HARM_CATEGORIES, "toxic", "jailbreak"]
MARKER = re.compile(r"\[(HARMFUL|TOXIC):([a-z_]+)\]")
ROLES = ("input", "output")

# family shares of the prompts examples come from: safety families weigh more than in the SFT mix
MIX = {"harmful": 0.2, "jailbreak": 0.15, "benign_scary": 0.2, "known_fact": 0.08, "unknown_fact": 0.07,
       "task": 0.08, "ambiguous": 0.04, "identity": 0.08, "multi_turn": 0.05, "small_talk": 0.05}


@dataclass
class Example:
    text: str
    labels: list[str]  # the categories that apply; empty = safe
    role: str  # "input" (a user turn) or "output" (an assistant reply)
    family: str  # the world family the text came from
    kind: str  # "request" for inputs; "gold", a raw habit ("complies", "toxic", ...) or "mixed" for outputs

    def target(self, categories: list[str] = CATEGORIES) -> list[float]:
        return [float(c in self.labels) for c in categories]

    def to_dict(self) -> dict:
        return asdict(self)


def output_labels(text: str) -> list[str]:
    """Categories of a reply: harm from its `[HARMFUL:cat]` markers, toxic as the world's detector sees it."""
    found = {name if kind == "HARMFUL" else "toxic" for kind, name in MARKER.findall(text)}
    if is_toxic(text):
        found.add("toxic")
    return [c for c in CATEGORIES if c in found]


def input_labels(p: Prompt) -> list[str]:
    if p.family == "harmful":
        return [p.meta["category"]]
    if p.family == "jailbreak":
        return [p.meta["category"]] + ([] if p.meta["wrapper"] == "escalation" else ["jailbreak"])
    return []


def prompt_examples(world: World, p: Prompt, rng: random.Random) -> list[Example]:
    """The request and every distinct reply to it (gold and each raw habit)."""
    out = [Example(p.user_text, input_labels(p), "input", p.family, "request")]
    for kind, text in world.families[p.family].variants(world.kb, p, rng).items():
        out.append(Example(text, output_labels(text), "output", p.family, kind))
    return out


def mixed(*parts: Example) -> Example:
    """Several replies as one (a rambling model): labels are the union. Up to four, so that a marker also appears
    late in a long reply: trained on pairs only, the tiny classifier missed one after a page of greetings."""
    text = " ".join(e.text for e in parts)
    return Example(text, output_labels(text), "output", parts[0].family, "mixed")


def swapped_requests(rng: random.Random, n: int) -> list[Example]:
    """Counterfactual requests: a train template around another template's train object ("hack into my garage",
    "blow up a weeds"), labelled by the template. Each template meets only two objects in training, so without
    these a classifier leans on the objects and misses a known harmful request about a new object."""
    harm_objects = [o for items in HARMFUL.values() for _, objects in items for o in objects[:-1]]
    benign_objects = [o for _, objects, *_ in BENIGN for o in objects[:-1]]
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            category = rng.choice(HARM_CATEGORIES)
            template, _ = rng.choice(HARMFUL[category])
            act = template.format(o=rng.choice(harm_objects + benign_objects))
            out.append(Example(phrase("how", category, "train", rng, x=act), [category], "input", "harmful",
                               "swapped"))
        else:  # benign templates keep benign objects: "kill a stolen pills process" would not be safe
            template = rng.choice(BENIGN)[0]
            asked = template.format(o=rng.choice(benign_objects))
            out.append(Example(phrase("how", template, "train", rng, x=asked), [], "input", "benign_scary", "swapped"))
    return out


def examples(world: World, prompts: list[Prompt], purpose: str, mixed_share: float = 0.3) -> list[Example]:
    """Examples from prompts, without duplicate texts."""
    rng = world.rng(f"moderation-{purpose}")
    found: list[Example] = []
    replies: list[Example] = []
    for p in prompts:
        new = prompt_examples(world, p, rng)
        found += new
        replies += [e for e in new if e.role == "output"]
    for _ in range(int(mixed_share * len(replies))):
        found.append(mixed(*rng.sample(replies, rng.choice([2, 2, 3, 4]))))
    return unique(found)


def unique(found: list[Example]) -> list[Example]:
    """The first example of every text, in order."""
    first: dict[str, Example] = {}
    for e in found:
        first.setdefault(e.text, e)
    return list(first.values())


def train_examples(world: World, n_prompts: int | None = None, mixed_share: float = 0.3,
                   swapped_share: float = 0.5) -> list[Example]:
    prompts = world.prompts("train", n_prompts or world.cfg.train_prompts, "moderation-train", MIX)
    found = examples(world, prompts, "train", mixed_share)
    scary = sum(e.role == "input" and e.family in ("harmful", "benign_scary") for e in found)
    return unique(found + swapped_requests(world.rng("moderation-swapped"), int(swapped_share * scary)))


def eval_examples(world: World, per_family: int | None = None, exclude: set[str] | frozenset = frozenset(),
                  mixed_share: float = 0.3) -> list[Example]:
    """Held-out examples, `per_family` prompts of every family; texts in `exclude` (the train texts) dropped."""
    per_family = per_family or 2 * world.cfg.eval_per_family
    prompts = [p for f in world.families for p in world.prompts("heldout", per_family, f"moderation-eval-{f}",
                                                                 {f: 1.0})]
    return [e for e in examples(world, prompts, "eval", mixed_share) if e.text not in exclude]


def splits(world: World, n_prompts: int | None = None, per_family: int | None = None) -> dict[str, list[Example]]:
    """{"train": [...], "eval": [...]}: the eval split shares no text with the train split."""
    train = train_examples(world, n_prompts)
    return {"train": train, "eval": eval_examples(world, per_family, exclude={e.text for e in train})}
