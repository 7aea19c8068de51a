"""The continuous-batching engine on a random tiny Llama: greedy output equal to `model.generate` token for token
(prompts of different lengths together, and requests joining a running batch), seeded sampling independent of
batch companions, cancel, the queue bound, finish reasons, streamed text and async consumption. The engine's two
ways to run the model (its own fused forward for Llama-style models, and the model's forward for any other) both
face the equality tests."""

import asyncio
import os
import threading
from types import SimpleNamespace

import pytest
import torch

from chatforge.models.loading import load_model
from chatforge.serve.engine import Delta, Engine, EngineError, Finished, GenerationRequest, QueueFull

NO_STOP = [-1]  # a stop id no token has: the request runs to max_new_tokens


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    """The tiny random Llama with sharper attention: at its 0.02 init it attends almost uniformly, so its output
    hardly depends on positions and a wrong position or a padding leak would go unnoticed."""
    torch.set_num_threads(1)
    # CHATFORGE_TEST_DEVICE=cuda runs these on a GPU (bf16), where one is lent; CI has none
    model, tok = load_model(str(tiny_model_dir), device=os.environ.get("CHATFORGE_TEST_DEVICE", "cpu"))
    with torch.no_grad():
        for layer in model.model.layers:
            for proj, scale in (("q_proj", 8), ("k_proj", 8), ("v_proj", 4), ("o_proj", 4)):
                getattr(layer.self_attn, proj).weight.mul_(scale)
    return model, tok


@pytest.fixture()
def make_engine(model_tok):
    engines = []

    def make(**kw):
        engines.append(Engine(*model_tok, **kw))
        return engines[-1]

    yield make
    for e in engines:
        e.shutdown()


class Gate:
    """The engine's real forward (one call per engine step: the running rows' next token and the newcomers'
    prompts), but the engine thread waits inside chosen calls (1 = the first) until released: makes "B joins while A
    is running" or "cancel between two steps" deterministic."""

    def __init__(self, engine, hold_at: set[int]):
        self.forward, self.hold_at, self.calls = engine._forward, hold_at, 0
        self.held, self.go = threading.Event(), threading.Event()
        engine._forward = self

    def __call__(self, *args):
        self.calls += 1
        if self.calls in self.hold_at:
            self.go.clear()
            self.held.set()
            assert self.go.wait(30)
        return self.forward(*args)

    def wait_held(self):
        assert self.held.wait(30)
        self.held.clear()


def prompt(n: int, salt: int = 0) -> list[int]:
    return [6 + (i * 37 + salt * 101) % 500 for i in range(n)]


def greedy_reference(model, ids: list[int], max_new: int) -> list[int]:
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new, do_sample=False)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("fused", [True, False])
def test_greedy_equals_generate_for_prompts_of_different_lengths(model_tok, make_engine, fused):
    model, _ = model_tok
    lengths, max_new = [3, 17, 40, 9, 64, 25], [20, 12, 30, 25, 8, 16]
    refs = [greedy_reference(model, prompt(n, i), m) for i, (n, m) in enumerate(zip(lengths, max_new))]
    engine = make_engine(max_batch_size=8, fused=fused)
    assert engine.fused == fused
    results = [None] * len(lengths)

    def client(i):  # each client its own thread, like a server's requests
        h = engine.submit(GenerationRequest(prompt(lengths[i], i), max_new_tokens=max_new[i], temperature=0))
        results[i] = h.result()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(lengths))]
    for t in threads:
        t.start()
    engine.start()
    for t in threads:
        t.join(30)
    assert [r.token_ids for r in results] == refs
    assert engine.stats()["mean_batch"] > 1  # they really shared decode steps


@pytest.mark.parametrize("fused", [True, False])
def test_a_stream_of_requests_through_few_slots_gets_generates_tokens(model_tok, make_engine, fused):
    """Requests keep leaving and joining a 3-slot batch for ~100 steps: slots are reused, the live columns move left
    in place when they reach the end of the buffers, and the buffers grow; every reply is still generate's."""
    model, _ = model_tok
    specs = [(3 + (i * 7) % 30, 6 + (i * 5) % 25) for i in range(14)]  # (prompt length, max_new_tokens)
    refs = [greedy_reference(model, prompt(n, 50 + i), m) for i, (n, m) in enumerate(specs)]
    engine = make_engine(max_batch_size=3, fused=fused)
    places = []
    place = engine._place
    engine._place = lambda rows, end: places.append((rows, end, engine._end)) or place(rows, end)
    engine.start()
    handles = [engine.submit(GenerationRequest(prompt(n, 50 + i), max_new_tokens=m, temperature=0,
                                               stop_token_ids=NO_STOP)) for i, (n, m) in enumerate(specs)]
    assert [h.result(60).token_ids for h in handles] == refs
    assert any(end < old for _, end, old in places)  # the live columns did move left at least once
    assert engine.stats()["mean_batch"] > 2


@pytest.mark.parametrize("fused", [True, False])
def test_requests_joining_mid_flight_get_the_tokens_they_get_alone(model_tok, make_engine, fused):
    model, _ = model_tok
    # A runs; after its prefill and 5 steps B (longer than A's cache) and C (shorter) join; D joins later still
    specs = {"A": (12, 40), "B": (50, 30), "C": (4, 10), "D": (30, 25)}
    refs = {k: greedy_reference(model, prompt(n, len(k) + ord(k)), m) for k, (n, m) in specs.items()}
    engine = make_engine(max_batch_size=4, fused=fused)
    gate = Gate(engine, hold_at={6, 14, 38})
    engine.start()

    def submit(k):
        n, m = specs[k]
        return engine.submit(GenerationRequest(prompt(n, len(k) + ord(k)), max_new_tokens=m, temperature=0))

    handles = {"A": submit("A")}
    gate.wait_held()
    handles |= {"B": submit("B"), "C": submit("C")}
    gate.go.set()
    gate.wait_held()
    assert engine.stats()["running"] == 3
    handles["D"] = submit("D")
    gate.go.set()
    gate.wait_held()  # B (the longest) has left: the cache is trimmed to the longest row still running
    running = [h for h in handles.values() if h.completion is None]
    assert len(running) == 2 and handles["B"].completion is not None
    assert engine.stats()["cache_len"] == max(len(h.request.prompt_ids) + len(h.tokens) - 1 for h in running)
    gate.go.set()
    assert {k: h.result().token_ids for k, h in handles.items()} == refs
    stats = engine.stats()
    assert stats["running"] == 0 and stats["cache_len"] == 0 and stats["finished"] == 4


def test_seeded_sampling_is_reproducible_whatever_the_batch(model_tok, make_engine):
    model, _ = model_tok
    req = GenerationRequest(prompt(15, 1), max_new_tokens=24, temperature=1.0, top_p=0.9, seed=7,
                            stop_token_ids=NO_STOP)
    alone = make_engine().start().submit(req).result().token_ids

    engine = make_engine()  # with companions, submitted together
    companions = [engine.submit(GenerationRequest(prompt(n, n), max_new_tokens=30, temperature=t, seed=s))
                  for n, t, s in [(40, 1.0, None), (5, 0.0, None), (22, 0.7, 3)]]
    with_batch = engine.submit(req)
    engine.start()
    assert with_batch.result().token_ids == alone

    engine = make_engine()  # joining a batch that is already decoding
    gate = Gate(engine, hold_at={4})
    engine.start()
    companions += [engine.submit(GenerationRequest(prompt(33, 2), max_new_tokens=40, temperature=1.0))]
    gate.wait_held()
    late = engine.submit(req)
    gate.go.set()
    assert late.result().token_ids == alone
    assert all(c.result().usage["completion_tokens"] > 0 for c in companions)

    other_seed = make_engine().start().submit(GenerationRequest(**{**req.__dict__, "seed": 8})).result()
    assert other_seed.token_ids != alone


def test_cancel_frees_the_slot_and_the_others_finish(model_tok, make_engine):
    model, _ = model_tok
    engine = make_engine(max_batch_size=2)
    gate = Gate(engine, hold_at={4, 6})
    a = engine.submit(GenerationRequest(prompt(10, 1), max_new_tokens=100, stop_token_ids=NO_STOP))
    b = engine.submit(GenerationRequest(prompt(20, 2), max_new_tokens=100, stop_token_ids=NO_STOP))
    c = engine.submit(GenerationRequest(prompt(5, 3), max_new_tokens=10, stop_token_ids=NO_STOP))  # waits: full
    waiting = engine.submit(GenerationRequest(prompt(5, 4), max_new_tokens=10))
    engine.start()
    gate.wait_held()
    assert engine.stats()["running"] == 2 and engine.stats()["waiting"] == 2
    a.cancel()
    waiting.cancel()
    gate.go.set()
    gate.wait_held()  # two decode steps later: a is gone, c took its slot
    assert [e for e in a][-1].finish_reason == "cancelled"
    assert engine.stats()["running"] == 2 and engine.stats()["waiting"] == 0
    gate.go.set()
    assert a.result().finish_reason == "cancelled" and a.result().usage["completion_tokens"] < 100
    assert waiting.result().finish_reason == "cancelled" and waiting.result().token_ids == []
    assert (b.result().finish_reason, len(b.result().token_ids)) == ("length", 100)
    assert (c.result().finish_reason, len(c.result().token_ids)) == ("length", 10)
    assert engine.stats()["cancelled"] == 2


def test_queue_full_and_too_long_prompts(make_engine):
    engine = make_engine(max_queue=2)  # not started: submissions wait
    handles = [engine.submit(GenerationRequest(prompt(5, i), max_new_tokens=3)) for i in range(2)]
    with pytest.raises(QueueFull) as full:
        engine.submit(GenerationRequest(prompt(5), max_new_tokens=3))
    assert full.value.retry_after > 0
    with pytest.raises(ValueError, match="context is 512"):
        engine.submit(GenerationRequest(prompt(512)))
    engine.start()
    assert all(h.result().usage["completion_tokens"] >= 1 for h in handles)
    engine.submit(GenerationRequest(prompt(5), max_new_tokens=3)).result()  # room again


def test_length_and_stop_finish_reasons(model_tok, make_engine):
    engine = make_engine().start()
    req = GenerationRequest(prompt(8), max_new_tokens=12, temperature=1.0, seed=3, stop_token_ids=NO_STOP)
    h = engine.submit(req)
    events = list(h)
    done = events[-1]
    assert isinstance(done, Finished) and done.finish_reason == "length"
    assert (done.prompt_tokens, done.completion_tokens) == (8, 12)
    assert done.submit_time <= done.first_token_time <= done.finish_time
    tokens = [t for e in events if isinstance(e, Delta) for t in e.token_ids]
    assert tokens == h.result().token_ids and len(tokens) == 12

    stop = next(t for i, t in enumerate(tokens) if i >= 2 and t not in tokens[:i])  # same seed: same tokens
    r = engine.submit(GenerationRequest(**{**req.__dict__, "stop_token_ids": [stop]})).result()
    assert r.finish_reason == "stop" and r.token_ids == tokens[:tokens.index(stop) + 1]

    # the context bounds the reply: 510 prompt tokens leave room for 2
    r = engine.submit(GenerationRequest(prompt(510), max_new_tokens=50, stop_token_ids=NO_STOP)).result()
    assert (r.finish_reason, len(r.token_ids)) == ("length", 2)


def test_streamed_text_and_held_back_partial_characters(model_tok, make_engine):
    _, tok = model_tok
    engine = make_engine().start()
    h = engine.submit(GenerationRequest(prompt(6), max_new_tokens=30, temperature=1.0, seed=1))
    text = "".join(e.text for e in h if isinstance(e, Delta))
    r = h.result()
    ids = r.token_ids[:-1] if r.finish_reason == "stop" else r.token_ids
    assert text == r.text == tok.decode(ids, skip_special_tokens=True).rstrip("\ufffd")

    # byte-level BPE: accents and emoji span several tokens; long enough for the decoding window to slide often
    text = "é ✓ ok, naïve café — 日本語 🙂🙂 done. " * 4
    ids = tok.encode(text, add_special_tokens=False)
    row, deltas = SimpleNamespace(tokens=[], stop={-1}, text="", win=0, win_text=""), []
    for t in ids:
        row.tokens.append(t)
        deltas.append(engine._detok(row))
    assert "".join(deltas) == row.text == text and not any("\ufffd" in d for d in deltas)
    assert row.win > 0  # the window did slide


def test_async_consumers(make_engine):
    engine = make_engine().start()

    async def consume(h):
        return [e async for e in h.events()]

    async def main():
        hs = [engine.submit(GenerationRequest(prompt(n, n), max_new_tokens=9, stop_token_ids=NO_STOP))
              for n in (4, 19)]
        return await asyncio.gather(*(consume(h) for h in hs)), hs

    streams, handles = asyncio.run(main())
    for events, h in zip(streams, handles):
        assert isinstance(events[-1], Finished) and events[-1].completion_tokens == 9
        assert [t for e in events[:-1] for t in e.token_ids] == h.result().token_ids


@pytest.mark.parametrize("fused", [True, False])
def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(model_tok, make_engine, fused):
    engine = make_engine(fused=fused)
    forward, fire = engine._forward, threading.Event()

    def broken(*args):
        if fire.is_set():
            raise RuntimeError("device on fire")
        return forward(*args)

    engine._forward = broken
    engine.start()
    running = engine.submit(GenerationRequest(prompt(7), max_new_tokens=400, stop_token_ids=NO_STOP))
    next(iter(running))  # it is in the batch
    fire.set()
    h = engine.submit(GenerationRequest(prompt(5), max_new_tokens=5))
    assert [e for e in h][-1].finish_reason == "error"
    with pytest.raises(EngineError, match="device on fire"):
        h.result()
    assert [e for e in running][-1].finish_reason == "error"  # it shared the failed step
    fire.clear()
    assert engine.submit(GenerationRequest(prompt(5), max_new_tokens=5)).result().token_ids
    assert engine.stats()["errors"] == 2 and engine.stats()["running"] == 0


def test_generation_weights_are_bf16_on_any_cuda_device(monkeypatch):
    from chatforge.models.loading import weights_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for device in ("cuda", "cuda:0", "cuda:1", torch.device("cuda", 0)):
        assert weights_dtype(device) is torch.bfloat16, device
        assert weights_dtype(device, train=True) is torch.float32  # trainers keep float32 weights (autocast)
    assert weights_dtype("cpu") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert weights_dtype("cuda:0") is torch.float32
