"""Writing a world to a directory: what every later stage reads.

    chatforge_world.json   the config (seed and sizes): the world can be rebuilt from it exactly
    kb.json                the knowledge base
    corpus.txt             pretraining documents, each ending with <|endoftext|>
    midtrain.txt           the mid-training text the base model reads last: worksheets and encyclopedia
    sft.jsonl              labeller demonstrations, {"messages": [...], "family": ...}
    drills.jsonl           task drills: a program's exercises in the chat's form, which SFT also trains on
    prompts_train.jsonl    the (larger) prompt pool for comparisons and RL, train split
    eval.jsonl             held-out prompts (unseen entities, phrasings, acts and attack wrappers)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from chatforge.data.conversations import write_jsonl
from chatforge.world.config import WORLD_FILE, WorldConfig
from chatforge.world.corpus import CorpusWriter
from chatforge.world.world import World


def build_world_dir(cfg: WorldConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    world = World(cfg)
    (out / WORLD_FILE).write_text(json.dumps(cfg.to_dict(), indent=2))
    (out / "kb.json").write_text(json.dumps(world.kb.to_dict(), indent=1))
    writer = CorpusWriter(world)
    docs = writer.write(out / "corpus.txt")
    writer.write_midtrain(out / "midtrain.txt")
    demos = world.demonstrations()
    write_jsonl(out / "sft.jsonl", demos)
    drills = world.task_drills()
    write_jsonl(out / "drills.jsonl", drills)
    pool = world.prompts("train", cfg.train_prompts, "pool")
    write_jsonl(out / "prompts_train.jsonl", (p.to_dict() for p in pool))
    evals = world.eval_prompts()
    write_jsonl(out / "eval.jsonl", (p.to_dict() for p in evals))
    return {"entities": len(world.kb.entities), "corpus_documents": docs,
            "corpus_chars": (out / "corpus.txt").stat().st_size,
            "midtrain_chars": (out / "midtrain.txt").stat().st_size, "sft_demos": len(demos),
            "task_drills": dict(Counter(d["task"] for d in drills)),
            "train_prompts": len(pool), "eval_prompts": len(evals),
            "sft_families": dict(Counter(d["family"] for d in demos)),
            "eval_families": dict(Counter(p.family for p in evals))}
