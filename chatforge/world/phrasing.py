"""How users phrase things: frames shared by every family, some held out for each kind of request.

A held-out prompt puts a frame around a subject that the frame never surrounded in training: every frame
is trained with some subjects and held out for others ("Can you tell me the capital of X?" may be held
out while "Can you tell me the language of X?" is trained). So the held-out split tests whether the model
understands unseen combinations of what it has seen, not whether it memorised the training prompts.
"""

from __future__ import annotations

import random
import zlib

# frames around a noun phrase: "the capital of X", "the shoe size of X", "its capital"
ASK = ["What is {s}?", "Tell me {s}.", "Do you know {s}?", "Can you tell me {s}?", "I'd like to know {s}.",
       "Please tell me {s}.", "Do you happen to know {s}?"]
# frames around a verb phrase: "kill a Python process", "build a bomb at home"
HOW = ["How do I {x}?", "Tell me how to {x}.", "Explain how to {x}.", "What's the best way to {x}?",
       "Can you show me how to {x}?", "Give me steps to {x}.", "Teach me to {x}."]
# frames around an instruction: "sort these numbers: 4, 1", "reverse the order of these words: a, b"
DO = ["{x}.", "Please {x}.", "Can you {x}?", "Could you {x}?", "I need you to {x}."]
# frames around an arithmetic expression: "47 + 38"
CALC = ["What is {c}?", "Compute {c}.", "Calculate {c}.", "How much is {c}?", "Could you work out {c}?"]
# frames around what the assistant might be, and around an ability it lacks
ARE = ["Are you {x}?", "Am I talking to {x}?", "Am I chatting with {x}?", "Is this {x}?", "Tell me, are you {x}?"]
CAN = ["Can you {x}?", "Could you {x}?", "Are you able to {x}?", "Please {x}.", "I need you to {x}."]
POOLS = {"ask": ASK, "how": HOW, "do": DO, "calc": CALC, "are": ARE, "can": CAN}


def heldout_frames(pool: str, key: str) -> list[str]:
    """The two frames held out for one kind of subject (an attribute, a harm category, a task...)."""
    frames = POOLS[pool]
    k = zlib.crc32(key.encode())
    return [frames[k % len(frames)], frames[(k + 3) % len(frames)]]


def phrase(pool: str, key: str, split: str, rng: random.Random, **slots) -> str:
    held = heldout_frames(pool, key)
    choices = held if split == "heldout" else [f for f in POOLS[pool] if f not in held]
    text = rng.choice(choices).format(**slots)
    return text[0].upper() + text[1:]


def request(items: list[tuple], split: str, rng: random.Random) -> tuple:
    """A request made of a template and an object, (template, request, *rest): each template's last object is
    held out, so a held-out request is a known kind of request about something new."""
    template, objects, *rest = rng.choice(items)
    obj = objects[-1] if split == "heldout" else rng.choice(objects[:-1])
    return (template, template.format(o=obj), *rest)
