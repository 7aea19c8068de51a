"""Moderator: any HF sequence-classification model as an OpenAI-moderation-shaped classifier.

A multi-label model (or one with a single output) gives each category a sigmoid score; a single-label model
gives softmax probabilities, and its "safe" class (a label named safe/neutral/none/..., or class 0 of an
unnamed binary model) is not a category. A category is flagged when its score reaches its threshold (0.5
unless moderation_config.json or the caller says otherwise). Texts longer than the model's window are read in
overlapping windows and each category keeps its highest score, so a harmful marker at the end of a long reply
still counts. (A single-label model without a safe class flags whichever class wins: that is its meaning.)
"""

from __future__ import annotations

import json
from pathlib import Path

from chatforge.errors import ChatforgeError
from chatforge.models.loading import first_line

CONFIG_FILE = "moderation_config.json"
SAFE_LABELS = {"safe", "neutral", "none", "ok", "benign", "clean", "normal", "allowed", "non-toxic", "non_toxic",
               "not_toxic", "nontoxic", "not-toxic", "harmless", "unflagged"}


def resolve_dir(path: str | Path) -> Path:
    """The model directory: PATH itself, or PATH/model for a `train_moderation` output directory."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ChatforgeError(f"moderation model '{path}' not found")
    if p.is_dir() and not (p / "config.json").is_file() and (p / "model" / "config.json").is_file():
        p = p / "model"
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ChatforgeError(f"'{path}' is not a model directory (no config.json)")
    return p


class Moderator:
    def __init__(self, model, tokenizer, thresholds: dict[str, float] | None = None, max_length: int | None = None,
                 batch_size: int = 32, safe_labels: set[str] | None = None):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        cfg = model.config
        labels = [str(cfg.id2label.get(i, f"LABEL_{i}")) for i in range(cfg.num_labels)]
        # the HF text-classification pipeline's rule: sigmoid for multi-label or one output, else softmax
        self.multi_label = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
        safe = {s.lower() for s in (safe_labels or SAFE_LABELS)}
        keep = [i for i, name in enumerate(labels) if name.lower() not in safe]
        if not self.multi_label and len(keep) == len(labels) == 2:
            keep = [1]  # an unnamed binary classifier: class 0 is the negative (safe) class
        self.index = keep
        self.categories = [labels[i] for i in keep]
        if not self.categories:
            raise ChatforgeError("the moderation model has no category labels (all of them look like 'safe')")
        self.thresholds = dict.fromkeys(self.categories, 0.5)
        self.set_thresholds(thresholds or {})
        limits = [n for n in (max_length, getattr(cfg, "max_position_embeddings", None)) if n]
        self.max_length = min(limits + [512])

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        for cat, value in thresholds.items():
            if cat not in self.thresholds:
                raise ChatforgeError(f"threshold for unknown category '{cat}' "
                                     f"(the model has: {', '.join(self.categories)})")
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ChatforgeError(f"threshold for '{cat}' must be a number from 0 to 1, got {value!r}")
            self.thresholds[cat] = float(value)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, thresholds: dict[str, float] | None = None,
             batch_size: int = 32) -> "Moderator":
        """Load a model dir (or a `train_moderation` output dir); `thresholds` override per-category defaults."""
        p = resolve_dir(path)
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(str(p))
        except Exception as e:  # noqa: BLE001 - a broken config is the user's file, not our bug
            raise ChatforgeError(f"could not read the model config in '{path}': {first_line(e)}") from e
        archs = config.architectures or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ChatforgeError(f"'{path}' is not a sequence-classification model ({', '.join(archs)})")
        extra = json.loads((p / CONFIG_FILE).read_text()) if (p / CONFIG_FILE).is_file() else {}
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(p))
            model = AutoModelForSequenceClassification.from_pretrained(str(p)).to(device)
        except Exception as e:  # noqa: BLE001
            raise ChatforgeError(f"could not load moderation model from '{path}': {first_line(e)}") from e
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"
        moderator = cls(model, tokenizer, extra.get("thresholds"), extra.get("max_length"), batch_size)
        moderator.set_thresholds(thresholds or {})
        return moderator

    def scores(self, texts: list[str]) -> list[dict[str, float]]:
        """Per-category scores of each text."""
        import torch

        out = [dict.fromkeys(self.categories, 0.0) for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]  # an empty text is safe; models choke on 0 tokens
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            probs, owner = self._windows([texts[i] for i in batch])
            best = torch.zeros(len(batch), len(self.index))
            for window, row in enumerate(owner.tolist()):  # a text's score: its highest-scoring window
                best[row] = torch.maximum(best[row], probs[window, self.index])
            for row, i in enumerate(batch):
                out[i] = {c: round(float(s), 6) for c, s in zip(self.categories, best[row])}
        return out

    def _windows(self, texts: list[str]):
        """(probabilities of every window, index of the text each window belongs to)."""
        import torch

        tok, n = self.tokenizer, self.max_length
        if tok.is_fast:  # long texts split into overlapping windows
            enc = tok(texts, truncation=True, max_length=n, stride=n // 4, return_overflowing_tokens=True,
                      padding=True, return_tensors="pt")
            owner = enc.pop("overflow_to_sample_mapping")
        else:
            enc = tok(texts, truncation=True, max_length=n, padding=True, return_tensors="pt")
            owner = torch.arange(len(texts))
        enc = {k: v.to(self.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            logits = self.model(**enc).logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return probs.cpu(), owner.cpu()

    def classify(self, texts: list[str]) -> list[dict]:
        """[{"flagged", "categories": {cat: bool}, "category_scores": {cat: float}}] like OpenAI's moderation."""
        if isinstance(texts, str):
            texts = [texts]
        results = []
        for scores in self.scores(list(texts)):
            cats = {c: s >= self.thresholds[c] for c, s in scores.items()}
            results.append({"flagged": any(cats.values()), "categories": cats, "category_scores": scores})
        return results


def moderate(model: str | Path, texts: list[str], policy=None, role: str = "input") -> list[dict]:
    """What `chatforge moderate TEXT... --model DIR [--policy FILE] [--role input|output]` prints: each text's
    classification plus the policy's action and the categories behind it."""
    from chatforge.moderation.policy import ModerationPolicy

    policy = policy if isinstance(policy, ModerationPolicy) else ModerationPolicy.load(policy)
    moderator = Moderator.load(model)
    out = []
    for text, result in zip(texts, moderator.classify(texts)):
        decision = policy.decide(result, role)
        out.append({"text": text, **result, "action": decision.action, "triggered": decision.categories})
    return out
