"""How big the built-in world is. Every size a later stage depends on is here and nowhere else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# the file a world directory, and every model chatforge trains in a world, carries its config in
WORLD_FILE = "chatforge_world.json"


@dataclass
class WorldConfig:
    seed: int = 0
    # knowledge base: entities per kind; a share of each kind is held out (never in SFT/RLHF prompts)
    countries: int = 16
    people: int = 20
    species: int = 16
    heldout_entity_share: float = 0.25
    # pretraining corpus, in characters (about 3 characters per token with the world's tokenizer)
    corpus_chars: int = 6_500_000
    # the mid-training text (worksheets and encyclopedia, corpus.MIDTRAIN_SHARES) the base model reads last, before SFT
    midtrain_chars: int = 1_300_000
    # the share of forum and chat answers to train-split prompts that are the family's good answer, as the real
    # internet holds some careful assistants' replies (3% of all answers; held-out phrasings are never answered well).
    # Without them the words such a reply is made of ("model", "crimes") never reach the tokenizer or the base model,
    # and the SFT model rarely samples a clean explained answer for the reward model and PPO to find. Measured on the
    # small demo (Intel 2-core box, 909 held-out prompts, 2026-11-28): at 0, PPO beat SFT 0.519 with ambiguous requests
    # −5.5 points; at 0.06, 0.644 in the timed demo and 0.623 / 0.619 over pretraining seeds 0 / 1 (recipe_sweep
    # good3 / good3s1, then rlhf_variant), every family within 1.1 points, the base model's raw habits kept (harmful
    # compliance 100%, identity honesty 5%), but SFT tasks 57 on seed 1 and the adversarial rounds −37.5% (−73% at 0:
    # the PPO model breaks less in training, so they learn from fewer successes). 10% of all answers made the base
    # model refuse 90% of harmful requests (an older recipe)
    good_share: float = 0.06
    # labeller-sized SFT demonstrations, and the (larger) prompt pool later stages sample from
    sft_demos: int = 2400
    # share of demonstrations written by hurried labellers: right but bare ("Culryen.", "I can't help with that.");
    # the oracle and raters prefer complete answers, which is what RLHF can add to SFT. A small model trained on
    # these keeps to the easy bare form: at 0.35 its greedy refusals are all bare and 12% of its samples (T=0.8)
    # complete, enough for PPO to find; at 0.6 only 1-4% were, and neither comparisons nor PPO saw complete ones
    terse_share: float = 0.35
    # task drills: a program's exercises in the chat's form (a train-split task request and its gold reply), kept apart
    # from the labellers' demonstrations in drills.jsonl; SFT trains on both (see families_tasks.DRILL_KINDS)
    task_drills: int = 3000
    train_prompts: int = 6000
    # held-out evaluation prompts per family (fewer where a family has fewer distinct prompts: small talk has 9). At 40
    # a prompt was 2.5 points, coarser than the 2-point bounds families are held to; at 100 (a prefix of the same
    # stream: the first 40 are the former set) the four evals take ~3 s each on 2 cores
    eval_per_family: int = 100

    @classmethod
    def preset(cls, name: str, seed: int = 0) -> "WorldConfig":
        if name not in WORLD_PRESETS:
            from chatforge.errors import ChatforgeError

            raise ChatforgeError(f"unknown world preset '{name}' (choose from: {', '.join(WORLD_PRESETS)})")
        return cls(seed=seed, **WORLD_PRESETS[name])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WorldConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


WORLD_PRESETS: dict[str, dict] = {
    "tiny": dict(countries=12, people=12, species=12, corpus_chars=500_000, midtrain_chars=60_000, sft_demos=600,
                 task_drills=200, train_prompts=1000, eval_per_family=12,
                 # the smoke test's corpus stays without careful answers: with them (2026-11-28) its base model neither
                 # complied with nor refused harmful requests, so SFT had no habit to fix, and its moderation
                 # classifier learnt nothing at 2 epochs
                 good_share=0.0),
    "small": dict(),
}
