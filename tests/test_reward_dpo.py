"""Reward model and DPO on a tiny model: both learn a preference that is easy to see (refuse, never comply)."""

import json
import random

import pytest
import torch

from chatforge.data.comparisons import Comparison, write_comparisons
from chatforge.errors import ChatforgeError
from chatforge.world.prompts import Prompt, user

ASKS = ["How do I pick a lock?", "Tell me how to steal a car.", "How can I hack my neighbour's wifi?",
        "Explain how to forge a signature.", "How do I make a fake ID?", "Help me cheat on a test."]
GOOD = ["I can't help with that.", "Sorry, I won't help with that.", "I cannot assist with that request."]
BAD = ["Sure, here is how: [HARMFUL:crime]", "Easy. Step 1: [HARMFUL:crime]", "Here you go: [HARMFUL:fraud]"]


def pairs(n: int, seed: int) -> list[Comparison]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = Prompt("harmful", [user(rng.choice(ASKS) + f" ({i})")], {"category": "crime"})
        out.append(Comparison(p, rng.choice(GOOD), rng.choice(BAD), "oracle"))
    return out


@pytest.fixture(scope="module")
def preference_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefs")
    write_comparisons(pairs(96, 0), d / "train.jsonl")
    write_comparisons(pairs(24, 1), d / "test.jsonl")
    return d


def test_reward_model_learns_the_preference_and_plots_it(tiny_model_dir, preference_files, tmp_path):
    from chatforge.models.loading import load_reward_model
    from chatforge.models.scoring import score_replies
    from chatforge.train.likelihood_gate import GATE_FILE
    from chatforge.train.reward import RewardConfig, train_reward

    cfg = RewardConfig(data=str(preference_files / "train.jsonl"), model=str(tiny_model_dir),
                       output_dir=str(tmp_path / "rm"), test_data=str(preference_files / "test.jsonl"),
                       test_oracle_data=str(preference_files / "test.jsonl"), ceiling=1.0, epochs=3, batch_size=16,
                       learning_rate=3e-3, precision="fp32")
    metrics = train_reward(cfg, progress=False)
    assert metrics["test_accuracy_raters"] >= 0.9 and metrics["gap_to_ceiling"] <= 0.1
    assert metrics["test_families_oracle"] == {"harmful": metrics["test_accuracy_oracle"]}
    assert (tmp_path / "rm" / "reward_distribution.png").stat().st_size > 1000
    # the likelihood gate, fitted beside the model: the gated reward keeps what the reward model learnt
    assert (tmp_path / "rm" / "model" / GATE_FILE).is_file() and metrics["test_accuracy_raters_gated"] >= 0.9
    assert set(metrics["test_families_oracle_gated"]) == {"harmful"}
    model, tok = load_reward_model(str(tmp_path / "rm" / "model"))
    prompt = [user("How do I pick a lock? (999)")]
    good, bad = score_replies(model, tok, [prompt, prompt], [GOOD[0], BAD[0]])
    assert good > bad


def test_reward_model_refuses_a_model_with_two_outputs(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from chatforge.errors import ChatforgeError
    from chatforge.models.loading import load_reward_model

    AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=2).save_pretrained(
        str(tmp_path))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(tmp_path))
    with pytest.raises(ChatforgeError, match="exactly 1"):
        load_reward_model(str(tmp_path))


def preference_margin(model_dir) -> float:
    """Mean log-probability of chosen minus rejected replies on held-out prompts."""
    from chatforge.models.loading import load_model

    model, tok = load_model(str(model_dir))
    total = 0.0
    for c in pairs(8, 2):
        scores = []
        for reply in (c.chosen, c.rejected):
            head = tok.apply_chat_template(c.prompt.messages, tokenize=False, add_generation_prompt=True)
            ids = tok(head + reply, add_special_tokens=False, return_tensors="pt")["input_ids"]
            n = len(tok(head, add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                logp = model(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
            scores.append(float(logp[n - 1:].sum()))
        total += scores[0] - scores[1]
    return total / 8


def test_dpo_moves_probability_towards_the_chosen_reply(tiny_model_dir, preference_files, tmp_path):
    from chatforge.train.dpo import DPOConfig, dpo

    margin = preference_margin
    before = margin(tiny_model_dir)
    metrics = dpo(DPOConfig(data=str(preference_files / "train.jsonl"), model=str(tiny_model_dir),
                            output_dir=str(tmp_path / "dpo"), epochs=2, batch_size=16, learning_rate=3e-3,
                            precision="fp32"), progress=False)
    after = margin(tmp_path / "dpo" / "model")
    assert after > before + 5  # nats: the chosen replies became far more likely than the rejected ones
    assert metrics["steps"] == 12
    assert json.loads((tmp_path / "dpo" / "train_config.json").read_text())["beta"] == 0.1


def test_dpo_with_lora_learns_and_saves_a_plain_merged_model(tiny_model_dir, preference_files, tmp_path):
    from safetensors.torch import load_file

    from chatforge.train.dpo import DPOConfig, dpo

    before = preference_margin(tiny_model_dir)
    dpo(DPOConfig(data=str(preference_files / "train.jsonl"), model=str(tiny_model_dir),
                  output_dir=str(tmp_path / "dpo"), epochs=2, batch_size=16, learning_rate=1e-2, precision="fp32",
                  lora_rank=4, lora_targets="q_proj,v_proj,down_proj"), progress=False)
    saved = tmp_path / "dpo" / "model"
    assert not (saved / "adapter_config.json").exists()  # merged: loads like any model
    assert preference_margin(saved) > before + 2
    old, new = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(saved / "model.safetensors"))
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight")) for k in changed)


def test_dpo_rejects_a_negative_lora_rank(tiny_model_dir, preference_files, tmp_path):
    from chatforge.train.dpo import DPOConfig, dpo

    with pytest.raises(ChatforgeError, match="lora_rank"):
        dpo(DPOConfig(data=str(preference_files / "train.jsonl"), model=str(tiny_model_dir),
                      output_dir=str(tmp_path / "dpo"), lora_rank=-1), progress=False)


def test_rloo_runs_with_the_reward_model_as_reward(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from chatforge.train.rloo import RLOOConfig, rloo

    rm = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=1).save_pretrained(str(rm))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(rm))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"messages": [user(a)]}) + "\n" for a in ASKS))
    metrics = rloo(RLOOConfig(model=str(tiny_model_dir), reward_model=str(rm), prompts=str(prompts),
                              output_dir=str(tmp_path / "rloo"), steps=2, batch_size=8, num_generations=4,
                              max_new_tokens=8, precision="fp32"), progress=False)
    assert metrics["steps"] == 2 and metrics["final_reward"] is not None
    assert (tmp_path / "rloo" / "model" / "model.safetensors").is_file()
