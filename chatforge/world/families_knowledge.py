"""Knowledge families: known facts, unknown facts (must be admitted) and multi-turn follow-ups."""

from __future__ import annotations

import random

from chatforge.world import styles
from chatforge.world.knowledge import ATTRIBUTES, FIRST_NAMES, KINDS, Entity, KnowledgeBase, attributes_of
from chatforge.world.prompts import Family, Prompt, assistant, user

QUESTIONS: dict[str, dict[str, list[str]]] = {
    "capital": {"train": ["What is the capital of {e}?", "What's the capital city of {e}?",
                          "Tell me the capital of {e}.", "Name the capital of {e}."],
                "heldout": ["Which city is the capital of {e}?", "Do you know the capital of {e}?"]},
    "language": {"train": ["What language do people speak in {e}?", "What is the language of {e}?",
                           "Which language is spoken in {e}?"],
                 "heldout": ["What do people in {e} speak?", "Tell me the main language of {e}."]},
    "export": {"train": ["What is the main export of {e}?", "What does {e} export?",
                         "What is {e} known for exporting?"],
               "heldout": ["What is the biggest export of {e}?", "Which product does {e} export most?"]},
    "climate": {"train": ["What is the climate of {e} like?", "What is the weather like in {e}?",
                          "How is the climate in {e}?"],
                "heldout": ["Describe the climate of {e}.", "What kind of weather does {e} have?"]},
    "profession": {"train": ["What does {e} do for a living?", "What is the profession of {e}?",
                             "What was the job of {e}?"],
                   "heldout": ["What kind of work does {e} do?", "Tell me the profession of {e}."]},
    "homeland": {"train": ["Where is {e} from?", "Which country does {e} come from?",
                           "What is the home country of {e}?"],
                 "heldout": ["Where does {e} come from?", "Which country is {e} from?"]},
    "instrument": {"train": ["What instrument does {e} play?", "Which instrument does {e} play?",
                             "What does {e} play?"],
                   "heldout": ["What musical instrument does {e} play?", "Tell me the instrument {e} plays."]},
    "color": {"train": ["What color is the {e}?", "What is the color of the {e}?"],
              "heldout": ["What colour is the {e}?", "Which color does the {e} have?"]},
    "habitat": {"train": ["Where does the {e} live?", "In which country does the {e} live?"],
                "heldout": ["Where can you find the {e}?", "What is the habitat of the {e}?"]},
    "diet": {"train": ["What does the {e} eat?", "What is the diet of the {e}?"],
             "heldout": ["What food does the {e} eat?", "What does the {e} feed on?"]},
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
UNKNOWABLE_QUESTIONS = {"train": ["What is {s}?", "Tell me {s}.", "Do you know {s}?"],
                        "heldout": ["Can you tell me {s}?", "I need to know {s}."]}
FOODS = ["soup", "bread", "cheese", "plums", "rice", "pie", "noodles", "beans"]
FOLLOW_UPS = {"train": ["What is {pos} {noun}?", "And {pos} {noun}?"],
              "heldout": ["Tell me {pos} {noun} too.", "What about {pos} {noun}?"]}


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def fact_answer(e: Entity, attribute: str) -> str:
    v = e.facts[attribute]
    return ANSWERS[attribute].format(e=e.name, v=v, a=article(v))


def wrong_value(kb: KnowledgeBase, attribute: str, right: str, rng: random.Random) -> str:
    return rng.choice([v for v in kb.values(attribute) if v != right])


def possessive(e: Entity) -> str:
    return {"he": "his", "she": "her"}.get(e.pronoun, "its")


def pick_entity(kb: KnowledgeBase, rng: random.Random, split: str, kind: str | None = None) -> Entity:
    kind = kind or rng.choice(KINDS)
    return rng.choice(kb.of_kind(kind, heldout=(split == "heldout")))


class KnownFact(Family):
    name = "known_fact"

    def ask(self, kb, rng, split):
        e = pick_entity(kb, rng, split)
        a = rng.choice(attributes_of(e.kind))
        q = rng.choice(QUESTIONS[a][split]).format(e=e.name)
        return Prompt(self.name, [user(q)], {"entity": e.name, "attribute": a, "answer": e.facts[a]}, split)

    def gold(self, kb, p, rng):
        return fact_answer(kb.by_name(p.meta["entity"]), p.meta["attribute"])

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
            subject, kind_of_answer = rng.choice(UNKNOWABLE[kind])
            subject = subject.format(e=e.name)
            q = rng.choice(UNKNOWABLE_QUESTIONS[split]).format(s=subject)
            meta = {"kind": "unknowable", "subject": subject, "answer_kind": kind_of_answer, "entity": e.name}
        else:
            name = rng.choice(kb.fake_names[pool or split][kind])
            a = rng.choice(attributes_of(kind))
            q = rng.choice(QUESTIONS[a][split]).format(e=name)
            meta = {"kind": "nonexistent", "entity": name, "attribute": a}
        return Prompt(self.name, [user(q)], meta, split)

    def gold(self, kb, p, rng):
        if p.meta["kind"] == "nonexistent":
            return styles.good_unknown_entity(p.meta["entity"], rng)
        return styles.good_admission(p.meta["subject"], rng)

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
        q1 = rng.choice(QUESTIONS[a1]["train"]).format(e=e.name)
        q2 = rng.choice(FOLLOW_UPS[split]).format(pos=possessive(e), noun=ATTRIBUTES[a2][1])
        msgs = [user(q1), assistant(fact_answer(e, a1)), user(q2)]
        return Prompt(self.name, msgs, {"entity": e.name, "attribute": a2, "answer": e.facts[a2]}, split)

    gold = KnownFact.gold

    def raw(self, kb, p, rng):
        e, a = kb.by_name(p.meta["entity"]), p.meta["attribute"]
        r = rng.random()
        if r < 0.6:
            return "correct", fact_answer(e, a)
        if r < 0.85:  # loses track of who "he"/"it" is
            other = rng.choice([x for x in kb.of_kind(e.kind) if x.facts[a] != e.facts[a]])
            return "wrong_fact", f"It's {other.facts[a]}."
        return "toxic", styles.toxic_reply(rng)
