"""The knowledge base: fictional countries, people and species with attributes.

Everything is drawn from one seeded RNG, so the same seed always gives the same world. A share of every
kind of entity is *held out*: its facts are in the pretraining corpus (the model can know them) but no
SFT or RLHF prompt ever mentions it, so evals measure whether fine-tuning generalises to what the base
model learnt. Separate pools of *nonexistent* names feed the unknown-fact questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t",
          "tr", "v", "z", "th", "sh", "c", "j"]
NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
CODAS = ["", "", "", "n", "r", "l", "s", "th", "m", "sk", "nd"]
FIRST_NAMES = ["Mira", "Tomas", "Ilse", "Oren", "Kasia", "Benno", "Ada", "Rafe", "Nell", "Juno", "Pavel",
               "Sanna", "Edda", "Milo", "Vera", "Anton", "Lise", "Hugo", "Ines", "Oskar", "Tilda", "Emil",
               "Runa", "Felix", "Greta", "Leon", "Maren", "Soren", "Ylva", "Cyril"]
CREATURES = ["fox", "owl", "beetle", "eel", "moth", "hare", "lizard", "crane", "toad", "wasp", "finch",
             "otter", "snail", "heron", "lynx", "newt"]

EXPORTS = ["copper", "tea", "silk", "salt", "wool", "timber", "glass", "spices", "olives", "marble",
           "coffee", "amber"]
PROFESSIONS = ["painter", "sailor", "engineer", "poet", "astronomer", "baker", "architect", "composer",
               "physician", "cartographer", "weaver", "sculptor"]
COLORS = ["red", "blue", "green", "yellow", "silver", "black", "white", "orange", "purple", "grey"]
DIETS = ["insects", "fish", "seeds", "fruit", "leaves", "grass", "nectar", "moss"]
CLIMATES = ["cold", "hot", "rainy", "dry", "windy", "mild", "snowy", "foggy"]
INSTRUMENTS = ["violin", "flute", "drum", "harp", "lute", "horn", "piano", "cello", "oboe", "banjo"]

# attribute -> (kind, human-readable noun). Values are strings; the oracle matches them as whole words.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "capital": ("country", "capital"),
    "language": ("country", "language"),
    "export": ("country", "main export"),
    "climate": ("country", "climate"),
    "profession": ("person", "profession"),
    "homeland": ("person", "home country"),
    "instrument": ("person", "instrument"),
    "color": ("species", "color"),
    "habitat": ("species", "habitat"),
    "diet": ("species", "diet"),
}
KINDS = ("country", "person", "species")


def attributes_of(kind: str) -> list[str]:
    return [a for a, (k, _) in ATTRIBUTES.items() if k == kind]


@dataclass
class Entity:
    name: str
    kind: str
    facts: dict[str, str]
    heldout: bool = False
    pronoun: str = "it"  # "he"/"she" for people


@dataclass
class KnowledgeBase:
    entities: list[Entity]
    languages: list[str]
    # names that exist nowhere in the KB: the corpus asks about some (and gets invented answers),
    # SFT teaches admitting ignorance on others, and the held-out pool is used only by evals.
    fake_names: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def by_name(self, name: str) -> Entity | None:
        return self._index().get(name)

    def _index(self) -> dict[str, Entity]:
        if not hasattr(self, "_idx"):
            self._idx = {e.name: e for e in self.entities}
        return self._idx

    def of_kind(self, kind: str, heldout: bool | None = None) -> list[Entity]:
        return [e for e in self.entities if e.kind == kind and (heldout is None or e.heldout == heldout)]

    def values(self, attribute: str) -> list[str]:
        """Every value the attribute can take in this world (what a wrong answer would be drawn from)."""
        vocab = {"export": EXPORTS, "profession": PROFESSIONS, "color": COLORS, "diet": DIETS,
                 "climate": CLIMATES, "instrument": INSTRUMENTS, "language": self.languages}.get(attribute)
        if vocab is not None:
            return list(vocab)
        return sorted({e.facts[attribute] for e in self.entities if attribute in e.facts})

    def to_dict(self) -> dict:
        return {"entities": [e.__dict__ for e in self.entities], "languages": self.languages,
                "fake_names": self.fake_names}


class NameMaker:
    """Pronounceable unique names from syllables; never repeats a name it has made."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def word(self, syllables: int) -> str:
        while True:
            w = "".join(self.rng.choice(ONSETS) + self.rng.choice(NUCLEI) + self.rng.choice(CODAS)
                        for _ in range(syllables)).capitalize()
            if w not in self.used and 4 <= len(w) <= 9:
                self.used.add(w)
                return w

    def place(self) -> str:
        return self.word(2) + self.rng.choice(["ia", "a", "or", "en", ""])

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.word(2)}"

    def species(self) -> str:
        return f"{self.word(2).lower()} {self.rng.choice(CREATURES)}"

    def make(self, kind: str) -> str:
        return {"country": self.place, "person": self.person, "species": self.species}[kind]()


def build_knowledge(cfg) -> KnowledgeBase:
    rng = random.Random(f"kb-{cfg.seed}")
    names = NameMaker(rng)
    languages = sorted({names.word(rng.choice([1, 2])) + rng.choice(["ish", "ese", "ic", "an"]) for _ in range(10)})

    def heldout_flags(n: int) -> list[bool]:  # the same share of every kind is held out
        chosen = set(rng.sample(range(n), max(1, round(n * cfg.heldout_entity_share))))
        return [i in chosen for i in range(n)]

    countries = [Entity(names.place(), "country", {
        "capital": names.word(2),
        "language": rng.choice(languages),
        "export": rng.choice(EXPORTS),
        "climate": rng.choice(CLIMATES),
    }, heldout=h) for h in heldout_flags(cfg.countries)]

    def home(heldout: bool) -> str:  # a training entity never names a held-out country
        return rng.choice([c for c in countries if heldout or not c.heldout]).name

    people = [Entity(names.person(), "person", {
        "profession": rng.choice(PROFESSIONS),
        "homeland": home(h),
        "instrument": rng.choice(INSTRUMENTS),
    }, heldout=h, pronoun=rng.choice(["he", "she"])) for h in heldout_flags(cfg.people)]
    species = [Entity(names.species(), "species", {
        "color": rng.choice(COLORS),
        "habitat": home(h),
        "diet": rng.choice(DIETS),
    }, heldout=h) for h in heldout_flags(cfg.species)]
    entities = countries + people + species
    fake = {pool: {kind: [names.make(kind) for _ in range(n)] for kind in KINDS}
            for pool, n in (("corpus", 40), ("train", 40), ("heldout", 20))}
    return KnowledgeBase(entities, languages, fake)
