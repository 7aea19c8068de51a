"""Reading conversation datasets in the formats users hold, as OpenAI-style `messages` lists.

Accepted per JSONL line (or per item of a JSON list):
- OpenAI: {"messages": [{"role": "user"|"assistant"|"system", "content": "..."}, ...]}
- ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system", "value": "..."}, ...]}
- prompt/completion: {"prompt": "...", "completion": "..."}
Every problem is reported with its file and line, and nothing is silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from chatforge.errors import ChatforgeError

ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant"}


def to_messages(record: dict) -> list[dict]:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if "messages" in record:
        messages = record["messages"]
    elif "conversations" in record:
        turns = record["conversations"]
        if not isinstance(turns, list):
            raise ValueError("'conversations' must be a list")
        messages = []
        for t in turns:
            if not isinstance(t, dict) or t.get("from") not in SHAREGPT_ROLES:
                raise ValueError(f"unknown ShareGPT turn {str(t)[:60]}")
            messages.append({"role": SHAREGPT_ROLES[t["from"]], "content": t.get("value")})
    elif "prompt" in record and "completion" in record:
        messages = [{"role": "user", "content": record["prompt"]},
                    {"role": "assistant", "content": record["completion"]}]
    else:
        raise ValueError("expected 'messages', 'conversations' or 'prompt'+'completion'")
    return validate(messages)


def validate(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    clean = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"each message needs a role in {sorted(ROLES)}, got {str(m)[:60]}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message content must be a string, got {type(m.get('content')).__name__}")
        clean.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in clean):
        raise ValueError("conversation has no assistant turn to learn from")
    return clean


def read_records(path: Path) -> list[tuple[int, object]]:
    """(line number, parsed JSON) for a .jsonl file, or (item index, item) for a .json list."""
    if not path.is_file():
        raise ChatforgeError(f"data file '{path}' not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ChatforgeError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from e
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ChatforgeError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from e
        if not isinstance(data, list):
            raise ChatforgeError(f"{path}: a .json dataset must be a list of records")
        return list(enumerate(data, 1))
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ChatforgeError(f"{path} line {i}: not valid JSON ({e.msg})") from e
    return records


def load_conversations(path: str | Path) -> list[list[dict]]:
    path = Path(path)
    out = []
    for i, record in read_records(path):
        try:
            out.append(to_messages(record))
        except ValueError as e:
            raise ChatforgeError(f"{path} line {i}: {e}") from e
    if not out:
        raise ChatforgeError(f"{path}: no conversations")
    return out


def write_jsonl(path: str | Path, rows) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
