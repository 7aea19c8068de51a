"""The vLLM backend's adapter (serve/engine_vllm.py) against a fake `vllm` that follows vLLM's documented LLMEngine
contract: add_request / step / abort_request, cumulative RequestOutputs. No GPU or vllm needed: this checks our side
(streamed deltas add up to the text, finish reasons, stop ids, cancellation, limits), not vLLM itself."""

import sys
import threading
import time
import types
from dataclasses import dataclass, field

import pytest

from chatforge.serve.engine import Delta, Finished, GenerationRequest, QueueFull


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop_token_ids: list = field(default_factory=list)
    skip_special_tokens: bool = True


@dataclass
class CompletionOutput:
    token_ids: list
    text: str
    finish_reason: str | None


@dataclass
class RequestOutput:
    request_id: str
    outputs: list
    finished: bool


class FakeLLMEngine:
    """Each step, every live request gets its next token: 10, 11, 12, ... (the token 12 is '<stop>' if asked)."""
    instances = []

    def __init__(self, args):
        self.args, self.live, self.params, self.aborted = args, {}, {}, []
        self.model_config = types.SimpleNamespace(max_model_len=64)
        self.stepped = threading.Event()
        FakeLLMEngine.instances.append(self)

    @classmethod
    def from_engine_args(cls, args):
        return cls(args)

    def get_tokenizer(self):
        return types.SimpleNamespace(eos_token_id=2, unk_token_id=0, convert_tokens_to_ids=lambda t: 3)

    def add_request(self, rid, prompt, params):
        self.live[rid], self.params[rid] = [], params
        assert prompt["prompt_token_ids"]

    def abort_request(self, rids):
        self.aborted += rids
        for rid in rids:
            self.live.pop(rid, None)

    def step(self):
        time.sleep(0.01)  # a decode step takes time: a cancel lands between steps
        out = []
        for rid, tokens in list(self.live.items()):
            p = self.params[rid]
            tokens.append(10 + len(tokens))
            stopped = tokens[-1] in p.stop_token_ids
            done = stopped or len(tokens) >= p.max_tokens
            text = "".join(f"t{t} " for t in tokens if t not in p.stop_token_ids)
            out.append(RequestOutput(rid, [CompletionOutput(list(tokens), text, ("stop" if stopped else "length")
                                                            if done else None)], done))
            if done:
                del self.live[rid]
        self.stepped.set()
        return out


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.EngineArgs = lambda **kw: kw
    vllm.LLMEngine, vllm.SamplingParams = FakeLLMEngine, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    vllm.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    FakeLLMEngine.instances.clear()
    from chatforge.serve.engine_vllm import VLLMEngine

    engine = VLLMEngine("some/model", max_batch_size=8, max_queue=2).start()
    yield engine, FakeLLMEngine.instances[-1]
    engine.shutdown()


def test_deltas_add_up_to_the_text_and_settings_reach_vllm(fake_vllm):
    engine, llm = fake_vllm
    h = engine.submit(GenerationRequest([5, 6, 7], max_new_tokens=4, temperature=0.7, top_p=0.9, seed=3))
    events = list(h)
    deltas, end = [e for e in events if isinstance(e, Delta)], events[-1]
    assert isinstance(end, Finished) and end.finish_reason == "length"
    assert "".join(d.text for d in deltas) == h.completion.text == "t10 t11 t12 t13 "
    assert [t for d in deltas for t in d.token_ids] == [10, 11, 12, 13]
    assert h.completion.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    p = llm.params[h.rid]
    assert (p.temperature, p.top_p, p.seed, p.max_tokens) == (0.7, 0.9, 3, 4)
    assert llm.args["model"] == "some/model" and llm.args["max_num_seqs"] == 8
    assert sorted(p.stop_token_ids) == [2, 3]  # the model's stop ids by default: eos and the document end


def test_a_stop_id_ends_the_reply_with_stop(fake_vllm):
    engine, _ = fake_vllm
    h = engine.submit(GenerationRequest([5], max_new_tokens=10, stop_token_ids=[12]))
    list(h)
    assert h.completion.finish_reason == "stop" and h.completion.text == "t10 t11 "


def test_cancel_aborts_the_request_in_vllm(fake_vllm):
    engine, llm = fake_vllm
    h = engine.submit(GenerationRequest([5], max_new_tokens=50))
    it = iter(h)
    assert isinstance(next(it), Delta)
    h.cancel()
    rest = list(it)
    assert rest[-1].finish_reason == "cancelled" and llm.aborted == [h.rid]


def test_limits_a_long_prompt_and_a_full_queue(fake_vllm):
    engine, llm = fake_vllm
    with pytest.raises(ValueError, match="1 to 63"):
        engine.submit(GenerationRequest(list(range(64))))
    with engine._lock:  # hold the loop so that submitted requests wait in the queue
        engine.submit(GenerationRequest([1]))
        engine.submit(GenerationRequest([1]))
        with pytest.raises(QueueFull):
            engine.submit(GenerationRequest([1]))
