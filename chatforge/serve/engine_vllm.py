"""engine.py's interface over vLLM, for GPU deployments: the same submit / RequestHandle / events, vLLM underneath.

    from chatforge.serve.engine_vllm import VLLMEngine
    engine = VLLMEngine("runs/small/sft/model", max_batch_size=128).start()

Optional and never imported unless asked (vllm needs a GPU). Not run on a GPU yet: written against vLLM's documented
LLMEngine API (from_engine_args, add_request, step, abort_request; cumulative RequestOutput) on a machine with neither
vllm nor a GPU; tests/test_engine_vllm.py checks this adapter against a fake vllm that follows that contract.
Per-request seeds, stop ids and top-p are vLLM's own; its scheduler decides the batch.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

from chatforge.models.markup import DOC_END
from chatforge.serve.engine import Completion, Delta, Finished, GenerationRequest, QueueFull, RequestHandle


class VLLMEngine:
    def __init__(self, model_path: str, max_batch_size: int = 256, max_queue: int = 1024, **engine_args):
        from vllm import EngineArgs, LLMEngine

        self.llm = LLMEngine.from_engine_args(EngineArgs(model=model_path, max_num_seqs=max_batch_size,
                                                         **engine_args))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = self.llm.model_config.max_model_len
        ids = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(DOC_END)]
        self.default_stop = [i for i in ids if i is not None and i != self.tokenizer.unk_token_id]
        self.max_batch_size, self.max_queue, self.device = max_batch_size, max_queue, "cpu"
        self._lock, self._new, self._live, self._ids = threading.Condition(), deque(), {}, itertools.count()
        self._thread, self._closed = None, False
        self._counts = dict(finished=0, cancelled=0, errors=0, tokens_generated=0, steps=0)

    def start(self) -> VLLMEngine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="chatforge-vllm", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, timeout: float | None = 30) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, request: GenerationRequest) -> RequestHandle:
        n = len(request.prompt_ids)
        if n == 0 or n >= self.max_context:
            raise ValueError(f"prompt is {n} tokens; this model takes 1 to {self.max_context - 1}")
        handle = RequestHandle(self, request, set(request.stop_token_ids or self.default_stop),
                               min(request.max_new_tokens, self.max_context - n))
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine is shut down")
            if len(self._new) + len(self._live) >= self.max_queue:
                raise QueueFull(1.0)
            self._new.append(handle)
            self._lock.notify_all()
        return handle

    def stats(self) -> dict:
        return {"running": len(self._live), "waiting": len(self._new), **self._counts, "mean_batch": None,
                "max_batch_size": self.max_batch_size, "max_queue": self.max_queue}

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def _loop(self) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or self._new or self._live)
                if self._closed:
                    break
                new, self._new = list(self._new), deque()
            for h in new:
                r = h.request
                h.rid = str(next(self._ids))
                self._live[h.rid] = h
                self.llm.add_request(h.rid, TokensPrompt(prompt_token_ids=list(r.prompt_ids)), SamplingParams(
                    temperature=r.temperature, top_p=r.top_p, max_tokens=h.limit, seed=r.seed,
                    stop_token_ids=list(h.stop), skip_special_tokens=True))
            gone = [h for h in self._live.values() if h.cancelled]
            if gone:
                self.llm.abort_request([h.rid for h in gone])
                for h in gone:
                    self._finish(h, "cancelled")
            try:
                outputs = self.llm.step()
            except Exception as e:  # noqa: BLE001 - fail the requests, keep the thread
                for h in list(self._live.values()):
                    self._finish(h, "error", f"{type(e).__name__}: {e}")
                continue
            self._counts["steps"] += 1
            for out in outputs:
                h = self._live.get(out.request_id)
                if h is None:
                    continue
                c = out.outputs[0]  # cumulative token ids and text
                new_ids = list(c.token_ids[len(h.tokens):])
                h.tokens += new_ids
                h.first_token_time = h.first_token_time or time.monotonic()
                self._counts["tokens_generated"] += len(new_ids)
                text = c.text.rstrip("\ufffd")
                delta, h.text = (text[len(h.text):], text) if text.startswith(h.text) else ("", h.text)
                if new_ids or delta:
                    h._emit(Delta(delta, new_ids))
                if out.finished:
                    self._finish(h, {"abort": "cancelled"}.get(c.finish_reason, c.finish_reason or "stop"))
        for h in list(self._live.values()) + list(self._new):
            self._finish(h, "error", "engine shut down")

    def _finish(self, h: RequestHandle, reason: str, error: str | None = None) -> None:
        self._live.pop(getattr(h, "rid", None), None)
        if h.completion is not None:
            return
        n, p = len(h.tokens), len(h.request.prompt_ids)
        done = Finished(reason, p, n, h.first_token_time, time.monotonic(), h.submit_time, error)
        self._counts["finished"] += 1
        self._counts["cancelled"] += reason == "cancelled"
        self._counts["errors"] += reason == "error"
        usage = {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}
        h._emit(done, Completion(h.text, list(h.tokens), reason, usage, done))
