"""SFT: the loss falls on assistant tokens only, for chatforge's template and for other models' templates."""

import json

import pytest
from transformers import AutoTokenizer

from chatforge.train.masking import tokenize_with_assistant_mask
from chatforge.train.sft import SFTConfig, build_trainer, sft

CONVERSATION = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome!"},
]


def masked_text(tok, ids, mask):
    return tok.decode([i for i, m in zip(ids, mask) if m])


def test_chatforge_template_marks_exactly_the_assistant_turns(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    out = tok.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    assert masked_text(tok, out["input_ids"], out["assistant_masks"]) == "2 + 3 = 5.<|end|>You're welcome!<|end|>"
    # chatforge's own prefix masking (for templates without markers) finds the same tokens
    ours = tokenize_with_assistant_mask(tok, CONVERSATION, 512)
    assert ours["input_ids"] == out["input_ids"] and ours["assistant_masks"] == out["assistant_masks"]


def test_tokenizer_splits_digits_and_marks_where_a_number_starts(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    assert tok.tokenize("52 + 89 = 141.") == ["5", "2", "Ġ+", "Ġ8", "9", "Ġ=", "Ġ1", "4", "1", "."]
    assert tok.decode(tok("So 3100 cm.")["input_ids"]) == "So 3100 cm."


def test_sft_labels_ignore_everything_but_assistant_tokens(tiny_model_dir, conversations_file, tmp_path):
    cfg = SFTConfig(data=str(conversations_file([CONVERSATION])), model=str(tiny_model_dir),
                    output_dir=str(tmp_path / "out"), epochs=1)
    trainer, tok, info = build_trainer(cfg, progress=False)
    row = trainer.train_dataset[0]
    labels = row["labels"]
    assert info["assistant_mask"] == "template-markers"
    assert all(label == -100 or label == i for i, label in zip(row["input_ids"], labels))
    trained = tok.decode([label for label in labels if label != -100])
    assert trained == "2 + 3 = 5.<|end|>You're welcome!<|end|>"
    assert "What is" not in trained and "Thanks" not in trained


@pytest.mark.slow
def test_sft_teaches_the_answer_and_only_the_answer(tiny_model_dir, conversations_file, tmp_path):
    """A few hundred steps on two conversations: the model now says the assistant lines, and is no better
    at predicting the user's lines than before (they carried no loss)."""
    import torch

    from chatforge.models.generate import reply
    from chatforge.models.loading import load_model

    convs = [[{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi! How can I help?"}],
             [{"role": "user", "content": "Are you a human?"}, {"role": "assistant", "content": "No, I am an AI."}]]
    out = tmp_path / "sft"
    metrics = sft(SFTConfig(data=str(conversations_file(convs)), model=str(tiny_model_dir), output_dir=str(out),
                            epochs=60, batch_size=2, learning_rate=5e-3, save_every=1000), progress=False)
    assert metrics["final_loss"] < 0.5
    model, tok = load_model(str(out / "model"))
    assert reply(model, tok, [convs[1][:1]])[0] == "No, I am an AI."

    def user_loss(path):
        m, t = load_model(str(path))
        ids = t.apply_chat_template(convs[1], return_dict=True, return_assistant_tokens_mask=True)
        x = torch.tensor([ids["input_ids"]])
        labels = x.clone()
        labels[0, torch.tensor(ids["assistant_masks"]) == 1] = -100  # score the user's tokens only
        with torch.no_grad():
            return m(input_ids=x, labels=labels).loss.item()

    assert user_loss(out / "model") > 0.8 * user_loss(tiny_model_dir)


def gpt2_with_its_own_template(tmp_path, corpus):
    """A tiny GPT-2 with a GPT-2-style byte-level tokenizer and a '### User / ### Assistant' template that
    has no generation markers: nothing chatforge- or TRL-specific."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train([str(corpus)], trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                 show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = ("{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}"
                         "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                         "{% if add_generation_prompt %}### Assistant:\n{% endif %}")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=64, n_layer=2, n_head=2,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id))
    out = tmp_path / "gpt2"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.mark.slow
def test_sft_on_a_gpt2_with_its_own_template(tiny_world, conversations_file, tmp_path):
    from chatforge.models.generate import reply
    from chatforge.models.loading import load_model

    base = gpt2_with_its_own_template(tmp_path, tiny_world / "corpus.txt")
    convs = [[{"role": "user", "content": "Are you a human?"}, {"role": "assistant", "content": "No, I am an AI."}]]
    cfg = SFTConfig(data=str(conversations_file(convs)), model=str(base), output_dir=str(tmp_path / "out"),
                    epochs=80, batch_size=1, learning_rate=5e-3, save_every=1000)
    trainer, tok, info = build_trainer(cfg, progress=False)
    assert info["assistant_mask"] == "chatforge-prefix-mask"
    row = trainer.train_dataset[0]
    assert tok.decode([x for x in row["labels"] if x != -100]) == "No, I am an AI.<|endoftext|>"
    metrics = sft(cfg, progress=False)
    assert metrics["final_loss"] < 0.5
    model, tok = load_model(str(tmp_path / "out" / "model"))
    assert reply(model, tok, [convs[0][:1]])[0] == "No, I am an AI."


@pytest.mark.slow
def test_sft_on_a_qwen2_with_the_qwen_template(tiny_tokenizer_dir, conversations_file, tmp_path):
    """Qwen2.5's own template has no generation markers; TRL knows how to patch it."""
    from pathlib import Path

    import trl
    from transformers import Qwen2Config, Qwen2ForCausalLM

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template, tok.eos_token = template, "<|im_end|>"
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    base = tmp_path / "qwen2"
    model.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    cfg = SFTConfig(data=str(conversations_file([CONVERSATION])), model=str(base), output_dir=str(tmp_path / "o"),
                    epochs=1)
    trainer, tok, info = build_trainer(cfg, progress=False)
    assert info["assistant_mask"] == "trl-training-template"
    trained = tok.decode([x for x in trainer.train_dataset[0]["labels"] if x != -100])
    assert "2 + 3 = 5." in trained and "You're welcome!" in trained and "What is" not in trained


def test_pretraining_mix_trains_on_every_token_of_a_document(tiny_model_dir, tiny_world, conversations_file, tmp_path):
    cfg = SFTConfig(data=str(conversations_file([CONVERSATION] * 4)), model=str(tiny_model_dir),
                    output_dir=str(tmp_path / "out"), text_data=str(tiny_world / "corpus.txt"), text_mix=0.5)
    trainer, tok, info = build_trainer(cfg, progress=False)
    assert info["text_documents"] == 2 and len(trainer.train_dataset) == 6
    docs = [row for row in trainer.train_dataset if -100 not in row["labels"]]
    assert len(docs) == 2 and all(row["labels"] == row["input_ids"] for row in docs)
    assert tok.decode(docs[0]["input_ids"]).endswith("<|endoftext|>")


def test_drills_train_beside_the_demonstrations_and_do_not_draw_more_documents(tiny_model_dir, tiny_world,
                                                                               conversations_file, tmp_path):
    """drill_data (a world's drills.jsonl) adds conversations, masked like the demonstrations; the pretraining mix
    stays sized by the demonstrations alone."""
    drills = [json.loads(line) for line in (tiny_world / "drills.jsonl").read_text().splitlines()][:6]
    cfg = SFTConfig(data=str(conversations_file([CONVERSATION] * 4)), model=str(tiny_model_dir),
                    output_dir=str(tmp_path / "out"), text_data=str(tiny_world / "corpus.txt"), text_mix=0.5,
                    drill_data=str(conversations_file([d["messages"] for d in drills], "drills.jsonl")))
    trainer, tok, info = build_trainer(cfg, progress=False)
    assert (info["conversations"], info["drills"], info["text_documents"]) == (4, 6, 2)
    assert len(trainer.train_dataset) == 12
    trained = [tok.decode([t for t in row["labels"] if t != -100]) for row in trainer.train_dataset]
    assert sum(t == d["messages"][1]["content"] + "<|end|>" for d in drills for t in trained) == 6


def test_cpu_trainer_loss_is_trls_loss(tiny_model_dir, conversations_file, tmp_path):
    """On a CPU the loss comes from the full logits instead of TRL's chunked LM head: the same number."""
    import torch
    from trl import SFTTrainer

    convs = [CONVERSATION, [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello there."}]]
    cfg = SFTConfig(data=str(conversations_file(convs)), model=str(tiny_model_dir), output_dir=str(tmp_path / "o"))
    trainer, _, _ = build_trainer(cfg, progress=False)
    assert type(trainer).__name__ == "CPUSFTTrainer"
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch))
        trls = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    assert abs(ours.item() - trls.item()) < 1e-4
