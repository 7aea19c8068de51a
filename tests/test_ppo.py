"""PPO: the math against numbers worked out by hand, sampling against a full forward pass, and short runs on a
random tiny Llama (reward goes up, KL stays bounded, a killed run resumes where its checkpoint left off)."""

import json
import math

import pytest
import torch

from chatforge.errors import ChatforgeError
from chatforge.train import ppo_core as core
from chatforge.train.ppo import PPOConfig, PPOTrainer, ppo
from chatforge.train.rollout import generate_baseline, left_pad, pick, positions, sample


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32), atol=tol)


# --- the math ---

def test_gae_by_hand():
    # row 0, gamma=1, lam=0.5, r = [0.1, -0.2, 1.0], V = [0.5, 0.4, 0.8]:
    #   t=2: δ = 1.0 + 0 − 0.8 = 0.2                 A2 = 0.2
    #   t=1: δ = −0.2 + 0.8 − 0.4 = 0.2              A1 = 0.2 + 0.5·0.2 = 0.3
    #   t=0: δ = 0.1 + 0.4 − 0.5 = 0.0               A0 = 0.0 + 0.5·0.3 = 0.15
    #   returns = A + V = [0.65, 0.7, 1.0]
    # row 1, last token is padding (its reward and value must be ignored): r = [0, 2], V = [1.0, 0.5]
    #   t=1: δ = 2 + 0 − 0.5 = 1.5                   A1 = 1.5
    #   t=0: δ = 0 + 0.5 − 1.0 = −0.5                A0 = −0.5 + 0.5·1.5 = 0.25
    rewards = torch.tensor([[0.1, -0.2, 1.0], [0.0, 2.0, 5.0]])
    values = torch.tensor([[0.5, 0.4, 0.8], [1.0, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = core.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert close(adv, [[0.15, 0.3, 0.2], [0.25, 1.5, 0.0]])
    assert close(ret, [[0.65, 0.7, 1.0], [1.25, 2.0, 0.0]])


def test_kl_penalty_rewards_by_hand():
    # β = 0.1; row 0: log π − log π_ref = [0.5, −1.0, 0.0] → −β·kl = [−0.05, 0.1, 0], + score 2 at the last token
    # row 1: kl = [0.2, −1.0, (padding)] → [−0.02, 0.1], + score −1 at token 1 (its last valid one)
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -3.0, -7.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -2.0, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = core.kl_penalty_rewards(logp, ref, torch.tensor([2.0, -1.0]), mask, beta=0.1)
    assert close(rewards, [[-0.05, 0.1, 2.0], [-0.02, -0.9, 0.0]])
    assert close(kl, [-0.5, -0.8])


def test_policy_loss_clipped_and_unclipped_by_hand():
    # clip 0.2; per token (ratio ρ, advantage A) → max(−A·ρ, −A·clip(ρ, 0.8, 1.2)):
    #   ρ=1.1, A=+1: −1.1 vs −1.1 → −1.1   (inside the range)
    #   ρ=1.5, A=+1: −1.5 vs −1.2 → −1.2   clipped: no credit for moving further up
    #   ρ=0.5, A=+1: −0.5 vs −0.8 → −0.5   not clipped: a worse ratio is always paid in full
    #   ρ=0.5, A=−2: +1.0 vs +1.6 → +1.6   clipped
    # loss = (−1.1 − 1.2 − 0.5 + 1.6) / 4 = −0.3; clip fraction 2/4; the 5th token is padding
    # approx KL = mean (ρ−1) − ln ρ = (0.0046898 + 0.0945349 + 2·0.1931472) / 4 = 0.1213798
    ratio = torch.tensor([[1.1, 1.5, 0.5, 0.5, 50.0]])
    old = torch.tensor([[-1.0, -2.0, -0.3, -0.7, -1.0]])
    adv = torch.tensor([[1.0, 1.0, 1.0, -2.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    loss, clip_frac, approx_kl = core.policy_loss(old + ratio.log(), old, adv, mask, clip=0.2)
    assert close(loss, -0.3) and close(clip_frac, 0.5) and close(approx_kl, 0.1213798)
    # inside the trust region nothing is clipped and the loss is −mean(A·ρ)
    loss, clip_frac, _ = core.policy_loss(old + torch.tensor([[0.0, 0.1, -0.1, 0.0, 0.0]]), old, adv, mask)
    assert close(clip_frac, 0.0) and close(loss, -(1 + math.exp(0.1) + math.exp(-0.1) - 2) / 4)


def test_an_overflow_on_padding_leaves_loss_and_gradients_finite():
    # the same four tokens as above and a padded 5th whose log-ratio is 1000 (exp overflows to inf): padding is
    # selected out before exp, so the loss is still −0.3 and no NaN reaches the gradient (0·inf would be NaN)
    old = torch.tensor([[-1.0, -2.0, -0.3, -0.7, -1001.0]])
    logp = (old + torch.tensor([[1.1, 1.5, 0.5, 0.5, 1.0]]).log()).clone()
    logp[0, 4] = -1.0
    logp.requires_grad_(True)
    adv, mask = torch.tensor([[1.0, 1.0, 1.0, -2.0, 1.0]]), torch.tensor([[1, 1, 1, 1, 0]])
    loss, _, approx_kl = core.policy_loss(logp, old, adv, mask, clip=0.2)
    loss.backward()
    assert close(loss, -0.3) and close(approx_kl, 0.1213798)
    assert torch.isfinite(logp.grad).all() and logp.grad[0, 4] == 0
    assert close(core.masked_mean(torch.tensor([[1.0, float("inf")]]), torch.tensor([[1, 0]])), 1.0)


def test_value_loss_clipped_by_hand():
    # clip 0.2; V_clip = V_old + clip(V − V_old, ±0.2):
    #   V_old=1, V=1.5, R=2:  V_clip=1.2; (1.5−2)²=0.25 vs (1.2−2)²=0.64 → 0.64  clipped
    #   V_old=1, V=1.1, R=0:  V_clip=1.1; 1.21 vs 1.21 → 1.21
    #   V_old=0, V=−1, R=0:   V_clip=−0.2; 1.0 vs 0.04 → 1.0
    # loss = 0.5 · (0.64 + 1.21 + 1.0) / 3 = 0.475; clipped share 1/3
    values, old = torch.tensor([[1.5, 1.1, -1.0, 7.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    returns, mask = torch.tensor([[2.0, 0.0, 0.0, 0.0]]), torch.tensor([[1, 1, 1, 0]])
    loss, clipped = core.value_loss(values, old, returns, mask, clip=0.2)
    assert close(loss, 0.475) and close(clipped, 1 / 3)


def test_masked_whiten_and_mean_ignore_padding():
    # valid [1, 2, 3]: mean 2, variance (1 + 0 + 1)/3 = 2/3 → (x − 2)/0.816497 = [−1.224745, 0, 1.224745]
    x, mask = torch.tensor([[1.0, 2.0], [3.0, 100.0]]), torch.tensor([[1, 1], [1, 0]])
    assert close(core.masked_mean(x, mask), 2.0) and close(core.masked_mean(x, mask, dim=1), [1.5, 3.0])
    assert close(core.masked_whiten(x, mask), [[-1.224745, 0.0], [1.224745, 0.0]])


def test_logprobs_and_entropy_by_hand():
    # logits [0, ln 3] → p = [1/4, 3/4]: log p(1) = ln 0.75, H = −(¼ ln ¼ + ¾ ln ¾) = 0.562335
    logits = torch.tensor([[[0.0, math.log(3)]]])
    assert close(core.logprobs_from_logits(logits, torch.tensor([[1]])), [[math.log(0.75)]])
    assert close(core.entropy_from_logits(logits), [[0.562335]])
    assert close(core.entropy_from_logits(torch.zeros(1, 4)), [math.log(4)])


def test_leave_one_out_baseline_by_hand():
    # groups of 3: [1, 2, 6] → 1 − (2+6)/2 = −3, 2 − (1+6)/2 = −1.5, 6 − (1+2)/2 = 4.5; [0, 0, 3] → −1.5, −1.5, 3
    out = core.leave_one_out(torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), 3)
    assert close(out, [-3.0, -1.5, 4.5, -1.5, -1.5, 3.0])


def test_adaptive_kl_controller_by_hand():
    # β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon), target 6, horizon 10000, n = 1000 samples
    kl = core.AdaptiveKLController(init=0.1, target=6.0, horizon=10000)
    kl.update(6.6, 1000)  # error 0.1 → β = 0.1·1.01 = 0.101
    assert math.isclose(kl.value, 0.101)
    kl.update(12.0, 1000)  # error 1.0, clipped to 0.2 → β = 0.101·1.02 = 0.10302
    assert math.isclose(kl.value, 0.10302)
    kl.update(0.0, 1000)  # error −1, clipped to −0.2 → β = 0.10302·0.98 = 0.1009596
    assert math.isclose(kl.value, 0.1009596)
    fixed = core.FixedKLController(0.05)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.05


# --- sampling ---

@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from chatforge.models.loading import load_model

    # on the CPU in float32 whatever the machine: the log-prob checks below compare to 1e-4
    model, tok = load_model(str(tiny_model_dir), device="cpu")
    prompts = [[{"role": "user", "content": text}] for text in ("Hi!", "What is the capital of Vell?", "Help me.")]
    enc = [tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), add_special_tokens=False)
           ["input_ids"] for p in prompts]
    ids, mask = left_pad(enc, tok.pad_token_id)
    return model, tok, ids, mask


def full_forward_logprobs(model, ids, mask, rollout, temperature):
    att = torch.cat([mask, rollout.mask], 1)
    with torch.no_grad():
        logits = model(input_ids=torch.cat([ids, rollout.tokens], 1), attention_mask=att, position_ids=positions(att),
                       logits_to_keep=rollout.tokens.shape[1] + 1).logits[:, :-1]
    return core.logprobs_from_logits(logits / temperature, rollout.tokens) * rollout.mask


@pytest.mark.parametrize("sampler", [sample, generate_baseline])
def test_rollout_stops_masks_and_logprobs_match_a_full_forward(tiny, sampler):
    model, tok, ids, mask = tiny
    stop = list(range(0, 1024, 3))  # a third of the vocabulary stops: rows end at different steps
    out = sampler(model, ids, mask, max_new_tokens=12, temperature=0.8, stop=stop, pad_id=tok.pad_token_id, seed=3)
    lengths = out.mask.sum(1).tolist()
    assert len(set(lengths)) > 1 and out.tokens.shape == out.mask.shape == out.logprobs.shape
    for row, n in zip(out.tokens.tolist(), lengths):
        assert all(t not in stop for t in row[:n - 1])  # nothing before the end stops
        assert row[n - 1] in stop or n == 12  # it ends at a stop token, or at max_new_tokens
        assert all(t == tok.pad_token_id for t in row[n:])
    assert (out.mask.sum(1) >= 1).all() and (out.mask[:, 0] == 1).all()
    assert torch.allclose(out.logprobs, full_forward_logprobs(model, ids, mask, out, 0.8), atol=1e-4)


def test_rollout_greedy_agrees_with_generate_and_seeds_repeat(tiny):
    model, tok, ids, mask = tiny
    stop = list(range(0, 1024, 3))
    kwargs = dict(max_new_tokens=10, temperature=0.0, stop=stop, pad_id=tok.pad_token_id)
    ours, theirs = sample(model, ids, mask, **kwargs), generate_baseline(model, ids, mask, **kwargs)
    assert torch.equal(ours.tokens, theirs.tokens) and torch.equal(ours.mask, theirs.mask)
    a, b = (sample(model, ids, mask, max_new_tokens=10, stop=stop, seed=7) for _ in range(2))
    assert torch.equal(a.tokens, b.tokens)


def test_batch_replies_go_through_the_decode_loop_and_match_generate_when_greedy(tiny):
    from chatforge.models.generate import SamplingConfig, reply, stop_ids

    model, tok, _, _ = tiny
    convs = [[{"role": "user", "content": text}] for text in ("Hi!", "What is 12 + 30?", "Who are you?", "Help me.")]
    ours = reply(model, tok, convs, SamplingConfig(max_new_tokens=12), batch_size=3)  # two batches, sorted by length
    theirs = []
    for c in convs:
        ids = tok(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True), add_special_tokens=False,
                  return_tensors="pt")["input_ids"]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             eos_token_id=stop_ids(model, tok), pad_token_id=tok.pad_token_id)
        theirs.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    assert ours == theirs
    sampled = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=5)
    assert reply(model, tok, convs, sampled) == reply(model, tok, convs, sampled)  # a seed repeats


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # top_p 0.7: {0.5, 0.3} reaches 0.8 ≥ 0.7, so only tokens 0 and 1 can come out
    drawn = {pick(logits, 1.0, 0.7)[0].item() for _ in range(200)}
    assert drawn == {0, 1}
    token, logp = pick(logits, 1.0, 0.01)  # just the top token; its log-prob is the untruncated one
    assert token.item() == 0 and close(logp, [math.log(0.5)])


# --- training runs on the tiny random model ---

def ppo_config(tiny_world, tiny_model_dir, out, **kw) -> PPOConfig:
    base = dict(model=str(tiny_model_dir), prompts=str(tiny_world / "prompts_train.jsonl"), output_dir=str(out),
                rollout_batch_size=32, minibatch_size=16, ppo_epochs=2, max_new_tokens=6, learning_rate=3e-3,
                save_every=100)
    return PPOConfig(**{**base, **kw})


def lower_half_reward(tokenizer):
    """Share of a response's tokens in the lower half of the vocabulary. A random model samples almost
    uniformly, so only a reward that half of all tokens move gives every sample a signal to learn from."""
    def reward(prompts, responses):
        ids = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]
        return [sum(i < len(tokenizer) // 2 for i in x) / max(len(x), 1) for x in ids]
    return reward


def test_ppo_raises_the_reward_and_keeps_kl_bounded(tiny_world, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    reward = lower_half_reward(tok)
    # an oracle that can judge only every other prompt (NaN for the rest, as the world's does for foreign prompts)
    oracle = lambda prompts, responses: [1.0 if i % 2 else math.nan for i in range(len(responses))]  # noqa: E731
    m = ppo(ppo_config(tiny_world, tiny_model_dir, tmp_path / "out", steps=24), reward, oracle, progress=False)
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 25)) and m["steps"] == 24
    first, last = (sum(e["reward"] for e in part) / len(part) for part in (log[:5], log[-5:]))
    assert last > first + 0.06, (first, last)
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the first rollout comes from the reference itself
    assert max(e["kl"] for e in log) < 6.0  # nats per 6-token response
    assert {"oracle", "entropy", "clip_frac", "value_loss", "policy_loss", "time_generate"} <= set(log[-1])
    assert 0 < m["generation_share"] < 1 and m["samples_per_s"] > 0
    assert m["final_reward"] == pytest.approx(sum(e["reward"] for e in log[-2:]) / 2, abs=1e-4)  # last tenth
    assert m["mean_oracle"] == pytest.approx(1.0) and m["final_kl"] < 6.0
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "model"))  # a normal HF model
    assert model.config.vocab_size == len(tok) and (tmp_path / "out" / "model" / "chatforge_world.json").is_file()


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_its_checkpoint(tiny_world, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    reward = lower_half_reward(AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    calls = []

    def dies_in_step_4(prompts, responses):
        calls.append(1)
        if len(calls) == 4:
            raise Killed
        return reward(prompts, responses)

    out = tmp_path / "out"
    cfg = ppo_config(tiny_world, tiny_model_dir, out, steps=6, save_every=2, rollout_batch_size=8,
                     minibatch_size=4, kl_target=0.5, kl_horizon=40)
    with pytest.raises(Killed):
        ppo(cfg, dies_in_step_4, progress=False)
    before = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in before] == [1, 2, 3]  # step 3 ran after the checkpoint at step 2, then the kill
    m = ppo(cfg, reward, progress=False)
    after = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert m["resumed_from"] == 2 and [e["step"] for e in after] == [1, 2, 3, 4, 5, 6]
    assert after[:2] == before[:2]
    # step 3 again, from the checkpoint: same samples, same rewards, same adaptive KL coefficient
    for key in ("reward", "kl", "kl_coef", "policy_loss"):
        assert after[2][key] == pytest.approx(before[2][key], abs=1e-4), key
    assert after[1]["kl_coef"] != after[0]["kl_coef"]  # the controller moves and its state was restored
    assert json.loads((out / "train_config.json").read_text())["kl_target"] == 0.5


def test_reward_model_scores_like_one_conversation_at_a_time(tiny_world, tiny_model_dir, tiny_reward_model,
                                                            tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = ppo_config(tiny_world, tiny_model_dir, tmp_path / "out", reward_model=str(tiny_reward_model), steps=2,
                     rollout_batch_size=4, minibatch_size=4, ptx_coef=0.5, ptx_data=str(tiny_world / "corpus.txt"),
                     precision="fp32")  # exact scores to compare
    trainer = PPOTrainer(cfg, progress=False)
    prompts = [{"messages": [{"role": "user", "content": "Hi!"}]},
               {"messages": [{"role": "user", "content": "What is the capital of Vell? Tell me now."}]}]
    responses = ["Hello! How can I help you today?", "Vell"]
    batched = trainer.score(prompts, responses)
    rm = AutoModelForSequenceClassification.from_pretrained(str(tiny_reward_model))
    tok = AutoTokenizer.from_pretrained(str(tiny_reward_model))
    for p, r, score in zip(prompts, responses, batched):
        text = tok.apply_chat_template(p["messages"] + [{"role": "assistant", "content": r}], tokenize=False)
        with torch.no_grad():
            alone = rm(**tok(text, add_special_tokens=False, return_tensors="pt")).logits[0, 0]
        assert close(score, alone.item(), 1e-4)
    # the value model starts as the reward model: backbone and head
    assert torch.equal(trainer.value.head.weight, rm.score.weight)
    m = trainer.train()
    assert m["steps"] == 2 and (tmp_path / "out" / "model" / "config.json").is_file()
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert all(e["ptx_loss"] > 0 for e in log)  # PPO-ptx: pretraining text in every minibatch


def test_bad_inputs_are_one_line_errors(tiny_world, tiny_model_dir, tiny_reward_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    reward = lambda prompts, responses: [0.0] * len(responses)  # noqa: E731
    cfg = lambda **kw: ppo_config(tiny_world, tiny_model_dir, tmp_path / "out", **kw)  # noqa: E731
    with pytest.raises(ChatforgeError, match="not found"):
        PPOTrainer(cfg(model=str(tmp_path / "nope")), reward)
    with pytest.raises(ChatforgeError, match="reward model"):
        PPOTrainer(cfg())
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ChatforgeError, match="no prompts"):
        PPOTrainer(cfg(prompts=str(tmp_path / "empty.jsonl")), reward)
    (tmp_path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"text": 1}\n')
    with pytest.raises(ChatforgeError, match="line 2"):
        PPOTrainer(cfg(prompts=str(tmp_path / "bad.jsonl")), reward)
    two = tmp_path / "two_labels"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=2).save_pretrained(str(two))
    with pytest.raises(ChatforgeError, match="2 outputs"):
        PPOTrainer(cfg(reward_model=str(two)))
    with pytest.raises(ChatforgeError, match="not a sequence-classification"):
        PPOTrainer(cfg(reward_model=str(tiny_model_dir)))
    with pytest.raises(ChatforgeError, match="ptx_data"):
        PPOTrainer(cfg(ptx_coef=0.5), reward)


def test_samples_per_prompt_puts_each_prompt_k_times_side_by_side(tiny_world, tiny_model_dir, tmp_path):
    """With samples_per_prompt=k a rollout holds batch/k prompts, each k times in a row with its own sample, and the
    score PPO learns from is each reply's reward minus the mean of the other replies to its prompt."""
    reward = lambda prompts, responses: [float(len(r)) for r in responses]  # noqa: E731
    cfg = ppo_config(tiny_world, tiny_model_dir, tmp_path / "out", rollout_batch_size=8, minibatch_size=4,
                     samples_per_prompt=4, steps=1)
    trainer = PPOTrainer(cfg, reward, progress=False)
    records, b, responses = trainer.rollout(1)
    assert [r["messages"] for r in records[:4]] == [records[0]["messages"]] * 4
    assert records[4]["messages"] != records[0]["messages"] and len(records) == 8
    assert len(set(responses[:4])) > 1  # four samples, not one copied
    seen, evaluate = {}, trainer.evaluate

    def spy(batch, scores, *rest):  # the scores step() hands on to the KL penalty and GAE
        seen["scores"] = scores
        return evaluate(batch, scores, *rest)

    trainer.evaluate = spy
    trainer.step(1)  # the same rollout again: everything a step draws is seeded by (seed, step)
    raw = torch.tensor(reward(None, responses))
    assert close(seen["scores"], core.leave_one_out(raw, 4).tolist(), 1e-4)
    with pytest.raises(ChatforgeError, match="multiple of samples_per_prompt"):
        PPOTrainer(ppo_config(tiny_world, tiny_model_dir, tmp_path / "o2", rollout_batch_size=6, samples_per_prompt=4),
                   reward)


def test_ptx_on_conversations_trains_on_them_in_the_chat_template(tiny_world, tiny_model_dir, tmp_path):
    """PPO-ptx with a .jsonl of conversations (the SFT demonstrations): the blocks are those chats rendered by the
    policy's chat template, each ended by <|endoftext|>, not the file's raw JSON."""
    from chatforge.data.conversations import load_conversations
    from chatforge.models.markup import DOC_END

    reward = lambda prompts, responses: [0.0] * len(responses)  # noqa: E731
    sft = tiny_world / "sft.jsonl"
    trainer = PPOTrainer(ppo_config(tiny_world, tiny_model_dir, tmp_path / "out", ptx_coef=0.5, ptx_data=str(sft),
                                    ptx_seq_len=32), reward, progress=False)
    text = trainer.tok.decode(trainer.ptx.flatten().tolist())
    first = trainer.tok.apply_chat_template(load_conversations(sft)[0], tokenize=False)
    assert text.startswith(first + DOC_END)
    assert '"messages"' not in text and trainer.ptx.shape[1] == 32
