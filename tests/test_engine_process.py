"""The engine in its own process (what `chatforge serve` runs): the same tokens as the engine in this process (greedy,
seeded and unseeded sampling), streamed events for sync and async consumers, cancel, the queue bound, stats, and
what happens when the engine process dies."""

import asyncio
import os
import signal
import time

import pytest
import torch

from chatforge.models.loading import load_model
from chatforge.serve.engine import Delta, Engine, EngineError, Finished, GenerationRequest, QueueFull
from chatforge.serve.engine_process import ProcessEngine

pytestmark = pytest.mark.slow
NO_STOP = [-1]


def prompt(n: int, salt: int = 0) -> list[int]:
    return [6 + (i * 37 + salt * 101) % 500 for i in range(n)]


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    torch.set_num_threads(1)
    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def remote(tiny_model_dir, model_tok):
    engine = ProcessEngine(str(tiny_model_dir), *model_tok, max_batch_size=4, max_queue=3).start()
    yield engine
    engine.shutdown()


def wait_for(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # bounded
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_same_tokens_as_the_engine_in_process(remote, model_tok):
    requests = [GenerationRequest(prompt(5), max_new_tokens=12, temperature=0, stop_token_ids=NO_STOP),
                GenerationRequest(prompt(9, 1), max_new_tokens=10, temperature=0.9, top_p=0.8, seed=11),
                GenerationRequest(prompt(3, 2), max_new_tokens=7, temperature=1.0, seed=5)]
    local = Engine(*model_tok, max_batch_size=4).start()
    try:
        expected = [local.submit(r).result(60) for r in requests]
    finally:
        local.shutdown()
    got = [h.result(60) for h in [remote.submit(r) for r in requests]]
    assert [c.token_ids for c in got] == [c.token_ids for c in expected]
    assert [c.text for c in got] == [c.text for c in expected]
    assert [c.usage for c in got] == [c.usage for c in expected]


def test_unseeded_requests_draw_their_seed_here(remote, model_tok):
    """An unseeded request's seed comes from this process's torch generator, as it would in-process."""
    req = GenerationRequest(prompt(6, 3), max_new_tokens=8, temperature=1.0, stop_token_ids=NO_STOP)
    torch.manual_seed(123)
    first = remote.submit(req).result(60).token_ids
    torch.manual_seed(123)
    assert remote.submit(req).result(60).token_ids == first


def test_streamed_events_sync_and_async(remote):
    h = remote.submit(GenerationRequest(prompt(4), max_new_tokens=9, temperature=0, stop_token_ids=NO_STOP))
    events = list(h)
    assert all(isinstance(e, Delta) for e in events[:-1]) and isinstance(events[-1], Finished)
    assert [t for e in events[:-1] for t in e.token_ids] == h.result().token_ids and events[-1].completion_tokens == 9
    assert "".join(e.text for e in events[:-1]) == h.result().text

    async def collect(x):
        return [e async for e in x.events()]

    async def main():
        hs = [remote.submit(GenerationRequest(prompt(n, n), max_new_tokens=6, stop_token_ids=NO_STOP))
              for n in (3, 11)]
        return await asyncio.gather(*(collect(x) for x in hs)), hs

    streams, handles = asyncio.run(main())
    for events, x in zip(streams, handles):
        assert isinstance(events[-1], Finished) and events[-1].completion_tokens == 6
        assert [t for e in events[:-1] for t in e.token_ids] == x.result().token_ids


def test_cancel_queue_bound_and_stats(remote):
    long = GenerationRequest(prompt(5), max_new_tokens=10_000, stop_token_ids=NO_STOP)  # to the context's end
    running = [remote.submit(long) for _ in range(4)]  # the batch (4 slots)
    waiting = [remote.submit(long) for _ in range(3)]  # the queue (3)
    with pytest.raises(QueueFull) as full:
        remote.submit(long)
    assert full.value.retry_after > 0
    wait_for(lambda: remote.stats().get("running") == 4)
    assert remote.stats()["max_queue"] == 3
    for h in waiting + running:
        h.cancel()
    assert {h.result(60).finish_reason for h in running + waiting} == {"cancelled"}
    assert all(h.result().token_ids == [] for h in waiting)
    wait_for(lambda: remote.stats()["running"] == 0 and remote.stats()["waiting"] == 0)
    assert remote.submit(GenerationRequest(prompt(3), max_new_tokens=2)).result(60).usage["completion_tokens"] >= 1


def test_bad_requests_are_refused_here(remote):
    with pytest.raises(ValueError, match="prompt is 0 tokens"):
        remote.submit(GenerationRequest([], max_new_tokens=3))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        remote.submit(GenerationRequest([remote.vocab_size], max_new_tokens=3))


def test_a_dead_engine_process_fails_its_requests(tiny_model_dir, model_tok):
    engine = ProcessEngine(str(tiny_model_dir), *model_tok).start()
    try:
        h = engine.submit(GenerationRequest(prompt(5), max_new_tokens=10_000, stop_token_ids=NO_STOP))
        next(iter(h))  # it is running
        os.kill(engine._proc.pid, signal.SIGKILL)
        assert [e for e in h][-1].finish_reason == "error"
        with pytest.raises(EngineError, match="engine process stopped"):
            h.result(30)
        with pytest.raises(RuntimeError, match="shut down"):
            engine.submit(GenerationRequest(prompt(5), max_new_tokens=3))
    finally:
        engine.shutdown()


def test_a_model_the_engine_process_cannot_load(tmp_path, model_tok):
    engine = ProcessEngine(str(tmp_path / "missing"), *model_tok)
    with pytest.raises(RuntimeError, match="did not start"):
        engine.start()
