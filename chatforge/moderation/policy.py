"""ModerationPolicy: what the server does when a category is flagged, for user inputs and for model outputs.

Actions, weakest to strongest: allow (ignore), log (record only), flag (record and open a triage item),
block (input: answer with the refusal instead of the model; output: replace the reply with the refusal).
A policy is JSON or TOML; top-level category keys apply to both roles, `[input]`/`[output]` tables override
them, `default` covers categories the policy does not name, and `[thresholds]` can make a category stricter
or looser than the moderator's own flag:

    default = "flag"
    refusal = "I'm sorry, but I can't help with that."
    toxic = "log"
    [output]
    weapons = "block"
    [thresholds]
    harassment = 0.8
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from chatforge.errors import ChatforgeError

ACTIONS = ("allow", "log", "flag", "block")
ROLES = ("input", "output")
REFUSAL = "I'm sorry, but I can't help with that."
# harmful requests are flagged for triage (the model should refuse on its own, and the refusal is worth seeing);
# replies that carry harm are blocked; insults and harassment in replies are flagged
DEFAULT_RULES = {
    "input": {"weapons": "flag", "malware": "flag", "drugs": "flag", "fraud": "flag", "harassment": "flag",
              "toxic": "log", "jailbreak": "flag"},
    "output": {"weapons": "block", "malware": "block", "drugs": "block", "fraud": "block", "harassment": "flag",
               "toxic": "flag", "jailbreak": "log"},
}


class Decision(NamedTuple):
    action: str  # allow | log | flag | block
    categories: list[str]  # every category that triggered an action, strongest action first


def _action(value, where: str) -> str:
    if value not in ACTIONS:
        raise ChatforgeError(f"moderation policy: unknown action {value!r} for {where} "
                             f"(choose from: {', '.join(ACTIONS)})")
    return value


@dataclass
class ModerationPolicy:
    rules: dict[str, dict[str, str]] = field(default_factory=lambda: {r: dict(DEFAULT_RULES[r]) for r in ROLES})
    default: str = "flag"  # action for a flagged category the rules do not name (a foreign model's labels)
    thresholds: dict[str, float] = field(default_factory=dict)  # override the moderator's per-category flag
    refusal: str = REFUSAL  # what the user sees instead of a blocked request or reply

    @classmethod
    def from_dict(cls, d: dict) -> "ModerationPolicy":
        """Validate a parsed policy; every mistake is one ChatforgeError naming the key."""
        if not isinstance(d, dict):
            raise ChatforgeError("moderation policy must be a table/object of category -> action")
        both, rules, thresholds = {}, {r: {} for r in ROLES}, {}
        default, refusal = "flag", REFUSAL
        for key, value in d.items():
            if key == "default":
                default = _action(value, "default")
            elif key == "refusal":
                if not isinstance(value, str) or not value.strip():
                    raise ChatforgeError("moderation policy: refusal must be a non-empty string")
                refusal = value
            elif key == "thresholds":
                if not isinstance(value, dict):
                    raise ChatforgeError("moderation policy: thresholds must be a table of category -> number")
                for cat, t in value.items():
                    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
                        raise ChatforgeError(f"moderation policy: threshold for '{cat}' must be a number from 0 "
                                             f"to 1, got {t!r}")
                    thresholds[cat] = float(t)
            elif key in ROLES:
                if not isinstance(value, dict):
                    raise ChatforgeError(f"moderation policy: '{key}' must be a table of category -> action")
                rules[key] = {cat: _action(a, f"{key}.{cat}") for cat, a in value.items()}
            elif isinstance(value, dict):
                raise ChatforgeError(f"moderation policy: unknown section '{key}' "
                                     "(sections: input, output, thresholds)")
            else:
                both[key] = _action(value, key)
        merged = {r: {**DEFAULT_RULES[r], **both, **rules[r]} for r in ROLES}
        return cls(merged, default, thresholds, refusal)

    @classmethod
    def from_string(cls, text: str) -> "ModerationPolicy":
        """JSON (starts with '{') or TOML."""
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise ChatforgeError(f"moderation policy is not valid JSON or TOML: {e}") from e
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> "ModerationPolicy":
        p = Path(path).expanduser()
        if not p.is_file():
            raise ChatforgeError(f"moderation policy file '{path}' not found")
        try:
            return cls.from_string(p.read_text())
        except ChatforgeError as e:
            raise ChatforgeError(f"{path}: {e}") from e

    @classmethod
    def load(cls, spec: "str | Path | dict | ModerationPolicy | None" = None) -> "ModerationPolicy":
        """None → the default policy; a dict; a file path; or the policy text itself."""
        if spec is None:
            return cls()
        if isinstance(spec, ModerationPolicy):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and not spec.lstrip().startswith("{")
                                      and "=" not in spec):
            return cls.from_file(spec)
        return cls.from_string(spec)

    parse = load  # the name the server's config uses

    def to_dict(self) -> dict:
        return {"default": self.default, "refusal": self.refusal, "thresholds": dict(self.thresholds),
                **{r: dict(self.rules[r]) for r in ROLES}}

    def check_categories(self, categories: list[str]) -> None:
        """Fail on policy categories the moderator lacks (a typo like 'weapon' would otherwise never fire).
        The built-in defaults are exempt: they only matter when the model has those categories."""
        named = {c for r in ROLES for c, a in self.rules[r].items() if DEFAULT_RULES[r].get(c) != a}
        unknown = sorted((named | set(self.thresholds)) - set(categories))
        if unknown:
            raise ChatforgeError(f"moderation policy names categories the model does not have: {', '.join(unknown)} "
                                 f"(the model has: {', '.join(categories)})")

    def action_for(self, category: str, role: str) -> str:
        return self.rules[role].get(category, self.default)

    def decide(self, result: dict, role: str = "output") -> Decision:
        """The strongest action among the categories `result` (one Moderator.classify item) triggers."""
        if role not in ROLES:
            raise ChatforgeError(f"unknown moderation role '{role}' (choose from: {', '.join(ROLES)})")
        scores, flags = result.get("category_scores", {}), result.get("categories", {})
        triggered = []
        for cat, flagged in flags.items():
            if cat in self.thresholds and cat in scores:
                flagged = scores[cat] >= self.thresholds[cat]
            action = self.action_for(cat, role)
            if flagged and action != "allow":
                triggered.append((ACTIONS.index(action), cat))
        if not triggered:
            return Decision("allow", [])
        triggered.sort(key=lambda t: -t[0])
        return Decision(ACTIONS[triggered[0][0]], [cat for _, cat in triggered])
