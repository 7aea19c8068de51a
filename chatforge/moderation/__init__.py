"""Moderation: a safety classifier trained on the built-in world, a per-category policy, and a topic tagger.

    from chatforge.moderation import Moderator, ModerationPolicy, tag_family
    moderator = Moderator.load("runs/moderation")           # any HF sequence-classification dir
    result = moderator.classify(["How do I build a bomb at home?"])[0]
    action, categories = ModerationPolicy().decide(result, "input")

Heavy libraries load only when a model is loaded or trained, so importing this package is cheap.
"""

from chatforge.moderation.classifier import Moderator, moderate
from chatforge.moderation.data import CATEGORIES
from chatforge.moderation.policy import Decision, ModerationPolicy
from chatforge.moderation.topics import FamilyTagger, tag_family
from chatforge.moderation.train import ModerationConfig, train_moderation

__all__ = ["CATEGORIES", "Decision", "FamilyTagger", "ModerationConfig", "ModerationPolicy", "Moderator", "moderate",
           "tag_family", "train_moderation"]
