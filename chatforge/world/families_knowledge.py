"""Knowledge families: known facts, unknown facts (must be admitted) and multi-turn follow-ups."""

from __future__ import annotations

import random

from chatforge.world import styles
from chatforge.world.knowledge import ATTRIBUTES, FIRST_NAMES, KINDS, Entity, KnowledgeBase, attributes_of
from chatforge.world.phrasing import phrase
from chatforge.world.prompts import Family, Prompt, assistant, user

# natural, attribute-specific questions (training only); every family also asks through phrasing.ASK frames
QUESTIONS: dict[str, list[str]] = {
    "capital": ["What is the capital of {e}?", "What's the capital city of {e}?", "Name the capital of {e}."],
    "language": ["What language do people speak in {e}?", "Which language is spoken in {e}?"],
    "export": ["What does {e} export?", "What is {e} known for exporting?"],
    "climate": ["What is the weather like in {e}?", "How is the climate in {e}?"],
    "profession": ["What does {e} do for a living?", "What was the job of {e}?"],
    "homeland": ["Where is {e} from?", "Which country does {e} come from?"],
    "instrument": ["What instrument does {e} play?", "What does {e} play?"],
    "color": ["What color is the {e}?", "Which color does the {e} have?"],
    "habitat": ["Where does the {e} live?", "In which country does the {e} live?"],
    "diet": ["What does the {e} eat?", "What does the {e} feed on?"],
}

ANSWERS = {
    "capital": "The capital of {e} is {v}.", "language": "People in {e} speak {v}.",
    "export": "The main export of {e} is {v}.", "climate": "The climate of {e} is {v}.",
    "profession": "{e} is {a} {v}.", "homeland": "{e} is from {v}.", "instrument": "{e} plays the {v}.",
    "color": "The {e} is {v}.", "habitat": "The {e} lives in {v}.", "diet": "The {e} eats {v}.",
}

# facts nobody recorded: asking for them must be met with "I don't know", never an invention
UNKNOWABLE = {
    "country": [("the phone number of the main post office in {e}", "number"),
                ("the number of windows in the royal palace of {e}", "number"),
                ("the name of the first dog born in {e}", "name"),
                ("the exact number of trees in {e}", "number")],
    "person": [("the favorite food of {e}", "food"), ("the shoe size of {e}", "number"),
               ("the name of the childhood friend of {e}", "name"), ("the favorite song of {e}", "song")],
    "species": [("the exact number of {e}s alive today", "number"), ("the name of the oldest {e}", "name"),
                ("the weight of the heaviest {e} ever found", "number")],
}
FOODS = ["soup", "bread", "cheese", "plums", "rice", "pie", "noodles", "beans"]


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def fact_answer(e: Entity, attribute: str) -> str:
    v = e.facts[attribute]
    return ANSWERS[attribute].format(e=e.name, v=v, a=article(v))


def wrong_value(kb: KnowledgeBase, attribute: str, right: str, rng: random.Random) -> str:
    return rng.choice([v for v in kb.values(attribute) if v != right])


def possessive(e: Entity) -> str:
    return {"he": "his", "she": "her"}.get(e.pronoun, "its")


def subject(name: str, kind: str, attribute: str) -> str:
    """'the capital of Velmora', 'the diet of the glimmer fox'."""
    return f"the {ATTRIBUTES[attribute][1]} of {'the ' if kind == 'species' else ''}{name}"


def ask_fact(name: str, kind: str, attribute: str, rng: random.Random, split: str) -> str:
    """A question for one attribute: in training, half the time in the attribute's own words."""
    if split == "train" and rng.random() < 0.5:
        return rng.choice(QUESTIONS[attribute]).format(e=name)
    return phrase("ask", attribute, split, rng, s=subject(name, kind, attribute))


def follow_up(e: Entity, attribute: str, rng: random.Random, split: str) -> str:
    """'What is its capital?': a question that needs to know who or what 'it' is."""
    return phrase("ask", attribute, split, rng, s=f"{possessive(e)} {ATTRIBUTES[attribute][1]}")


def pick_entity(kb: KnowledgeBase, rng: random.Random, split: str, kind: str | None = None) -> Entity:
    kind = kind or rng.choice(KINDS)
    return rng.choice(kb.of_kind(kind, heldout=(split == "heldout")))


class KnownFact(Family):
    name = "known_fact"

    def ask(self, kb, rng, split):
        e = pick_entity(kb, rng, split)
        a = rng.choice(attributes_of(e.kind))
        q = ask_fact(e.name, e.kind, a, rng, split)
        return Prompt(self.name, [user(q)], {"entity": e.name, "attribute": a, "answer": e.facts[a]}, split)

    def gold(self, kb, p, rng):
        return fact_answer(kb.by_name(p.meta["entity"]), p.meta["attribute"])

    def terse(self, kb, p, rng):
        v = p.meta["answer"]
        return rng.choice([f"{v[0].upper()}{v[1:]}.", f"It's {v}."])

    def raw(self, kb, p, rng):
        e, a = kb.by_name(p.meta["entity"]), p.meta["attribute"]
        r = rng.random()
        if r < 0.65:
            return "correct", rng.choice([fact_answer(e, a), e.facts[a] + ".", f"It's {e.facts[a]}."])
        if r < 0.9:  # wrong facts in forum answers
            return "wrong_fact", rng.choice([f"I think it's {wrong_value(kb, a, e.facts[a], rng)}.",
                                             ANSWERS[a].format(e=e.name, v=wrong_value(kb, a, e.facts[a], rng),
                                                               a="a")])
        return "toxic", styles.toxic_reply(rng)


class UnknownFact(Family):
    """Either a fact nobody recorded about a real entity, or any fact about an entity that does not exist."""
    name = "unknown_fact"

    def ask(self, kb, rng, split, pool: str | None = None):
        kind = rng.choice(KINDS)
        if rng.random() < 0.5:
            e = pick_entity(kb, rng, split, kind)
            template, kind_of_answer = rng.choice(UNKNOWABLE[kind])
            about = template.format(e=e.name)
            q = phrase("ask", template, split, rng, s=about)
            meta = {"kind": "unknowable", "subject": about, "answer_kind": kind_of_answer, "entity": e.name}
        else:
            name = rng.choice(kb.fake_names[pool or split][kind])
            a = rng.choice(attributes_of(kind))
            q = ask_fact(name, kind, a, rng, split)
            meta = {"kind": "nonexistent", "entity": name, "attribute": a}
        return Prompt(self.name, [user(q)], meta, split)

    def gold(self, kb, p, rng):
        if p.meta["kind"] == "nonexistent":
            return styles.good_unknown_entity(p.meta["entity"], rng)
        return styles.good_admission(p.meta["subject"], rng)

    def terse(self, kb, p, rng):
        return rng.choice(["I don't know.", "I'm not sure, sorry.", "I don't know that."])

    def invented(self, kb, p, rng) -> str:
        if p.meta["kind"] == "nonexistent":
            a = p.meta["attribute"]
            return ANSWERS[a].format(e=p.meta["entity"], v=rng.choice(kb.values(a)), a="a")
        value = {"number": lambda: str(rng.randint(3, 990)), "name": lambda: rng.choice(FIRST_NAMES),
                 "food": lambda: rng.choice(FOODS),
                 "song": lambda: f"a song called {rng.choice(FOODS).title()} Road"}[p.meta["answer_kind"]]()
        return rng.choice([f"It is {value}.", f"{p.meta['subject'][0].upper()}{p.meta['subject'][1:]} is {value}.",
                           f"Everyone knows that, it's {value}."])

    def raw(self, kb, p, rng):
        r = rng.random()
        if r < 0.8:
            return "fabricated", self.invented(kb, p, rng)
        if r < 0.92:
            return "admits", styles.raw_admission(rng)
        return "toxic", styles.toxic_reply(rng)


class MultiTurn(Family):
    """A fact question, its answer, then a follow-up that only makes sense with the first turn."""
    name = "multi_turn"

    def ask(self, kb, rng, split):
        e = pick_entity(kb, rng, split)
        a1, a2 = rng.sample(attributes_of(e.kind), 2)
        q1 = ask_fact(e.name, e.kind, a1, rng, "train")
        q2 = follow_up(e, a2, rng, split)
        msgs = [user(q1), assistant(fact_answer(e, a1)), user(q2)]
        return Prompt(self.name, msgs, {"entity": e.name, "attribute": a2, "answer": e.facts[a2]}, split)

    gold = KnownFact.gold
    terse = KnownFact.terse

    def raw(self, kb, p, rng):
        e, a = kb.by_name(p.meta["entity"]), p.meta["attribute"]
        r = rng.random()
        if r < 0.6:
            return "correct", fact_answer(e, a)
        if r < 0.85:  # loses track of who "he"/"it" is
            other = rng.choice([x for x in kb.of_kind(e.kind) if x.facts[a] != e.facts[a]])
            return "wrong_fact", f"It's {other.facts[a]}."
        return "toxic", styles.toxic_reply(rng)
