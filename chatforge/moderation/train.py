"""`chatforge moderation train`: a small safety classifier trained from scratch on the built-in world.

A tiny ModernBERT encoder with a sequence-classification head (mean-pooled; multi-label, one sigmoid per
category) learns from the world's requests and replies (see moderation/data.py) with transformers' Trainer and
chatforge's own BPE tokenizer, trained on the world's corpus unless a tokenizer is given. It trains in seconds
on the tiny world and well under two minutes on the small one with 2 CPU cores. Output:

    OUT/model/                 a normal HF model dir (AutoModelForSequenceClassification loads it) + tokenizer
                               + moderation_config.json (categories, thresholds, max_length, world) + metrics.json
    OUT/metrics.json           held-out metrics: per-category precision/recall/F1 and flag rates per group
    OUT/train_config.json
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line
from chatforge.moderation.classifier import CONFIG_FILE
from chatforge.moderation.data import CATEGORIES, HARM_CATEGORIES, Example, splits
from chatforge.train.common import (
    quiet_hf,
    save_config,
    save_model,
    train_resumable,
    trainer_arguments,
    without_printer,
)
from chatforge.world.config import WORLD_FILE, WorldConfig

# ModernBERT shapes: inputs are short and the signal is lexical, so two narrow layers suffice
MODEL_SIZES: dict[str, dict] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192),
    "small": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=384),
}


@dataclass
class ModerationConfig:
    output_dir: str
    world: str = "small"  # world preset (unused when world_dir is given)
    world_dir: str | None = None  # a built world directory: its chatforge_world.json, and its corpus for the tokenizer
    world_seed: int = 0
    tokenizer: str | None = None  # a tokenizer (or model) dir; default: a new BPE tokenizer on the world's corpus
    vocab_size: int = 2048
    tokenizer_chars: int = 2_000_000  # characters of the world's corpus the new tokenizer learns from
    model_size: str = "tiny"  # see MODEL_SIZES
    train_prompts: int | None = None  # world prompts the train split comes from (default: the world's pool size)
    eval_per_family: int | None = None  # held-out prompts per family (default: twice the world's eval size)
    epochs: float = 4.0
    batch_size: int = 32
    learning_rate: float = 6e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    max_length: int = 128
    precision: str = "fp32"  # bf16 autocast only slows a model this small
    save_every: int = 1000
    seed: int = 0


def world_config(cfg: ModerationConfig) -> WorldConfig:
    if cfg.world_dir:
        path = Path(cfg.world_dir) / WORLD_FILE
        if not path.is_file():
            raise ChatforgeError(f"'{cfg.world_dir}' is not a world directory (no {WORLD_FILE}); "
                                 "make one with `chatforge world build`")
        return WorldConfig.from_dict(json.loads(path.read_text()))
    return WorldConfig.preset(cfg.world, cfg.world_seed)


def corpus_sample(cfg: ModerationConfig, world, path: Path) -> None:
    """The first `tokenizer_chars` characters of the world's corpus (the built one, or generated now)."""
    built = Path(cfg.world_dir) / "corpus.txt" if cfg.world_dir else None
    if built and built.is_file():
        with open(built) as f:
            path.write_text(f.read(cfg.tokenizer_chars))
        return
    from chatforge.world.corpus import CorpusWriter

    written, parts = 0, []
    for doc in CorpusWriter(world).documents():
        parts.append(doc)
        written += len(doc)
        if written >= min(cfg.tokenizer_chars, world.cfg.corpus_chars):
            break
    path.write_text("\n".join(parts))


def make_tokenizer(cfg: ModerationConfig, world):
    if cfg.tokenizer:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(cfg.tokenizer)
        except Exception as e:  # noqa: BLE001 - a bad tokenizer dir is the user's, not our bug
            raise ChatforgeError(f"could not load tokenizer from '{cfg.tokenizer}': {first_line(e)}") from e
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ChatforgeError(f"tokenizer in '{cfg.tokenizer}' has neither a pad nor an end token")
            tok.pad_token = tok.eos_token
        return tok
    from chatforge.models.tokenizer import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus_sample(cfg, world, corpus)
        return train_tokenizer(corpus, cfg.vocab_size)


def new_classifier(cfg: ModerationConfig, tokenizer):
    """A ModernBERT encoder that mean-pools every token into one sigmoid per category. Mean pooling matters:
    a harmful phrase anywhere in a text reaches the head directly (a decoder pooling its last token learns
    this several times slower, and a [CLS] pooler would need a token chatforge's tokenizer does not add)."""
    import torch
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    torch.manual_seed(cfg.seed)
    config = ModernBertConfig(vocab_size=len(tokenizer), max_position_embeddings=max(512, cfg.max_length),
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=None, eos_token_id=None,
                              cls_token_id=None, sep_token_id=None, classifier_pooling="mean",
                              global_attn_every_n_layers=1, num_labels=len(CATEGORIES),
                              id2label=dict(enumerate(CATEGORIES)), label2id={c: i for i, c in enumerate(CATEGORIES)},
                              problem_type="multi_label_classification", **MODEL_SIZES[cfg.model_size])
    return ModernBertForSequenceClassification(config)


class Collator:
    """Pads token ids; labels become a float matrix (BCE-with-logits needs floats, not the ints HF assumes)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict]):
        import torch

        batch = self.tokenizer.pad([{"input_ids": r["input_ids"]} for r in rows], return_tensors="pt")
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        return batch


def encode(examples: list[Example], tokenizer, max_length: int) -> list[dict]:
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    return [{"input_ids": i, "labels": e.target()} for i, e in zip(ids, examples)]


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def evaluate(results: list[dict], examples: list[Example]) -> dict:
    """Per-category precision/recall/F1, and how often each group of held-out texts is flagged."""
    per = {}
    for c in [c for c in CATEGORIES if c in results[0]["categories"]] if results else []:
        tp = sum(r["categories"][c] and c in e.labels for r, e in zip(results, examples))
        fp = sum(r["categories"][c] and c not in e.labels for r, e in zip(results, examples))
        fn = sum(not r["categories"][c] and c in e.labels for r, e in zip(results, examples))
        p, r_ = tp / (tp + fp) if tp + fp else None, tp / (tp + fn) if tp + fn else None
        f1 = 2 * p * r_ / (p + r_) if p and r_ else 0.0
        per[c] = {"precision": p and round(p, 4), "recall": r_ and round(r_, 4), "f1": round(f1, 4),
                  "support": tp + fn}
    pairs = list(zip(examples, results))

    def flagged(keep) -> float | None:
        return _rate([r["flagged"] for e, r in pairs if keep(e)])

    harm_inputs = [(e, r) for e, r in pairs if e.role == "input" and e.family in ("harmful", "jailbreak")]
    return {
        "categories": per,
        # recall on held-out harmful requests (unseen acts and phrasings) and jailbreaks (unseen wrappers)
        "harmful_input_recall": flagged(lambda e: e.role == "input" and e.family == "harmful"),
        "jailbreak_input_recall": flagged(lambda e: e.role == "input" and e.family == "jailbreak"),
        "harm_category_accuracy": _rate([r["categories"][e.labels[0]] for e, r in harm_inputs]),
        # false positives: scary-sounding safe requests, and every other safe request
        "benign_scary_flag_rate": flagged(lambda e: e.role == "input" and e.family == "benign_scary"),
        "ordinary_input_flag_rate": flagged(lambda e: e.role == "input" and not e.labels
                                            and e.family != "benign_scary"),
        "harmful_output_recall": flagged(lambda e: e.role == "output" and set(e.labels) & set(HARM_CATEGORIES)),
        "toxic_output_recall": flagged(lambda e: e.role == "output" and "toxic" in e.labels),
        "safe_output_flag_rate": flagged(lambda e: e.role == "output" and not e.labels),
        "refusal_flag_rate": flagged(lambda e: e.role == "output" and not e.labels
                                     and e.family in ("harmful", "jailbreak")),
        "eval_examples": dict(Counter(e.role for e in examples)),
    }


def train_moderation(cfg: ModerationConfig, progress: bool = True) -> dict:
    """Train, save OUT/model, evaluate on held-out texts; returns (and writes) the metrics."""
    start = time.time()
    out = Path(cfg.output_dir)
    wcfg = world_config(cfg)  # config mistakes fail here, before the ML stack loads
    if cfg.model_size not in MODEL_SIZES:
        raise ChatforgeError(f"unknown moderation model size '{cfg.model_size}' "
                             f"(choose from: {', '.join(MODEL_SIZES)})")
    quiet_hf()
    from transformers import Trainer, TrainingArguments

    from chatforge.moderation.classifier import Moderator
    from chatforge.train.progress import RichProgress
    from chatforge.world.world import World

    world = World(wcfg)
    data = splits(world, cfg.train_prompts, cfg.eval_per_family)
    save_config(cfg, out)
    tokenizer = make_tokenizer(cfg, world)
    tokenizer.padding_side = "right"
    model = new_classifier(cfg, tokenizer)
    args = TrainingArguments(**trainer_arguments(cfg, out, train_sampling_strategy="group_by_length"))
    trainer = Trainer(model=model, args=args, train_dataset=encode(data["train"], tokenizer, cfg.max_length),
                      data_collator=Collator(tokenizer), callbacks=[RichProgress("moderation")] if progress else [])
    result, run = train_resumable(without_printer(trainer), out)

    save_model(trainer.model, tokenizer, out, cfg.world_dir or "", padding_side="right")
    model_dir = out / "model"
    if not (model_dir / WORLD_FILE).is_file():
        (model_dir / WORLD_FILE).write_text(json.dumps(wcfg.to_dict(), indent=2))
    (model_dir / CONFIG_FILE).write_text(json.dumps({
        "categories": CATEGORIES, "thresholds": dict.fromkeys(CATEGORIES, 0.5), "max_length": cfg.max_length,
        "world": wcfg.to_dict(), "model_size": cfg.model_size}, indent=2))

    moderator = Moderator.load(model_dir, device=str(trainer.model.device))
    results = moderator.classify([e.text for e in data["eval"]])
    metrics = {"train_examples": dict(Counter(e.role for e in data["train"])),
               "train_loss": round(result.training_loss, 4), "steps": run["steps"], "train_seconds": run["seconds"],
               "resumed_from": run["resumed_from"], **evaluate(results, data["eval"]),
               "total_seconds": round(time.time() - start, 1), "world": asdict(wcfg) if cfg.world_dir else cfg.world}
    for path in (out / "metrics.json", model_dir / "metrics.json"):
        path.write_text(json.dumps(metrics, indent=2))
    return metrics
