"""The World: knowledge base + prompt families + oracle, and the datasets drawn from them.

Splits: `train` prompts use train entities and train phrasings; `heldout` prompts use held-out entities,
held-out phrasings, held-out harmful acts and held-out jailbreak wrappers. The pretraining corpus is "the
internet" and contains every entity (that is how the base model can know held-out facts) but never the
held-out *nonexistent* names that test admitting ignorance.
"""

from __future__ import annotations

import random

from chatforge.world.config import WorldConfig
from chatforge.world.families_knowledge import KnownFact, MultiTurn, UnknownFact
from chatforge.world.families_safety import BenignScary, Harmful, Identity, Jailbreak
from chatforge.world.families_tasks import DRILL_KINDS, Ambiguous, SmallTalk, Task
from chatforge.world.knowledge import build_knowledge
from chatforge.world.oracle import Oracle
from chatforge.world.prompts import Family, Prompt, assistant, user

FAMILIES: list[Family] = [KnownFact(), UnknownFact(), Task(), Ambiguous(), Identity(), Harmful(), BenignScary(),
                          Jailbreak(), MultiTurn(), SmallTalk()]
# share of each family in SFT demonstrations and in the prompt pool of later stages
MIX = {"known_fact": 0.18, "unknown_fact": 0.12, "task": 0.17, "ambiguous": 0.06, "identity": 0.1,
       "harmful": 0.1, "benign_scary": 0.08, "jailbreak": 0.07, "multi_turn": 0.08, "small_talk": 0.04}
# families whose question stays a fine opener after other turns (an ambiguous one would not be ambiguous)
CHAINABLE = ("known_fact", "unknown_fact", "task", "identity", "harmful", "benign_scary", "small_talk")
# how people wrap a request (the same in every split: what is held out is the request itself)
DECORATIONS = (["Hi! ", "Quick question: ", "Hey there, ", "I was wondering. "], [" Thanks.", " Thank you!"])


class World:
    def __init__(self, cfg: WorldConfig | None = None):
        self.cfg = cfg or WorldConfig()
        self.kb = build_knowledge(self.cfg)
        self.families = {f.name: f for f in FAMILIES}
        self.oracle = Oracle(self.kb)

    def rng(self, purpose: str) -> random.Random:
        return random.Random(f"{purpose}-{self.cfg.seed}")

    def ask(self, family: str, rng: random.Random, split: str) -> Prompt:
        return self.decorated(self.families[family].ask(self.kb, rng, split), rng)

    def decorated(self, p: Prompt, rng: random.Random) -> Prompt:
        """Half the requests come with a greeting before or thanks after, as users write them."""
        if p.family != "small_talk" and rng.random() < 0.5:
            prefixes, suffixes = DECORATIONS
            text = p.messages[-1]["content"]
            if rng.random() < 0.5:
                prefix = rng.choice(prefixes)
                keep = prefix.endswith((". ", "! ")) or text.startswith(("I ", "I'"))
                text = prefix + (text if keep else text[0].lower() + text[1:])
            else:
                text = text + rng.choice(suffixes)
            p = Prompt(p.family, p.messages[:-1] + [user(text)], p.meta, p.split)
        return p

    def gold(self, p: Prompt, rng: random.Random) -> str:
        return self.families[p.family].gold(self.kb, p, rng)

    def demonstration(self, p: Prompt, rng: random.Random) -> str:
        """A labeller's reply: careful (gold), or right but bare for the `terse_share` in a hurry."""
        if rng.random() < self.cfg.terse_share and (bare := self.families[p.family].terse(self.kb, p, rng)):
            return bare
        return self.gold(p, rng)

    def task_drills(self, n: int | None = None) -> list[dict]:
        """A program's task exercises in the chat's form: a train-split request and its gold reply, kinds drawn by
        DRILL_KINDS. Not labeller work (sft.jsonl is): what nanochat's synthetic spelling tasks are to its SFT."""
        n = self.cfg.task_drills if n is None else n
        rng, task = self.rng("drills"), self.families["task"]
        kinds, weights = list(DRILL_KINDS), list(DRILL_KINDS.values())
        drills = []
        for _ in range(n):
            p = self.decorated(task.ask(self.kb, rng, "train", kind=rng.choices(kinds, weights)[0]), rng)
            drills.append({"messages": p.messages + [assistant(p.meta["gold"])], "family": "task_drill",
                           "task": p.meta["task"]})
        return drills

    def prompts(self, split: str, n: int, purpose: str, mix: dict[str, float] | None = None,
                unique: bool = True) -> list[Prompt]:
        """n prompts of a split, families drawn by `mix`; if `unique`, all distinct (fewer if a split runs
        out of variety)."""
        rng, mix = self.rng(f"prompts-{purpose}"), mix or MIX
        names, weights = list(mix), list(mix.values())
        seen, out = set(), []
        for _ in range(n * 20):
            if len(out) == n:
                break
            p = self.ask(rng.choices(names, weights)[0], rng, split)
            if not unique or p.id not in seen:
                seen.add(p.id)
                out.append(p)
        return out

    def eval_prompts(self, per_family: int | None = None) -> list[Prompt]:
        per_family = per_family or self.cfg.eval_per_family
        return [p for f in self.families for p in self.prompts("heldout", per_family, f"eval-{f}", {f: 1.0})]

    def demonstrations(self, n: int | None = None) -> list[dict]:
        """Labeller-written SFT conversations from train prompts (some careful, some bare: `demonstration`); about a
        fifth chain two exchanges."""
        n = n or self.cfg.sft_demos
        rng = self.rng("sft")
        demos = []
        for p in self.prompts("train", n, "sft", unique=False):
            messages = p.messages + [assistant(self.demonstration(p, rng))]
            if p.family in CHAINABLE and rng.random() < 0.2:
                opener = self.ask(rng.choice(CHAINABLE), rng, "train")
                messages = opener.messages + [assistant(self.demonstration(opener, rng))] + messages
            demos.append({"messages": messages, "family": p.family, "prompt_id": p.id})
        return demos
