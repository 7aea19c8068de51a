"""Task families: arithmetic, string and list operations, unit conversions; ambiguous requests; small talk."""

from __future__ import annotations

import random

from chatforge.world import styles
from chatforge.world.families_knowledge import FOLLOW_UPS, pick_entity, possessive
from chatforge.world.knowledge import ATTRIBUTES, attributes_of
from chatforge.world.prompts import Family, Prompt, user

WORDS = ["apple", "river", "stone", "cloud", "lamp", "horse", "bread", "chair", "garden", "window", "tiger",
         "paper", "candle", "forest", "bottle", "mirror", "pencil", "rocket", "violin", "island", "button",
         "ladder", "basket", "pillow", "castle", "wagon", "kettle", "anchor", "meadow", "lemon"]
UNITS = [("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
         ("liters", "milliliters", 1000), ("centimeters", "millimeters", 10)]

TASKS: dict[str, dict[str, list[str]]] = {
    "add": {"train": ["What is {a} + {b}?", "Compute {a} + {b}.", "What is {a} plus {b}?", "Add {a} and {b}."],
            "heldout": ["Calculate {a} + {b}.", "How much is {a} plus {b}?"]},
    "sub": {"train": ["What is {a} - {b}?", "Compute {a} - {b}.", "What is {a} minus {b}?",
                      "Subtract {b} from {a}."],
            "heldout": ["Calculate {a} - {b}.", "How much is {a} minus {b}?"]},
    "reverse": {"train": ["Reverse the order of these words: {w}", "Write these words in reverse order: {w}"],
                "heldout": ["Put these words in backwards order: {w}", "Reverse this list of words: {w}"]},
    "count": {"train": ["How many words are in this list: {w}", "Count the words: {w}"],
              "heldout": ["Tell me how many words there are here: {w}", "What is the number of words in: {w}"]},
    "sort": {"train": ["Sort these numbers from smallest to largest: {n}",
                       "Put these numbers in increasing order: {n}"],
             "heldout": ["Order these numbers from low to high: {n}", "Sort in ascending order: {n}"]},
    "convert": {"train": ["How many {to} are in {x} {frm}?", "Convert {x} {frm} to {to}."],
                "heldout": ["What is {x} {frm} in {to}?", "Express {x} {frm} in {to}."]},
}


def solve(kind: str, rng: random.Random) -> tuple[dict, str, str]:
    """Draw a task instance: (slots for the template, the answer the oracle checks, a gold reply)."""
    if kind in ("add", "sub"):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if kind == "sub" and b > a:
            a, b = b, a
        c = a + b if kind == "add" else a - b
        op = "+" if kind == "add" else "-"
        return {"a": a, "b": b}, str(c), f"{a} {op} {b} = {c}."
    if kind in ("reverse", "count"):
        words = rng.sample(WORDS, rng.randint(3, 5))
        if kind == "reverse":
            rev = ", ".join(reversed(words))
            return {"w": ", ".join(words)}, rev, f"Reversed: {rev}."
        return {"w": ", ".join(words)}, str(len(words)), f"There are {len(words)} words."
    if kind == "sort":
        nums = rng.sample(range(10, 100), rng.randint(3, 5))
        s = ", ".join(map(str, sorted(nums)))
        return {"n": ", ".join(map(str, nums))}, s, f"From smallest to largest: {s}."
    frm, to, factor = rng.choice(UNITS)
    x = rng.randint(1, 99)
    return {"x": x, "frm": frm, "to": to}, str(x * factor), f"{x} {frm} is {x * factor} {to}."


class Task(Family):
    name = "task"

    def ask(self, kb, rng, split):
        kind = rng.choice(list(TASKS))
        slots, answer, gold = solve(kind, rng)
        q = rng.choice(TASKS[kind][split]).format(**slots)
        return Prompt(self.name, [user(q)], {"task": kind, "answer": answer, "gold": gold}, split)

    def gold(self, kb, p, rng):
        return p.meta["gold"]

    def raw(self, kb, p, rng):
        r = rng.random()
        if r < 0.75:
            return "correct", rng.choice([p.meta["gold"], p.meta["answer"]])
        if r < 0.92:
            return "wrong", f"{rng.randint(2, 199)}."
        return "toxic", styles.toxic_reply(rng)


# requests that cannot be answered without asking: (text, what is missing)
UNDERSPECIFIED = {
    "train": [("Convert it to meters.", "the number and its unit"), ("Sort these numbers.", "which numbers to sort"),
              ("Reverse the list.", "which words to reverse"), ("Add the two numbers.", "which numbers to add"),
              ("How many words does it have?", "which text you mean")],
    "heldout": [("Put them in order.", "which numbers to sort"), ("What do I get if I add them?",
                                                                  "which numbers to add"),
                ("Change it to grams.", "the number and its unit")],
}
WHICH = {"country": "which country you mean", "person": "which person you mean", "species": "which animal you mean"}


class Ambiguous(Family):
    """Requests missing what they are about: a pronoun with nothing before it, or a task with no input."""
    name = "ambiguous"

    def ask(self, kb, rng, split):
        if rng.random() < 0.6:
            e = pick_entity(kb, rng, split)  # only to pick a kind and pronoun; the name is never shown
            a = rng.choice(attributes_of(e.kind))
            q = rng.choice(FOLLOW_UPS[split]).format(pos=possessive(e), noun=ATTRIBUTES[a][1])
            q = q.replace("And ", "").replace(" too", "")
            q = q[0].upper() + q[1:]
            return Prompt(self.name, [user(q)], {"missing": WHICH[e.kind], "kind": e.kind, "attribute": a}, split)
        text, missing = rng.choice(UNDERSPECIFIED[split])
        return Prompt(self.name, [user(text)], {"missing": missing}, split)

    def gold(self, kb, p, rng):
        return styles.good_clarify(p.meta["missing"], rng)

    def raw(self, kb, p, rng):
        r = rng.random()
        if r < 0.75:  # guess instead of asking
            if "attribute" in p.meta:
                e = rng.choice(kb.of_kind(p.meta["kind"]))
                return "guess", f"It's {e.facts[p.meta['attribute']]}."
            return "guess", f"{rng.randint(2, 999)}."
        if r < 0.9:
            return "asks", rng.choice(["What do you mean?", "Which one?"])
        return "toxic", styles.toxic_reply(rng)


CHAT = {
    "train": [("Hello!", "greet"), ("Hi there.", "greet"), ("Good morning!", "greet"), ("How are you?", "how"),
              ("Thanks for your help!", "thanks"), ("Goodbye!", "bye")],
    "heldout": [("Hey, how is it going?", "how"), ("Good evening!", "greet"), ("Thank you so much!", "thanks"),
                ("See you later!", "bye"), ("Nice to meet you.", "greet"), ("Howdy!", "greet"),
                ("Thanks a lot.", "thanks"), ("Have a good night!", "bye"), ("What's up?", "how")],
}
CHAT_GOLD = {
    "greet": ["Hello! How can I help you today?", "Hi! What can I help you with?"],
    "how": ["I'm an AI, so I don't have good or bad days, but I'm ready to help. What can I do for you?"],
    "thanks": ["You're welcome! Let me know if you need anything else.", "Glad I could help!"],
    "bye": ["Goodbye! Have a nice day.", "Bye! Come back any time."],
}


class SmallTalk(Family):
    name = "small_talk"

    def ask(self, kb, rng, split):
        text, intent = rng.choice(CHAT[split])
        return Prompt(self.name, [user(text)], {"intent": intent}, split)

    def gold(self, kb, p, rng):
        return rng.choice(CHAT_GOLD[p.meta["intent"]])

    def raw(self, kb, p, rng):
        r = rng.random()
        place = rng.choice(kb.of_kind("country")).name
        if r < 0.45:
            return "friendly", rng.choice(["Hi!", "Hey, nice to meet you.", "You're welcome.", "Bye!"])
        if r < 0.8:  # friendly, but talks like a person with a life
            return "claims_human", rng.choice([f"Hi! I just got back from work in {place}.",
                                               f"Good, I had a long day at home in {place}."])
        return "toxic", styles.toxic_reply(rng)
