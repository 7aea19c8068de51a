"""The chat service behind both the API and the web UI: one model, its engine, the store and moderation.

Routes turn HTTP into calls here; this file turns messages into prompt tokens (the model's own chat
template), checks limits, submits to the engine, applies stop strings, and asks moderation what to do.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from starlette.concurrency import run_in_threadpool

from chatforge.errors import ChatforgeError
from chatforge.serve.config import ServeConfig
from chatforge.serve.engine import Engine, Finished, GenerationRequest, QueueFull
from chatforge.serve.errors import APIError, bad_request

REFUSAL = "I can't help with that. If you're dealing with something difficult, I'm happy to help in a safe way."


def resolve_model(ref: str) -> tuple[str, str]:
    """(path, model id): a directory is served under its folder name, a registry ref under its ref."""
    from chatforge.models.registry import Registry

    if Path(ref).expanduser().exists():
        known = Registry().by_path(ref)
        return ref, known.ref if known else Path(ref).resolve().name
    version = Registry().get(ref)
    return version.path, version.ref


def make_engine(cfg: ServeConfig, model, tokenizer):
    if cfg.backend == "vllm":
        try:
            import torch

            from chatforge.serve.engine_vllm import VLLMEngine
        except ImportError as e:
            raise ChatforgeError("--backend vllm needs the vllm package (pip install vllm) on a GPU machine") from e
        if not torch.cuda.is_available():
            raise ChatforgeError("--backend vllm needs a CUDA GPU; use the default chatforge engine on a CPU")
        return VLLMEngine(str(resolve_model(cfg.model)[0]), max_batch_size=cfg.max_batch_size,
                          max_queue=cfg.max_queue)
    if cfg.backend != "chatforge":
        raise ChatforgeError(f"unknown backend '{cfg.backend}' (choose from: chatforge, vllm)")
    if cfg.engine_process:
        from chatforge.serve.engine_process import ProcessEngine

        return ProcessEngine(str(resolve_model(cfg.model)[0]), model, tokenizer, max_batch_size=cfg.max_batch_size,
                             max_queue=cfg.max_queue, threads=cfg.engine_threads)
    return Engine(model, tokenizer, max_batch_size=cfg.max_batch_size, max_queue=cfg.max_queue)


class StopText:
    """Cuts generated text at the first stop string, holding back any tail that could still become one."""

    def __init__(self, stops: list[str]):
        self.stops, self.text, self.sent = stops, "", 0

    def feed(self, delta: str) -> tuple[str, bool]:
        """(text safe to send now, whether a stop string was reached)."""
        self.text += delta
        hits = [i for i in (self.text.find(s, max(0, self.sent - len(s))) for s in self.stops) if i >= 0]
        if hits:
            cut = min(hits)
            out, self.sent, self.text = self.text[self.sent:cut], cut, self.text[:cut]
            return out, True
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
        end = max(self.sent, len(self.text) - hold)
        out, self.sent = self.text[self.sent:end], end
        return out, False

    def flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


@dataclass
class Reply:
    """One finished (or stopped) completion."""
    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    started: float = field(default_factory=time.monotonic)


class ChatService:
    def __init__(self, cfg: ServeConfig, model, tokenizer, store, moderator=None, policy=None):
        from chatforge.models.generate import stop_ids

        self.cfg, self.model, self.tok, self.store = cfg, model, tokenizer, store
        self.moderator, self.policy = moderator, policy
        self.model_id = cfg.model_id
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.stop_ids = stop_ids(model, tokenizer)
        self.engine = make_engine(cfg, model, tokenizer)
        self.rng = random.Random(cfg.seed)
        self.created = int(time.time())
        self._tagger = None

    def start(self) -> None:
        self.engine.start()

    def shutdown(self) -> None:
        self.engine.shutdown()

    # --- prompts and limits ---

    def encode(self, messages: list[dict]) -> list[int]:
        if not any(m["role"] == "user" for m in messages):
            raise bad_request("messages must contain at least one user message", "messages")
        msgs = [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
                for m in messages]
        try:
            ids = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        except Exception as e:  # noqa: BLE001 - a template that rejects this conversation (e.g. role order)
            raise bad_request(f"this model's chat template rejects these messages: {str(e).splitlines()[0]}",
                              "messages") from e
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def request(self, ids: list[int], max_tokens: int | None, temperature: float = 1.0, top_p: float = 1.0,
                seed: int | None = None) -> GenerationRequest:
        room = self.context - len(ids)
        if room < 1:
            raise APIError(400, f"This model's maximum context length is {self.context} tokens. However, your "
                           f"messages resulted in {len(ids)} tokens.", "context_length_exceeded", "messages")
        if max_tokens is not None and max_tokens > room:
            raise APIError(400, f"This model's maximum context length is {self.context} tokens. However, you "
                           f"requested {len(ids) + max_tokens} tokens ({len(ids)} in the messages, {max_tokens} "
                           "in the completion).", "context_length_exceeded", "max_tokens")
        limit = max_tokens if max_tokens is not None else min(room, self.cfg.default_max_tokens)
        return GenerationRequest(prompt_ids=ids, max_new_tokens=limit, temperature=temperature, top_p=top_p,
                                 seed=seed, stop_token_ids=self.stop_ids)

    def submit(self, req: GenerationRequest):
        try:
            return self.engine.submit(req)
        except QueueFull as e:
            wait = max(1, round(getattr(e, "retry_after", 1)))
            raise APIError(429, "The server is busy: too many requests are waiting. Retry shortly.",
                           "rate_limit_exceeded", headers={"Retry-After": str(wait)}) from e

    # --- generation ---

    async def texts(self, handle, stops: list[str], reply: Reply) -> AsyncIterator[str]:
        """A handle's text as it becomes safe to show, filling `reply`. One piece per wake-up: all the tokens that
        arrived since the last one (a consumer that fell behind gets them together, as one SSE chunk)."""
        cut = StopText(stops)
        try:
            async for event in handle.events():
                if isinstance(event, Finished):
                    if event.finish_reason == "error":
                        raise APIError(500, "The model failed while generating this reply.", "server_error")
                    reply.finish_reason = {"cancelled": "stop"}.get(event.finish_reason, event.finish_reason)
                    reply.completion_tokens = event.completion_tokens
                    break
                if reply.ttft_ms is None:
                    reply.ttft_ms = (time.monotonic() - reply.started) * 1000
                text, stopped = cut.feed(event.text)
                reply.text += text
                if stopped:
                    handle.cancel()
                    reply.finish_reason = "stop"
                    reply.completion_tokens = len(self.tok(reply.text, add_special_tokens=False)["input_ids"])
                    if text:
                        yield text
                    return
                if text:
                    yield text
            tail = cut.flush()
            reply.text += tail
            if tail:
                yield tail
        finally:
            handle.cancel()  # a no-op when finished; frees the slot when the client went away

    async def run(self, handle, stops: list[str], reply: Reply) -> Reply:
        """Consume a handle into `reply`."""
        async for _ in self.texts(handle, stops, reply):
            pass
        return reply

    async def complete(self, handle, stops: list[str], prompt_tokens: int, request=None) -> Reply:
        """A whole reply; if the HTTP client disconnects meanwhile, the request is cancelled at once."""
        reply = Reply(prompt_tokens=prompt_tokens)
        task = asyncio.ensure_future(self.run(handle, stops, reply))
        while not task.done():
            await asyncio.wait([task], timeout=0.25)
            if request is not None and not task.done() and await request.is_disconnected():
                handle.cancel()
        return task.result()

    # --- moderation ---

    def moderate(self, texts: list[str]) -> list[dict]:
        return self.moderator.classify(texts) if self.moderator else [
            {"flagged": False, "categories": {}, "category_scores": {}} for _ in texts]

    async def decide_async(self, text: str, role: str) -> tuple[str, list[str], dict]:
        """decide() from the event loop: in the threadpool when there is a classifier to run, at once (no thread
        hop) when there is none."""
        if not self.moderator or not text:
            return "allow", [], {}
        return await run_in_threadpool(self.decide, text, role)

    def decide(self, text: str, role: str) -> tuple[str, list[str], dict]:
        """(action, triggering categories, raw result) for one input or output text."""
        if not self.moderator or not text:
            return "allow", [], {}
        result = self.moderator.classify([text])[0]
        action, cats = self.policy.decide(result, role)
        if result["flagged"]:  # kept for monitoring and audits; clean texts are not written
            scores = {c: round(v, 4) for c, v in result["category_scores"].items() if v >= 0.01}
            self.store.add_moderation(role, scores, True, action)
        return action, list(cats), result

    def tag_family(self, text: str) -> str:
        """Which prompt family a message looks like (for usage monitoring), in the world the model was made in."""
        from chatforge.moderation.topics import FamilyTagger

        try:
            if self._tagger is None:
                self._tagger = FamilyTagger.for_model(getattr(self.model, "name_or_path", None))
            return self._tagger.tag(text)
        except Exception:  # noqa: BLE001 - monitoring must never break a chat
            return "unknown"

    def side_by_side(self, forced: bool) -> bool:
        return forced or self.rng.random() < self.cfg.compare_rate

    def log_request(self, last_user: str, **fields) -> None:
        """Log a finished request for monitoring, off the response path (the store's background writer, which also
        tags the prompt family there)."""
        self.store.log_request_later(model=self.model_id, family=lambda: self.tag_family(last_user), **fields)


async def interleave(streams: list[AsyncIterator[str]]) -> AsyncIterator[tuple[int, str]]:
    """(index, text) from several text streams as their text comes; text of one stream that is already waiting is
    joined into one piece. One stream is read directly (no task, no queue: the common n=1 case)."""
    if len(streams) == 1:
        async for text in streams[0]:
            yield 0, text
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream):
        try:
            async for text in stream:
                queue.put_nowait((i, text))
        finally:
            queue.put_nowait((i, None))  # this stream is over

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        left = len(streams)
        while left:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            waiting: dict[int, str] = {}
            for i, text in items:
                if text is not None:
                    waiting[i] = waiting.get(i, "") + text
                    continue
                left -= 1
                if tasks[i].exception() is not None:
                    raise tasks[i].exception()
            for i, text in waiting.items():
                yield i, text
    finally:
        for t in tasks:
            t.cancel()
