"""Token ids and loss masks for SFT: assistant tokens of conversations, every token of plain text.

Three ways to find the assistant's tokens, best first:
1. the chat template has `{% generation %}` markers (chatforge's own does): the tokenizer returns the mask;
2. TRL knows a training version of the template with markers (Qwen, Llama 3, Gemma, ...): use that one;
3. any other template: render the conversation prefix by prefix. The text added between "up to the
   generation prompt" and "up to the end of this assistant turn" is the assistant's, end-of-turn token
   included; character spans become token masks through the fast tokenizer's offsets.
"""

from __future__ import annotations

from chatforge.errors import ChatforgeError


def training_template(tokenizer) -> tuple[str | None, str]:
    """(a template with generation markers or None, which of the three ways applies)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return tokenizer.chat_template, "template-markers"
    try:
        patched = get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - TRL raises for templates it does not know; we mask those ourselves
        patched = None
    return (patched, "trl-training-template") if patched else (None, "chatforge-prefix-mask")


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    full = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], generation_prompt=True)) if i else 0
        upto = render(tokenizer, messages[:i + 1])
        if not full.startswith(upto) or start > len(upto):
            raise ChatforgeError("the chat template does not render conversations prefix by prefix, so "
                                 "assistant turns cannot be masked; add {% generation %} markers to it")
        spans.append((start, len(upto)))
    return full, spans


def tokenize_with_assistant_mask(tokenizer, messages: list[dict], max_length: int) -> dict:
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length)
    mask = [int(any(s <= a and b <= e and b > a for s, e in spans)) for a, b in enc["offset_mapping"]]
    return {"input_ids": enc["input_ids"], "assistant_masks": mask}


def tokenize_conversation(tokenizer, messages: list[dict], max_length: int, template: str | None) -> dict:
    if template is None:
        return tokenize_with_assistant_mask(tokenizer, messages, max_length)
    out = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, truncation=True, max_length=max_length)
    return {"input_ids": list(out["input_ids"]), "assistant_masks": list(out["assistant_masks"])}


def tokenize_text(tokenizer, text: str, max_length: int) -> dict:
    """A plain document, every token in the loss (the pretraining mix of SFT)."""
    ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return {"input_ids": ids, "assistant_masks": [1] * len(ids)}
