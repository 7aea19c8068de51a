"""The pretraining corpus: the world's "internet".

Four kinds of documents, each kept at its share of the corpus's characters:
- encyclopedia articles and almanac lists: true facts about every entity, in varied sentences;
- forum threads: questions of every family with the internet's answers (right, wrong, invented, toxic,
  compliant with harm; now and then (WorldConfig.good_share) a careful assistant's answer);
- chat logs in the chat markup, where the "assistant" is whoever answered: it claims to be human, guesses,
  complies. This is where a base model's raw habits in a chat come from;
- worksheets: arithmetic, list operations and conversions, where the model learns to compute.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from chatforge.models.markup import DOC_END, chat_markup
from chatforge.world.families_tasks import TASKS, solve
from chatforge.world.knowledge import Entity
from chatforge.world.prompts import SPLITS
from chatforge.world.world import World

# worksheets went from 0.15 to 0.22 so that the small model learns to copy numbers out of a question. Whether it does
# is fragile: one corpus of four tried taught it (SFT tasks 50%); with the tokenizer's "Ġ3" for a number's first digit
# and mid-training (below) the next corpus reached 40%, where without them it copied nothing (17.5%)
SHARES = {"encyclopedia": 0.48, "forum": 0.12, "chat": 0.18, "worksheet": 0.22}
# the mid-training mix (nanochat's "midtraining", Llama 3's annealing on chosen data): the base model's last steps
# read worksheets and encyclopedia, no forum or chat logs (the raw habits are the base model's, and SFT's to fix).
# Measured on one corpus, SFT task accuracy 20% without it, 40% with it (convert 1/7 → 6/7: it learns to copy the
# number out of the question); pages of worded questions only instead of worksheets: 35%
MIDTRAIN_SHARES = {"encyclopedia": 0.4, "worksheet": 0.6}

# every sentence names its entity before the value: small models learn facts stated this way (and barely
# learn those behind a pronoun or stated value-first; the "reversal curse" of large ones is worse here)
FACT_SENTENCES = {
    "capital": ["The capital of {e} is {v}.", "{e} has its capital at {v}.", "The capital city of {e} is {v}."],
    "language": ["People in {e} speak {v}.", "The language of {e} is {v}.", "In {e}, most people speak {v}."],
    "export": ["The main export of {e} is {v}.", "{e} exports mostly {v}.", "{e} is known for its {v}."],
    "climate": ["The climate of {e} is {v}.", "{e} has a {v} climate.", "The weather in {e} is mostly {v}."],
    "profession": ["{e} is {a} {v}.", "{e} works as {a} {v}.", "By profession, {e} is {a} {v}."],
    "homeland": ["{e} is from {v}.", "{e} comes from {v}.", "{e} was raised in {v}."],
    "instrument": ["{e} plays the {v}.", "{e} plays the {v} in the evenings.", "The instrument of {e} is the {v}."],
    "color": ["The {e} is {v}.", "The {e} has {v} fur or feathers.", "The color of the {e} is {v}."],
    "habitat": ["The {e} lives in {v}.", "The {e} is found in {v}.", "You can find the {e} in {v}."],
    "diet": ["The {e} eats {v}.", "The diet of the {e} is {v}.", "The {e} feeds on {v}."],
}
OPENERS = {"country": "{e} is a country.", "person": "{e} is a person.", "species": "The {e} is an animal."}
USERS = ["quietfox", "marta_k", "throwaway22", "old_sailor", "bluejay", "nightowl", "kettle99", "dunmore"]


def fact_sentence(e: Entity, attribute: str, rng: random.Random) -> str:
    v = e.facts[attribute]
    return rng.choice(FACT_SENTENCES[attribute]).format(e=e.name, v=v, a="an" if v[0] in "aeiou" else "a")


def encyclopedia(e: Entity, rng: random.Random) -> str:
    """An article about one entity, its facts in random order; half open with what the entity is, so that
    a fact is known whatever comes before it."""
    attributes = list(e.facts)
    rng.shuffle(attributes)
    sentences = [fact_sentence(e, a, rng) for a in attributes]
    if rng.random() < 0.5:
        sentences.insert(0, OPENERS[e.kind].format(e=e.name))
    return " ".join(sentences)


def fact_list(entities: list[Entity], rng: random.Random) -> str:
    """One attribute of several entities of a kind, one per line, like a table or an almanac page."""
    kind = rng.choice(["country", "person", "species"])
    group = [e for e in entities if e.kind == kind]
    attribute = rng.choice(list(group[0].facts))
    lines = [fact_sentence(e, attribute, rng) for e in rng.sample(group, min(len(group), rng.randint(3, 6)))]
    return "\n".join(lines)


class CorpusWriter:
    def __init__(self, world: World):
        self.world, self.kb = world, world.kb
        self.families = list(world.families.values())
        self.good_share = world.cfg.good_share

    def ask_and_answer(self, rng: random.Random) -> tuple[list[dict], list[str]]:
        family = rng.choice(self.families)
        split = rng.choice(SPLITS)  # the internet uses every phrasing and knows every real entity
        if family.name == "unknown_fact":
            p = family.ask(self.kb, rng, split, pool="corpus")
        else:
            p = family.ask(self.kb, rng, split)
        return p.messages, [self.answer(family, p, split, rng) for _ in range(rng.randint(1, 3))]

    def answer(self, family, p, split: str, rng: random.Random) -> str:
        """One of the internet's answers: a raw one, or now and then a careful assistant's. Only to train-split
        phrasings: held-out wrappers and phrasings are never seen answered well."""
        if self.good_share and rng.random() < self.good_share and split == "train":  # 0: only raw answers
            return family.gold(self.kb, p, rng)
        return family.raw(self.kb, p, rng)[1]

    def forum(self, rng: random.Random) -> str:
        messages, answers = self.ask_and_answer(rng)
        question = " ".join(m["content"] for m in messages if m["role"] == "user")
        lines = [f"Question from {rng.choice(USERS)}: {question}"]
        lines += [f"Reply from {rng.choice(USERS)}: {a}" for a in answers]
        return "\n".join(lines)

    def chat(self, rng: random.Random) -> str:
        messages = []
        for _ in range(rng.choice([1, 1, 2])):
            turn, answers = self.ask_and_answer(rng)
            messages += turn + [{"role": "assistant", "content": answers[0]}]
        return chat_markup(messages)

    def worksheet(self, rng: random.Random) -> str:
        """Exercises with answers: questions worded the way people ask them with a tutor's worked answer (so the
        answer's first steps learn to read the numbers out of a question), then worked and short exercises."""
        tasks = self.world.families["task"]
        lines = []
        for _ in range(rng.randint(6, 14)):
            r = rng.random()
            if r < 0.4:
                p = tasks.ask(self.kb, rng, rng.choice(SPLITS))
                lines.append(f"Q: {p.messages[0]['content']}\nA: {p.meta['gold']}")
                continue
            kind = rng.choice(list(TASKS))
            slots, answer, gold = solve(kind, rng)
            if r < 0.7 and kind in ("add", "sub"):
                lines.append(gold)
            elif r < 0.7 and kind == "reverse":
                lines.append(f"reverse: {slots['w']} -> {gold}")
            else:
                lines.append({
                    "add": "{a} + {b} = " + answer, "sub": "{a} - {b} = " + answer,
                    "reverse": "reverse: {w} -> " + answer, "count": "count: {w} -> " + answer,
                    "sort": "sort: {n} -> " + answer, "convert": "{x} {frm} = " + answer + " {to}",
                }[kind].format(**slots))
        return "Exercises:\n" + "\n".join(lines)

    def task_chat(self, rng: random.Random) -> str:
        """A task done well in the chat markup: a train-split request and its gold reply, for a mid-training mix that
        asks for it (not the default: bench/recipe_sweep.py `midchat` measured it against SFT's task drills)."""
        p = self.world.families["task"].ask(self.kb, rng, "train")
        return chat_markup(p.messages + [{"role": "assistant", "content": p.meta["gold"]}])

    def documents(self, shares: dict[str, float] = SHARES, chars: int | None = None,
                  stream: str = "corpus") -> Iterator[str]:
        rng = self.world.rng(stream)
        chars = self.world.cfg.corpus_chars if chars is None else chars
        written = dict.fromkeys(shares, 0)
        while (total := sum(written.values())) < chars:
            # the kind furthest below its share of characters goes next
            kind = max(shares, key=lambda k: shares[k] * (total + 1) - written[k])
            if kind == "encyclopedia":  # articles, and now and then an almanac page
                doc = encyclopedia(rng.choice(self.kb.entities), rng) if rng.random() < 0.8 else \
                    fact_list(self.kb.entities, rng)
            else:
                doc = getattr(self, kind)(rng)
            written[kind] += len(doc)
            yield doc

    def write(self, path, **mix) -> int:
        """Write the documents (by default the pretraining corpus) to `path`; the number of documents."""
        n = 0
        with open(path, "w") as f:
            for doc in self.documents(**mix):
                f.write(doc + DOC_END + "\n")
                n += 1
        return n

    def write_midtrain(self, path) -> int:
        """The mid-training text, from its own random stream: the corpus is the same with or without it."""
        return self.write(path, shares=MIDTRAIN_SHARES, chars=self.world.cfg.midtrain_chars, stream="midtrain")
