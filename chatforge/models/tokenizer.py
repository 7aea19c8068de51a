"""A byte-level BPE tokenizer trained on the corpus, with a chat template, saved as a normal HF tokenizer.

Digits are split one per token so that arithmetic is learnable by a small model, and the space before a number
stays with its first digit (" 31" is "Ġ3" "1"): a number then starts with a token that marks where it starts, which
copying it out of a question needs. On one corpus, after mid-training, the small demo SFT model solved 20% of held-out
tasks with a bare "Ġ" before every number (it copied no number) and 40% with this; without mid-training, 20% either
way. The chat template wraps each turn as `<|role|>\\n...<|end|>\\n`, the same markup the corpus's chat logs use, and
marks assistant turns with `{% generation %}` so TRL (and anyone) can train on assistant tokens only.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from chatforge.models.markup import END, PAD, SPECIAL_TOKENS

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}\n"
    "{% else %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(corpus: Path, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        # one digit per piece, the space before a number kept with its first digit: " 31" is "Ġ3" "1"
        pre_tokenizers.Split(Regex(r" ?\d"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(corpus)], trainer)
    return wrap(tok)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END, pad_token=PAD,
                                 additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (END, PAD)])
    hf.chat_template = CHAT_TEMPLATE
    hf.padding_side = "left"  # generation pads on the left; trainers set their own side
    return hf
