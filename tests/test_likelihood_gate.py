"""The likelihood gate (train/likelihood_gate.py): its arithmetic by hand, a fit that finds where the likelihood
counts, features that match one conversation at a time, and PPO adding the gate's term to the reward."""

import math

import pytest
import torch

from chatforge.errors import ChatforgeError
from chatforge.train.likelihood_gate import (
    LikelihoodGate,
    features,
    fit_gate,
    gated_margins,
    prompt_states,
    reply_stats,
    reply_tokens,
)


def gate(a=2.0, w=None, b=(0.0, 0.0), hidden=3) -> LikelihoodGate:
    return LikelihoodGate(torch.tensor(a), torch.zeros(hidden, 2) if w is None else torch.tensor(w),
                          torch.tensor(b), torch.zeros(hidden), torch.ones(hidden))


def test_reply_stats_ignore_padding_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -9.0, -9.0]])
    mean, low = reply_stats(logp, torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert torch.allclose(mean, torch.tensor([-2.0, -0.5])) and torch.allclose(low, torch.tensor([-3.0, -0.5]))


def test_bonus_by_hand():
    # W = 0, b = 0: both weights are softplus(0) = ln 2 whatever the prompt; a = 2:
    #   bonus = ln 2 · (mean + min) / 2 = ln 2 · (−1 − 3) / 2 = −2 ln 2
    g = gate()
    assert g.bonus(torch.randn(1, 3), torch.tensor([-1.0]), torch.tensor([-3.0])).item() == pytest.approx(
        -2 * math.log(2))
    # W reads the first hidden unit into the mean's weight: h = [2, 0, 0] → softplus(2·1.5 − 3) = ln 2 for the
    # mean, softplus(−3) for the min; h = [−2, 0, 0] → softplus(−6) ≈ 0.0025 for the mean
    g = gate(a=1.0, w=[[1.5, 0.0], [0.0, 0.0], [0.0, 0.0]], b=(-3.0, -3.0))
    w = g.weights(torch.tensor([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]]))
    assert torch.allclose(w[:, 0], torch.tensor([math.log(2), math.log1p(math.exp(-6))]), atol=1e-6)
    assert (w >= 0).all()  # never pays for unlikely text


def test_fit_finds_where_the_likelihood_counts():
    """Half the prompts (hidden unit 0 > 0, "facts") are decided by the likelihood, which the reward model cannot
    see; the other half by the reward model, with a likelihood that says nothing. The gated reward gets the facts
    right and keeps the rest, and the gate opens on the facts only."""
    g = torch.Generator().manual_seed(0)
    n = 600
    states = torch.randn(n, 4, generator=g)
    states[:, 0] = states[:, 0].sign() * (1 + states[:, 0].abs())  # two kinds of prompt, apart
    facts = states[:, 0] > 0
    d_mean = torch.where(facts, torch.rand(n, generator=g) * 0.5 + 0.1, torch.randn(n, generator=g))
    d_r = torch.where(facts, torch.randn(n, generator=g) * 0.3, torch.rand(n, generator=g) + 0.2)
    deltas = torch.stack([d_r, d_mean, torch.randn(n, generator=g) * 0.1], dim=1)
    fitted = fit_gate(deltas, states, reg=0.001)
    right = gated_margins(fitted, deltas, states) > 0
    assert right[facts].float().mean() > 0.95 > (d_r[facts] > 0).float().mean()
    assert right[~facts].float().mean() > 0.95
    w = fitted.weights(torch.tensor([[2.0, 0, 0, 0], [-2.0, 0, 0, 0]]))
    assert w[0, 0] > 5 * w[1, 0]


def test_save_load_round_trip_and_a_bad_file(tmp_path):
    g = gate(w=[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], b=(0.5, -0.5))
    g.save(tmp_path / "gate.safetensors", reference="sft/model")
    back = LikelihoodGate.load(tmp_path / "gate.safetensors")
    assert all(torch.equal(getattr(g, k), getattr(back, k)) for k in ("a", "w", "b", "mu", "sd"))
    with pytest.raises(ChatforgeError, match="not found"):
        LikelihoodGate.load(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ChatforgeError, match="not a likelihood gate"):
        LikelihoodGate.load(tmp_path / "bad.safetensors")


def test_features_match_one_conversation_at_a_time(tiny_model_dir, tiny_reward_model):
    """Batched (left-padded prompts, right-padded replies) = each conversation alone, end of turn included."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    rm = AutoModelForSequenceClassification.from_pretrained(str(tiny_reward_model)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompts = [[{"role": "user", "content": "Hi!"}],
               [{"role": "user", "content": "What is the capital of Vell? Tell me now, please."}]]
    replies = ["Hello! How can I help you today?", "Vell"]
    stats, states = features(lm, rm, tok, prompts, replies, batch_size=2)
    for p, r, st, h in zip(prompts, replies, stats, states):
        prompt_ids, ids = reply_tokens(tok, p, r)
        full = tok.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
        assert tok.decode(prompt_ids + ids) == full  # the reply's tokens end with the template's end of turn
        x = torch.tensor([prompt_ids + ids])
        with torch.no_grad():
            logp = lm(x).logits[0, :-1].log_softmax(-1).gather(1, x[0, 1:, None])[len(prompt_ids) - 1:, 0]
            alone = rm.model(torch.tensor([prompt_ids])).last_hidden_state[0, -1]
        assert torch.allclose(st, torch.stack([logp.mean(), logp.min()]), atol=1e-4)
        assert torch.allclose(h, alone, atol=1e-4)


def test_ppo_adds_the_gate_term_to_the_reward(tiny_world, tiny_model_dir, tiny_reward_model, tmp_path):
    """The term PPO adds is the gate applied to the reference's log-probs at temperature 1 (not the sampling
    temperature) and the reward model's state at the prompt's end, row by row, whatever the padding."""
    import json

    from transformers import AutoConfig

    from chatforge.train.ppo import PPOConfig, PPOTrainer

    h = AutoConfig.from_pretrained(str(tiny_reward_model)).hidden_size
    torch.manual_seed(0)
    g = LikelihoodGate(torch.tensor(0.5), torch.randn(h, 2), torch.tensor([0.2, -0.4]), torch.zeros(h), torch.ones(h))
    g.save(tmp_path / "gate.safetensors")
    cfg = PPOConfig(model=str(tiny_model_dir), prompts=str(tiny_world / "prompts_train.jsonl"),
                    output_dir=str(tmp_path / "out"), reward_model=str(tiny_reward_model),
                    likelihood_gate=str(tmp_path / "gate.safetensors"), rollout_batch_size=6, minibatch_size=4,
                    steps=2, max_new_tokens=6, temperature=0.7, precision="fp32")
    trainer = PPOTrainer(cfg, progress=False)
    _, b, _ = trainer.rollout(1)
    bonus = trainer.likelihood_bonus(b)
    for row in range(len(bonus)):
        prompt = b["prompt_ids"][row][b["prompt_mask"][row].bool()]
        reply = b["tokens"][row][b["mask"][row].bool()]
        x = torch.cat([prompt, reply])[None]
        with torch.no_grad():
            logp = trainer.ref(x).logits[0, :-1].log_softmax(-1).gather(1, x[0, 1:, None])[len(prompt) - 1:, 0]
            state = prompt_states(trainer.rm, prompt[None], torch.ones_like(prompt)[None])
        want = g.bonus(state, logp.mean()[None], logp.min()[None])
        assert bonus[row].item() == pytest.approx(want.item(), abs=1e-4)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert all(e["reward"] == pytest.approx(e["rm_reward"] + e["likelihood_bonus"], abs=1e-4) for e in log)
    # the gate needs the reward model: with a reward function, or without its file, a one-line error
    with pytest.raises(ChatforgeError, match="not a reward function"):
        PPOTrainer(cfg, lambda p, r: [0.0] * len(r))
    with pytest.raises(ChatforgeError, match="not found"):
        PPOTrainer(PPOConfig(**{**vars(cfg), "likelihood_gate": str(tmp_path / "nope")}))
