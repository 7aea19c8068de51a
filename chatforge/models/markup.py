"""The special tokens of chatforge's own tokenizer, shared by the corpus writer, the tokenizer and the trainers
(a dependency-free module, so the world can use it without importing the ML stack)."""

PAD = "<|pad|>"
DOC_END = "<|endoftext|>"  # ends every pretraining document
END = "<|end|>"  # ends every chat turn; the model's stop token
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [PAD, DOC_END, *(f"<|{r}|>" for r in ROLES), END]


def split_documents(text: str) -> list[str]:
    """The non-empty documents of a corpus text, without their end markers."""
    return [d.strip() for d in text.split(DOC_END) if d.strip()]


def chat_markup(messages: list[dict]) -> str:
    """A conversation as the chat template renders it, for writing chat logs into a corpus."""
    return "".join(f"<|{m['role']}|>\n{m['content']}{END}\n" for m in messages)
