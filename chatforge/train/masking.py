"""Assistant-only loss masks for chat templates that have no `{% generation %}` markers.

TRL masks assistant tokens through `{% generation %}` markers in the template, and patches a list of known
templates that lack them. For any other template (a GPT-2 with a home-made template, say) we find the
assistant spans by rendering growing prefixes of the conversation: the text added between "up to the
generation prompt" and "up to the end of this assistant turn" is the assistant's, end-of-turn token
included. Character spans become token masks through the fast tokenizer's offsets.
"""

from __future__ import annotations

from chatforge.errors import ChatforgeError


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
