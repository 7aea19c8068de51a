"""Model presets: previous-token heads set at initialisation (models/presets.init_prev_token_heads)."""

import pytest
import torch


@pytest.fixture()
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def attention(model, ids):
    model.config._attn_implementation = "eager"  # SDPA does not return the weights
    with torch.no_grad():
        return model(ids, output_attentions=True).attentions[0][0]  # layer 0: heads × query × key


def test_prev_token_head_attends_to_the_previous_token(tok, monkeypatch):
    from chatforge.models import presets

    monkeypatch.setitem(presets.MODEL_PRESETS, "tiny", {**presets.MODEL_PRESETS["tiny"], "prev_token_heads": 1})
    model = presets.new_model("tiny", tok, seed=3)
    assert model.config.attention_bias
    ids = tok("sort these numbers: 82, 21, 20. Reply from user42: 20, 21, 82.", return_tensors="pt").input_ids
    att = attention(model, ids)
    n = ids.shape[1]
    # head 0: every position after the first puts almost all its weight on the one before it, whatever the tokens
    assert torch.equal(att[0, 1:].argmax(-1), torch.arange(n - 1))
    assert att[0, 1:].gather(1, torch.arange(n - 1)[:, None]).min() > 0.99
    # head 1 keeps its random start: spread out, not a previous-token head
    assert att[1, 1:].gather(1, torch.arange(n - 1)[:, None]).mean() < 0.8


def test_prev_token_head_scores_by_hand(tok, monkeypatch):
    """The head's logits, recomputed from its biases through RoPE: Δ = 1 beats Δ = 0 and Δ = 2 by the gap (8)."""
    from chatforge.models import presets

    monkeypatch.setitem(presets.MODEL_PRESETS, "tiny", {**presets.MODEL_PRESETS["tiny"], "prev_token_heads": 1})
    model = presets.new_model("tiny", tok)
    attn, dim = model.model.layers[0].self_attn, 32  # tiny: hidden 64, 2 heads
    q, k = attn.q_proj.bias[:dim].detach(), attn.k_proj.bias[:dim].detach()
    theta = 1.0 / (10000.0 ** (torch.arange(0, dim, 2).float() / dim))

    def rope(v, pos):  # HF's rotate-half RoPE: pair (j, j + dim/2) turned by pos·θ_j
        c, s = torch.cos(pos * theta), torch.sin(pos * theta)
        a, b = v[:dim // 2], v[dim // 2:]
        return torch.cat([a * c - b * s, b * c + a * s])

    m = 40
    score = {d: (rope(q, m) @ rope(k, m - d)).item() / dim ** 0.5 for d in range(0, 40)}
    assert max(score, key=score.get) == 1
    assert score[1] - max(score[0], score[2]) == pytest.approx(8.0, abs=1e-3)
    assert score[1] - max(v for d, v in score.items() if d != 1) == pytest.approx(8.0, abs=1e-3)


def test_prev_token_model_saves_as_a_plain_llama(tok, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from chatforge.models import presets

    assert not presets.model_config("tiny", tok).attention_bias  # presets without them stay bias-free
    monkeypatch.setitem(presets.MODEL_PRESETS, "tiny", {**presets.MODEL_PRESETS["tiny"], "prev_token_heads": 1})
    model = presets.new_model("tiny", tok)
    model.save_pretrained(str(tmp_path))
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert again.config.model_type == "llama" and again.config.attention_bias
    assert "prev_token_heads" not in again.config.to_dict()
    ids = tok("Hello there", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, again(ids).logits, atol=1e-5)


def test_cpu_training_uses_eager_attention_with_the_same_outputs(tok, tmp_path):
    """loading.training_attention: without a GPU the trainers run plain attention (faster at these sizes); it
    computes what SDPA does, and a saved model does not carry the choice."""
    import json

    from chatforge.models.loading import training_attention
    from chatforge.models.presets import new_model

    model = new_model("tiny", tok)
    ids = tok(["Hello there, how are you?", "Hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        sdpa = model(**ids).logits
    training_attention(model)
    assert model.config._attn_implementation == ("sdpa" if torch.cuda.is_available() else "eager")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, sdpa, atol=1e-4)
    model.save_pretrained(str(tmp_path))
    assert "eager" not in json.dumps(json.loads((tmp_path / "config.json").read_text()))


def test_serving_engine_runs_a_prev_token_model_fused_as_generate_does(tok, monkeypatch):
    """The head's q/k biases reach the engine's own fused forward: greedy tokens equal `model.generate`'s.
    CHATFORGE_TEST_DEVICE=cuda runs it on a GPU in bf16 (SDPA with the biases), as bench/gpu_check.sh does."""
    import os

    from chatforge.models import presets
    from chatforge.serve.engine import Engine, GenerationRequest

    monkeypatch.setitem(presets.MODEL_PRESETS, "tiny", {**presets.MODEL_PRESETS["tiny"], "prev_token_heads": 1})
    model = presets.new_model("tiny", tok).eval()
    device = os.environ.get("CHATFORGE_TEST_DEVICE", "cpu")
    if device != "cpu":
        model = model.to(device, torch.bfloat16)
    prompts = [[6 + (i * 37 + salt * 101) % 500 for i in range(n)] for salt, n in enumerate((5, 23, 11))]
    refs = [model.generate(torch.tensor([p], device=device),
                           attention_mask=torch.ones(1, len(p), dtype=torch.long, device=device),
                           max_new_tokens=12, do_sample=False)[0, len(p):].tolist() for p in prompts]
    engine = Engine(model, tok, max_batch_size=4, fused=True)
    try:
        assert engine.fused
        handles = [engine.submit(GenerationRequest(p, max_new_tokens=12, temperature=0)) for p in prompts]
        engine.start()
        assert [h.result().token_ids for h in handles] == refs
    finally:
        engine.shutdown()
