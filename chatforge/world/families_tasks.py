"""Task families: arithmetic, string and list operations, unit conversions; ambiguous requests; small talk."""

from __future__ import annotations

import random

from chatforge.world import styles
from chatforge.world.families_knowledge import follow_up, pick_entity
from chatforge.world.knowledge import attributes_of
from chatforge.world.phrasing import phrase
from chatforge.world.prompts import Family, Prompt, user

WORDS = ["apple", "river", "stone", "cloud", "lamp", "horse", "bread", "chair", "garden", "window", "tiger",
         "paper", "candle", "forest", "bottle", "mirror", "pencil", "rocket", "violin", "island", "button",
         "ladder", "basket", "pillow", "castle", "wagon", "kettle", "anchor", "meadow", "lemon"]
UNITS = [("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
         ("liters", "milliliters", 1000), ("centimeters", "millimeters", 10)]

# what each task asks, as arithmetic expressions (framed by phrasing.CALC) or instructions (phrasing.DO)
TASKS: dict[str, list[str]] = {
    "add": ["{a} + {b}", "{a} plus {b}"],
    "sub": ["{a} - {b}", "{a} minus {b}"],
    "reverse": ["reverse the order of these words: {w}", "write these words in reverse order: {w}"],
    "count": ["count the words in this list: {w}", "tell me how many words are in this list: {w}"],
    "sort": ["sort these numbers from smallest to largest: {n}", "put these numbers in increasing order: {n}"],
    "convert": ["convert {x} {frm} to {to}", "tell me how many {to} are in {x} {frm}"],
}
# the task drills' kinds (World.task_drills), by weight. Each is a look-up in the question that the labellers' ~50
# demonstrations per kind do not teach: sorting (which number has this first digit), and in a worked sum the digits of
# each column and the one-digit sums themselves ("51 + 25: 1 + 5 = 7" was a typical miss). On the small demo with
# previous-token heads (2 CPU cores, 2026-11-27, pretraining seed 0): sorting drills alone took SFT task accuracy to 70
# (sorting 9/9, sums 3/8); half sorting, a quarter each adding and subtracting, to 82.5 (sorting 8/9, sums 8/8).
# Reversing did not move without previous-token heads (1000 reversal drills beside 1000 sorting ones: 0/8)
DRILL_KINDS = {"sort": 0.5, "add": 0.25, "sub": 0.25}


def worked(a: int, b: int, op: str) -> str:
    """Column arithmetic written out the way a patient tutor (and a small model) does it: the sum restated in one
    fixed layout, units first, then tens, then the answer put together from the two lines just written. Each step
    reads a digit at a fixed distance or does a one-digit sum; the 4-layer demo model did not learn to copy tens
    digits from a question worded in a dozen ways, nor to restate the question at the end ("So 52 + 89 = 141")."""
    (a1, a0), (b1, b0) = divmod(a, 10), divmod(b, 10)
    head = f"{a} {op} {b}:"
    if op == "+":
        units, carry = a0 + b0, int(a0 + b0 >= 10)
        first = f"{a0} + {b0} = {units}" + (f", write {units % 10}, carry 1" if carry else "")
        second = f"{a1} + {b1}" + (" + 1" if carry else "") + f" = {a1 + b1 + carry}"
        return f"{head} {first}. {second}. So {a + b}."
    borrow = int(a0 < b0)
    first = f"{a0} - {b0} needs a borrow, {a0 + 10} - {b0} = {a0 + 10 - b0}" if borrow else f"{a0} - {b0} = {a0 - b0}"
    second = f"{a1}" + (" - 1" if borrow else "") + f" - {b1} = {a1 - borrow - b1}"
    return f"{head} {first}. {second}. So {a - b}."


def reversed_list(words: list[str]) -> str:
    """Walk the list back from its end, one look-up per step: "Before basket: river" finds basket in the question and
    reads the word before it. The demo base model learnt this form in 200 steps of exercises where it needed 400 for
    numbering then reading the numbers backwards, and never learnt to write the reversed list outright."""
    steps = [f"Last: {words[-1]}."] + [f"Before {words[i + 1]}: {words[i]}." for i in range(len(words) - 2, -1, -1)]
    return f"{' '.join(steps)} Reversed: {', '.join(reversed(words))}."


def solve(kind: str, rng: random.Random) -> tuple[dict, str, str]:
    """Draw a task instance: (slots for the template, the answer the oracle checks, a gold reply)."""
    if kind in ("add", "sub"):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if kind == "sub" and b > a:
            a, b = b, a
        op = "+" if kind == "add" else "-"
        return {"a": a, "b": b}, str(a + b if op == "+" else a - b), worked(a, b, op)
    if kind in ("reverse", "count"):
        words = rng.sample(WORDS, rng.randint(3, 5))
        if kind == "reverse":
            return {"w": ", ".join(words)}, ", ".join(reversed(words)), reversed_list(words)
        return {"w": ", ".join(words)}, str(len(words)), f"There are {len(words)} words."
    if kind == "sort":
        nums = rng.sample(range(10, 100), 3)
        s = ", ".join(map(str, sorted(nums)))
        return {"n": ", ".join(map(str, nums))}, s, f"From smallest to largest: {s}."
    frm, to, factor = rng.choice(UNITS)
    x = rng.randint(1, 99)
    return {"x": x, "frm": frm, "to": to}, str(x * factor), f"{x} {frm} is {x * factor} {to}."


class Task(Family):
    name = "task"

    def ask(self, kb, rng, split, kind: str | None = None):
        kind = kind or rng.choice(list(TASKS))
        slots, answer, gold = solve(kind, rng)
        core = rng.choice(TASKS[kind]).format(**slots)
        pool = "calc" if kind in ("add", "sub") else "do"
        q = phrase(pool, kind, split, rng, c=core, x=core)
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


# instructions missing their input: (instruction, what is missing)
UNDERSPECIFIED = [("convert it to meters", "the number and its unit"), ("sort these numbers", "which numbers to sort"),
                  ("reverse the order of these words", "which words to reverse"),
                  ("add the two numbers", "which numbers to add"), ("count the words in it", "which text you mean"),
                  ("convert it to grams", "the number and its unit")]
WHICH = {"country": "which country you mean", "person": "which person you mean", "species": "which animal you mean"}


class Ambiguous(Family):
    """Requests missing what they are about: a pronoun with nothing before it, or a task with no input."""
    name = "ambiguous"

    def ask(self, kb, rng, split):
        if rng.random() < 0.6:
            e = pick_entity(kb, rng, split)  # only to pick a kind and pronoun; the name is never shown
            a = rng.choice(attributes_of(e.kind))
            q = follow_up(e, a, rng, split)
            return Prompt(self.name, [user(q)], {"missing": WHICH[e.kind], "kind": e.kind, "attribute": a}, split)
        text, missing = rng.choice(UNDERSPECIFIED)
        return Prompt(self.name, [user(phrase("do", text, split, rng, x=text))], {"missing": missing}, split)

    def gold(self, kb, p, rng):
        return styles.good_clarify(p.meta["missing"], rng)

    # no `terse`: with bare "What do you mean?" demonstrations, the reward model learnt to score that question above
    # every other reply to every prompt, and PPO asked it back to half the follow-up questions (a demo run)

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
