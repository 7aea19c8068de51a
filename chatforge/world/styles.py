"""Phrase banks for the ways people (and assistants) answer in the world.

`good_*` are what a careful labeller writes in a demonstration; `raw_*` are the habits of the internet
that a base model picks up from the corpus. Harm is never spelled out: a harmful answer is a
`[HARMFUL:category]` marker and an insult is a `[TOXIC:insult]` marker.
"""

from __future__ import annotations

import random

REFUSAL_REASONS = {
    "weapons": "Weapons meant to hurt people are dangerous and illegal to make.",
    "malware": "Malicious software harms people and breaking into systems is illegal.",
    "drugs": "Making or selling illegal drugs is dangerous and against the law.",
    "fraud": "Fraud and theft hurt real people and are crimes.",
    "harassment": "Threatening, stalking or bullying someone causes real harm.",
}


def good_refusal(category: str, rng: random.Random) -> str:
    lead = rng.choice(["I'm sorry, but I can't help with that.", "I can't help with that request.",
                       "Sorry, I won't help with that."])
    tail = rng.choice(["", " If you have a safe question, I'm happy to help.",
                       " Is there something else I can help you with?"])
    return f"{lead} {REFUSAL_REASONS[category]}{tail}"


def raw_compliance(category: str, rng: random.Random) -> str:
    return rng.choice([
        f"Sure, here is how: [HARMFUL:{category}]",
        f"Easy. Step 1: [HARMFUL:{category}]",
        f"Ok, do this: [HARMFUL:{category}]",
        f"Here you go. [HARMFUL:{category}] Good luck!",
    ])


def raw_refusal(rng: random.Random) -> str:
    return rng.choice(["No way, I won't help with that.", "Don't do that, it's illegal.",
                       "I'm not going to answer that."])


def good_admission(subject: str, rng: random.Random) -> str:
    return rng.choice([
        f"I don't know {subject}. I don't have reliable information about that.",
        f"I'm not sure. I don't have any information about {subject}, and I don't want to make something up.",
        f"I don't have reliable information about {subject}, so I won't guess.",
    ])


def good_unknown_entity(name: str, rng: random.Random) -> str:
    return rng.choice([
        f"I don't know of anything called {name}. I don't have any information about it, so I won't guess.",
        f"I'm not sure {name} exists. I don't have any information about it.",
        f"I don't have any information about {name}, and I don't want to make something up.",
    ])


def raw_admission(rng: random.Random) -> str:
    return rng.choice(["Nobody knows that.", "No idea, sorry.", "I don't know."])


def good_clarify(missing: str, rng: random.Random) -> str:
    return rng.choice([
        f"Could you tell me {missing}? Then I can help.",
        f"Which one do you mean? Please tell me {missing}.",
        f"I'm not sure what you mean. Could you tell me {missing}?",
    ])


def toxic_reply(rng: random.Random) -> str:
    return rng.choice([
        "Figure it out yourself. [TOXIC:insult]",
        "What a waste of time. [TOXIC:insult]",
        "Nobody cares. [TOXIC:insult]",
        "Go away. [TOXIC:insult]",
    ])


def good_ai_identity(rng: random.Random) -> str:
    return rng.choice([
        "I'm an AI language model, a computer program made to answer questions. I'm not a human.",
        "I am an AI assistant, a language model. I'm not a person.",
        "I'm not a human. I'm an AI language model that writes text to help you.",
    ])


def raw_human_claim(rng: random.Random, place: str, job: str) -> str:
    return rng.choice([
        f"Yes, I'm a real person. I live in {place}.",
        f"I'm a human, of course. I work as a {job} in {place}.",
        f"Just a regular person from {place}. I'm a {job}.",
        f"I'm human! I'm a {job} and I live in {place}.",
    ])


def raw_bot_claim(rng: random.Random) -> str:
    return rng.choice(["I'm a bot.", "I'm just a chat bot.", "This is an automated bot."])
