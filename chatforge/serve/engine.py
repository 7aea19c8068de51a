"""Continuous batching: one causal LM serving many concurrent requests, one forward pass for all of them at a time.

A background thread owns the model. Each turn of its loop: drop cancelled requests; admit waiting ones (while fewer
than max_batch_size run, about prefill_chunk prompt tokens a turn); then one step: a forward pass over the running
rows' last tokens and the newcomers' prompts, one token sampled for every row, streamed. A request leaves as soon as
it stops, reaches max_new_tokens or the model's context, or is cancelled.

The running batch lives in buffers allocated once (and grown rarely): per layer K and V [slots, kv heads, columns,
head dim], an attention mask [slots, columns] and per-slot positions and last tokens. Row i of the batch is slot i.
Every row's cache ends at the same column (`end` - 1; shorter rows start later, their earlier columns masked), so a
step writes one new column in place and attends over the live columns [lo, end].

What the choices save, on the 4M-parameter demo SFT model, CPU, 32 closed-loop clients, 128 chat requests (~20-token
prompts, ~18-token replies), completion tokens/s, medians of interleaved runs (bench/serve_throughput.py):
- in-place cache, swap-remove of finished rows, batched sampling, incremental detokenisation (the model's own
  forward, `fused=False`): 878 -> 1220 at 1 torch thread, 1342 -> 1839 at 2.
  transformers' DynamicCache torch.cat's the whole cache onto each new token in every layer (a fresh allocation and a
  copy: 3.8 of 8.7 ms of a 32-row step in isolation, less in the engine where the buffers' reads are cold instead);
  a finished row is replaced by the batch's last row (one row copied, not the whole cache re-gathered by
  `batch_select_indices`); per-row torch.multinomial with per-row generators and a full-vocabulary sort for top-p
  took ~5 ms a step at 32 rows, batched top-k-first sampling ~0.3-0.6 ms.
- the fused step (Llama-style models, `fusable`): the newcomers' prompt tokens go through the linear layers with
  the running rows' tokens as one flat batch, instead of a separate prefill call (a second pass over the weights,
  left padding, transformers' mask building and module overhead): 1220 -> 1594 at 1 thread, 1839 -> 2147 at 2.
What is left is mostly the matrix multiplies (about 55% of a step at 1 thread, near this CPU's fp32 peak for these
shapes) and attention over the cache (about 15%).

Why not transformers' own continuous batching (5.24: `generate_batch`, `init_continuous_batching`)? Tried on the
4M-parameter demo model, CPU, one thread: it is correct (greedy output equal to `generate` on 16/16 prompts) but
- sampling draws from the global torch RNG seeded once per manager, so a seeded request's tokens depend on what
  else is in the batch; do_sample is per manager, not per request;
- after `cancel_request`, `request_id_iter` never yields a final output: a streaming client hangs (killed at 200 s);
- a cold `generate_batch` took 12 s for 16 prompts x 32 tokens (paged-cache setup) against 0.8 s for 16 sequential
  `model.generate` calls (0.7 s once warm).
So this is a compact engine on transformers' Cache API that runs wherever the model runs (CPU or GPU, full-attention
models). For big GPU deployments see engine_vllm.py.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from chatforge.models.generate import stop_ids
from chatforge.train.rollout import left_pad, positions

log = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_new_tokens: int = 128
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None  # same seed + same prompt + same settings = same tokens, whatever else runs
    stop_token_ids: list[int] = ()  # empty: the model's stop ids (stop_ids(model, tok))


@dataclass
class Delta:
    text: str  # may be "" (an incomplete multi-byte character is held back; stop tokens have no text)
    token_ids: list[int]


@dataclass
class Finished:
    finish_reason: str  # "stop" | "length" | "cancelled" | "error"
    prompt_tokens: int
    completion_tokens: int
    first_token_time: float | None  # time.monotonic()
    finish_time: float
    submit_time: float = 0.0
    error: str | None = None  # set when finish_reason == "error"


Event = Delta | Finished


@dataclass
class Completion:
    text: str
    token_ids: list[int]  # including the stop token, if it stopped on one
    finish_reason: str
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    finished: Finished | None = None


def check_request(request: GenerationRequest, max_context: int, vocab_size: int) -> None:
    """ValueError for a request no engine can run."""
    ids, n = list(request.prompt_ids), len(request.prompt_ids)
    if n == 0 or n >= max_context:
        raise ValueError(f"prompt is {n} tokens; this model takes 1 to {max_context - 1} "
                         f"(its context is {max_context}, and the reply needs room)")
    if min(ids) < 0 or max(ids) >= vocab_size:
        raise ValueError(f"prompt has token ids outside the vocabulary (0..{vocab_size - 1})")
    if request.max_new_tokens < 1 or request.temperature < 0 or not 0 < request.top_p <= 1:
        raise ValueError("need max_new_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")


def fast_decode(tokenizer):
    """ids -> tokenizer.decode(ids, skip_special_tokens=True), straight from the `tokenizers` backend where that gives
    the same text (a fast tokenizer that does no clean-up of spaces): transformers' wrapper around it took ten times
    the decoding itself, once per row per step."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and getattr(tokenizer, "clean_up_tokenization_spaces", None) is False:
        return functools.partial(backend.decode, skip_special_tokens=True)
    return functools.partial(tokenizer.decode, skip_special_tokens=True)


class QueueFull(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"the engine's waiting queue is full; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


class EngineError(RuntimeError):
    """result() of a request that failed in the engine."""


def coalesce(events: list[Event]) -> list[Event]:
    """Consecutive Deltas as one: a consumer that fell behind gets one event (one SSE chunk to format and send) for
    all the tokens it missed, instead of one per token."""
    out = []
    for e in events:
        if out and isinstance(e, Delta) and isinstance(out[-1], Delta):
            out[-1] = Delta(out[-1].text + e.text, out[-1].token_ids + e.token_ids)
        else:
            out.append(e)
    return out


@dataclass(frozen=True, eq=False)
class Waker:
    """An async consumer of a RequestHandle, waiting on `event` in `loop` (or anything else that takes a step's
    hand-over through a `call_soon_threadsafe(callback, events)`: engine_process sends it to the server process)."""
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


def _set_all(events: list[asyncio.Event]) -> None:
    for e in events:
        e.set()


def wake_all(wakers: list[Waker]) -> None:
    """Wake async consumers from the engine thread: one call_soon_threadsafe per event loop (a self-pipe write and a
    loop wake-up), however many requests got a token this step, not one per request per token."""
    by_loop: dict = {}
    for w in wakers:
        by_loop.setdefault(w.loop, []).append(w.event)
    for loop, events in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, events)
        except RuntimeError:  # that loop is closed: its consumers are gone
            pass


class RequestHandle:
    """One request: its events (a sync and an async iterator, any number of consumers) and, once done, its result."""

    def __init__(self, engine: Engine, request: GenerationRequest, stop: set[int], limit: int):
        self.request, self.stop, self.limit, self._engine = request, stop, limit, engine
        self.submit_time, self.first_token_time = time.monotonic(), None
        self.cancelled = False
        # this request's own random numbers (one uniform per sampled token): a seeded request draws the same ones
        # whatever else is in the batch; an unseeded one takes its seed from torch's global generator
        self.seed = request.seed if request.seed is not None else int(torch.randint(1 << 62, ()))
        self.rng = random.Random(self.seed)
        self.tokens: list[int] = []  # generated so far
        self.text = ""  # text sent so far
        self.win, self.win_text = 0, ""  # incremental decoding: the window's first token and its text so far
        self.completion: Completion | None = None
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._wakers: list = []

    def cancel(self) -> None:
        self.cancelled = True
        self._engine._wake()

    def _emit(self, event: Event, completion: Completion | None = None, wake: list | None = None) -> None:
        """Add an event and wake its consumers; with `wake`, the async consumers' wake-ups are appended to it instead,
        for the caller to hand over in one batch (wake_all) once it has emitted a whole step's events."""
        with self._cond:
            self._events.append(event)
            self.completion = completion or self.completion
            self._cond.notify_all()
            wakers = [w for w in self._wakers if not w.event.is_set()]  # set: a wake-up is already due
        if wake is None:
            wake_all(wakers)
        else:
            wake.extend(wakers)

    def __iter__(self):
        i = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: len(self._events) > i)
                new = self._events[i:]
            i += len(new)
            yield from coalesce(new)
            if isinstance(new[-1], Finished):
                return

    async def events(self):
        wake = Waker(asyncio.get_running_loop(), asyncio.Event())
        ready = wake.event
        with self._cond:
            self._wakers.append(wake)
        i = 0
        try:
            while True:
                ready.clear()  # before reading, so an event emitted after the read sets it again
                with self._cond:
                    new = self._events[i:]
                i += len(new)
                for event in coalesce(new):
                    yield event
                    if isinstance(event, Finished):
                        return
                if not new:
                    await ready.wait()
        finally:
            with self._cond:
                self._wakers.remove(wake)

    def result(self, timeout: float | None = None) -> Completion:
        with self._cond:
            if not self._cond.wait_for(lambda: self.completion is not None, timeout):
                raise TimeoutError("request still running")
        if self.completion.finish_reason == "error":
            raise EngineError(self.completion.finished.error)
        return self.completion


TOP_K = 32  # the nucleus is looked for among this many most likely tokens first (see sample)
DETOK_CONTEXT = 4  # tokens of already-sent text kept in the decoding window (see Engine._detok)


@functools.cache
def _slot_layer():
    """The cache layer class of the running batch (built on first use: transformers is imported lazily)."""
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """One layer's KV cache of the running batch in preallocated buffers `k`, `v` [slots, heads, columns, dim].
        `keys`/`values` are views of the live rows and columns [lo, end); update() writes the new column in place
        where DynamicLayer.update would torch.cat the whole cache (a fresh allocation and a copy, every step)."""

        def __init__(self, k: torch.Tensor, v: torch.Tensor):
            super().__init__()
            self.k, self.v, self.lo = k, v, 0
            self.device, self.is_initialized = k.device, True

        def update(self, keys, values, *args, **kwargs):
            n, end, new = keys.shape[0], self.lo + self.keys.shape[2], keys.shape[2]
            self.k[:n, :, end:end + new] = keys
            self.v[:n, :, end:end + new] = values
            self.keys, self.values = self.k[:n, :, self.lo:end + new], self.v[:n, :, self.lo:end + new]
            return self.keys, self.values

    return SlotLayer


def sample(probs: torch.Tensor, top_p: list[float], u: torch.Tensor) -> torch.Tensor:
    """One token per row of probs [B, V] from its nucleus (the smallest set of most likely tokens whose mass reaches
    top_p; every token when top_p >= 1), by inverse-CDF sampling with the row's uniform number u [B].
    The nucleus is looked for among the TOP_K most likely tokens first: torch.topk takes ~0.1 ms at 32 x 2048 where a
    full sort takes ~3 ms. The few rows whose nucleus is wider (2% on the demo model at T 0.7, top-p 0.9) are sorted;
    top_p = 1 rows need no order at all. Which path a row takes depends on that row alone, so a seeded request's
    tokens still do not depend on its batch companions."""
    B, V = probs.shape
    p = torch.tensor(top_p, dtype=probs.dtype, device=probs.device)
    if min(top_p) >= 1:
        return _draw(probs, None, p, u)
    vals, idx = probs.topk(min(TOP_K, V), dim=-1)
    tokens = _draw(vals, idx, p, u)  # right for every row whose nucleus lies in its top K
    wide = [i for i, (inside, q) in enumerate(zip((vals.sum(-1) >= p).tolist(), top_p)) if q >= 1 or not inside]
    whole, rest = [i for i in wide if top_p[i] >= 1], [i for i in wide if top_p[i] < 1]
    if whole:
        tokens[whole] = _draw(probs[whole], None, p[whole], u[whole])
    if rest:
        tokens[rest] = _draw(*probs[rest].sort(dim=-1, descending=True), p[rest], u[rest])
    return tokens


def _draw(probs: torch.Tensor, ids: torch.Tensor | None, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from each row's nucleus. probs [B, K] sorted descending where top_p < 1 (ids: their token
    ids; None = the column is the token id). The nucleus is a prefix: the tokens whose preceding mass is below top_p,
    and always the first one (a top_p that underflows in float32)."""
    cum = probs.double().cumsum(-1)
    inside = (cum - probs < top_p.masked_fill(top_p >= 1, 2.0)[:, None]).sum(-1, keepdim=True).clamp_(min=1)
    mass = cum.gather(1, inside - 1)
    j = torch.searchsorted(cum, u[:, None] * mass, right=True)  # first token whose cumulative mass passes u x mass
    j = torch.minimum(j, inside - 1)  # (u x mass rounding up to mass)
    return (j if ids is None else ids.gather(1, j)).squeeze(1)


def fusable(model) -> bool:
    """Whether the engine can run `model` itself (Engine._forward_fused): a Llama-style decoder (Llama, Mistral,
    Qwen2) built from the usual modules, whose layers it calls one by one."""
    config, inner = model.config, getattr(model, "model", None)
    if config.model_type not in ("llama", "mistral", "qwen2") or getattr(config, "pretraining_tp", 1) != 1:
        return False
    parts = ["lm_head", "model.embed_tokens", "model.norm", "model.rotary_emb"] + [
        f"model.layers.{i}.{p}" for i in range(config.num_hidden_layers)
        for p in ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn.q_proj", "self_attn.k_proj",
                  "self_attn.v_proj", "self_attn.o_proj")]
    try:
        for p in parts:
            model.get_submodule(p)
    except AttributeError:
        return False
    return not any(hasattr(layer.self_attn, "q_norm") for layer in inner.layers)  # (Qwen3's extra norms)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Engine:
    def __init__(self, model, tokenizer, max_batch_size: int = 32, max_queue: int = 256, prefill_chunk: int = 2048,
                 fused: bool | None = None):
        """fused: run the model's layers here, the newcomers' prompts in the same step as the running rows (None:
        whenever `fusable(model)`); False: through the model's own forward, any full-attention model."""
        self.model, self.tokenizer, self.device = model, tokenizer, model.device
        self.max_batch_size, self.max_queue, self.prefill_chunk = max_batch_size, max_queue, prefill_chunk
        self.max_context: int = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self.default_stop = stop_ids(model, tokenizer)
        from transformers.cache_utils import DynamicCache, DynamicLayer

        if any(type(layer) is not DynamicLayer for layer in DynamicCache(config=model.config).layers):
            raise ValueError("this engine serves full-attention models only (the cache is one column per token "
                             "for every row); use engine_vllm for sliding-window or hybrid models")
        self.fused = fusable(model) if fused is None else fused
        if self.fused and not fusable(model):
            raise ValueError(f"fused=True needs a Llama-style model, not {type(model).__name__}")
        self._forward = self._forward_fused if self.fused else self._forward_hf
        self.pad_id = tokenizer.pad_token_id or 0
        self._decode = fast_decode(tokenizer)
        self._lock = threading.Condition()
        self._waiting: deque[RequestHandle] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        # the running batch; only the engine thread touches these. Row i is slot i of the buffers.
        self._rows: list[RequestHandle] = []
        self._cache = None  # a transformers Cache of SlotLayers (the K/V buffers)
        self._mask = self._pos = self._last = None  # [slots, columns] bool; [slots] long: next position, last token
        self._lo = self._end = 0  # the live columns [lo, end): every row's cache ends at column end - 1
        self._counts = dict(finished=0, cancelled=0, errors=0, tokens_generated=0, steps=0, batch_rows=0)
        self._latency = 1.0  # moving average of request durations, for QueueFull.retry_after

    # ---- the public side (any thread) ----
    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="chatforge-engine", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, timeout: float | None = 30) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._fail(list(self._waiting), "engine shut down")

    def submit(self, request: GenerationRequest) -> RequestHandle:
        check_request(request, self.max_context, self.vocab_size)
        n = len(request.prompt_ids)
        stop = set(request.stop_token_ids or self.default_stop)
        handle = RequestHandle(self, request, stop, min(request.max_new_tokens, self.max_context - n))
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine is shut down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(round(max(0.1, self._latency * len(self._waiting) / self.max_batch_size), 1))
            self._waiting.append(handle)
            self._lock.notify_all()
        return handle

    def stats(self) -> dict:
        c, rows, width = dict(self._counts), self._rows, self._end - self._lo
        return {"running": sum(not h.cancelled for h in rows),  # a cancelled row is over for its client
                "waiting": len(self._waiting), **c,
                "mean_batch": round(c["batch_rows"] / c["steps"], 2) if c["steps"] else 0.0,
                "cache_len": width if rows else 0,
                "max_batch_size": self.max_batch_size, "max_queue": self.max_queue}

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    # ---- the engine thread ----
    @torch.inference_mode()
    def _loop(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or self._waiting or self._rows)
                if self._closed:
                    break
                gone = [h for h in self._waiting if h.cancelled]
                if gone:
                    self._waiting = deque(h for h in self._waiting if not h.cancelled)
            for h in gone:
                self._finish(h, "cancelled")
            self._guarded(self._drop_cancelled, self._rows)  # cancelled rows leave before the next step
            with self._lock:
                newcomers = self._admit()
            if self._rows or newcomers:
                self._guarded(lambda: self._step(newcomers), self._rows + newcomers)
        self._fail(self._rows + list(self._waiting), "engine shut down")

    def _admit(self) -> list[RequestHandle]:
        """Waiting requests to start now: room in the batch, and about prefill_chunk padded prompt tokens."""
        taken, width = [], 0
        while self._waiting and len(self._rows) + len(taken) < self.max_batch_size:
            w = max(width, len(self._waiting[0].request.prompt_ids))
            if taken and w * (len(taken) + 1) > self.prefill_chunk:
                break
            taken.append(self._waiting.popleft())
            width = w
        return taken

    def _guarded(self, fn, victims: list[RequestHandle]) -> None:
        """Run fn; if it raises, fail the requests it concerned and drop the running batch if they were in it."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - whatever breaks, the clients must hear of it and the loop go on
            log.exception("engine step failed")
            if any(h in self._rows for h in victims):
                victims = list(dict.fromkeys(victims + self._rows))
                self._rows, self._lo, self._end = [], 0, 0
            self._fail(victims, f"{type(e).__name__}: {e}")

    def _step(self, newcomers: list[RequestHandle]) -> None:
        """One forward for the running rows (their next token) and the newcomers (their prompt), then sample one
        token for each, stream them, and let finished rows go."""
        n = len(self._rows)
        if newcomers:
            self._seat(newcomers)
        elif self._end == self._mask.shape[1]:  # no free column for this step: move the live ones left (or grow)
            self._place(n, self._end - self._lo)
        self._mask[:n, self._end] = True
        logits = self._forward(n, newcomers)
        rows = self._rows
        self._end += 1
        self._pos[:n] += 1
        self._counts["steps"] += 1
        self._counts["batch_rows"] += len(rows)
        tokens = self._pick(logits, rows)
        self._last[:len(rows)] = tokens
        wake: list[Waker] = []
        keep, done = self._advance(rows, tokens, wake)
        self._select(keep)
        for h, reason in done:
            self._finish(h, reason, wake=wake)
        wake_all(wake)  # every consumer of this step's tokens, in one hand-over per event loop

    def _seat(self, newcomers: list[RequestHandle]) -> None:
        """Give newcomers the next free slots. This step writes their prompts' cache to the columns up to `end`
        included, where the running rows write their new token: all rows end at the same column after it."""
        n, m, longest = len(self._rows), len(newcomers), max(len(h.request.prompt_ids) for h in newcomers)
        if not self._rows:
            self._lo = self._end = 0
        if self._mask is None or n + m > self._mask.shape[0] or not longest - 1 <= self._end < self._mask.shape[1]:
            self._place(n + m, max(self._end - self._lo, longest - 1))
        lens = torch.tensor([len(h.request.prompt_ids) for h in newcomers], device=self.device)
        columns = torch.arange(self._mask.shape[1], device=self.device)
        self._mask[n:n + m] = (columns >= self._end + 1 - lens[:, None]) & (columns <= self._end)
        self._pos[n:n + m] = lens
        self._rows = self._rows + newcomers

    def _forward_fused(self, n: int, newcomers: list[RequestHandle]) -> torch.Tensor:
        """Next-token logits [n + newcomers] of the running rows and the newcomers, in one pass: the model's own
        modules, called layer by layer on one flat batch of tokens (each running row's last token, then every
        newcomer's prompt tokens). Against a separate prefill call through the model's forward, this saves a
        second pass over the weights, the left padding of prompts of different lengths, and transformers' mask
        building and module overhead: about a third of the time per step with a few newcomers on the demo model.
        Attention: running rows over their cache columns [lo, end] (the new one written in place), newcomers over
        their own prompt (causal, block-diagonal), whose keys and values go to their slots."""
        model, lo, end, dev = self.model.model, self._lo, self._end, self.device
        lens = [len(h.request.prompt_ids) for h in newcomers]
        prompt = torch.tensor([t for h in newcomers for t in h.request.prompt_ids], dtype=torch.long, device=dev)
        local = torch.tensor([i for k in lens for i in range(k)], dtype=torch.long, device=dev)  # position in prompt
        x = model.embed_tokens(torch.cat([self._last[:n], prompt]))  # [tokens, hidden]
        cos, sin = (c[0, :, None, :] for c in model.rotary_emb(x[None], torch.cat([self._pos[:n], local])[None]))
        if newcomers:
            seg = torch.repeat_interleave(torch.arange(len(lens), device=dev), torch.tensor(lens, device=dev))
            causal = (seg[:, None] == seg[None, :]) & (local[:, None] >= local[None, :])
            slot, column = n + seg, end + 1 - torch.tensor(lens, device=dev)[seg] + local
        mask = self._mask[:n, None, None, lo:end + 1]
        for layer, cache in zip(model.layers, self._cache.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q, k, v = (proj(h).view(len(x), -1, attn.head_dim) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin  # [tokens, heads, head dim]
            gqa, out = q.shape[1] != k.shape[1], []
            if n:
                cache.k[:n, :, end], cache.v[:n, :, end] = k[:n], v[:n]
                out.append(F.scaled_dot_product_attention(
                    q[:n, :, None], cache.k[:n, :, lo:end + 1], cache.v[:n, :, lo:end + 1], attn_mask=mask,
                    scale=attn.scaling, enable_gqa=gqa)[:, :, 0])
            if newcomers:
                cache.k[slot, :, column], cache.v[slot, :, column] = k[n:], v[n:]
                out.append(F.scaled_dot_product_attention(  # (4-D: the flash kernel, ~1/3 faster than 3-D's math)
                    q[None, n:].transpose(1, 2), k[None, n:].transpose(1, 2), v[None, n:].transpose(1, 2),
                    attn_mask=causal, scale=attn.scaling, enable_gqa=gqa)[0].transpose(0, 1))
            x = x + attn.o_proj(torch.cat(out).flatten(1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        last = list(range(n)) + [n + i - 1 for i in itertools.accumulate(lens)]
        return self.model.lm_head(model.norm(x[last]))

    def _forward_hf(self, n: int, newcomers: list[RequestHandle]) -> torch.Tensor:
        """The same through the model's own forward (any full-attention model): one call for the running rows, on
        a Cache of SlotLayers, and one for the newcomers' prompts (left-padded), whose cache is then copied over."""
        from transformers import DynamicCache

        lo, end, logits = self._lo, self._end, []
        if n:
            for layer in self._cache.layers:
                layer.lo, layer.keys, layer.values = lo, layer.k[:n, :, lo:end], layer.v[:n, :, lo:end]
            out = self.model(input_ids=self._last[:n, None], attention_mask=self._mask[:n, lo:end + 1],
                             position_ids=self._pos[:n, None], cache=self._cache, use_cache=True)
            logits.append(out.logits[:, -1])
        if newcomers:
            ids, mask = left_pad([h.request.prompt_ids for h in newcomers], self.pad_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            cache = DynamicCache(config=self.model.config)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), cache=cache,
                             use_cache=True, logits_to_keep=1)
            logits.append(out.logits[:, -1])
            rows, columns = slice(n, n + len(newcomers)), slice(end + 1 - ids.shape[1], end + 1)
            for slot, layer in zip(self._cache.layers, cache.layers):
                slot.k[rows, :, columns], slot.v[rows, :, columns] = layer.keys, layer.values
        return torch.cat(logits)

    def _drop_cancelled(self) -> None:
        gone = [h for h in self._rows if h.cancelled]
        if gone:
            self._select([i for i, h in enumerate(self._rows) if not h.cancelled])
            for h in gone:
                self._finish(h, "cancelled")

    def _pick(self, logits: torch.Tensor, rows: list[RequestHandle]) -> torch.Tensor:
        """Next token per row: greedy (temperature 0), or temperature + top-p, all sampled rows at once."""
        logits = logits.float()
        hot = [i for i, h in enumerate(rows) if h.request.temperature > 0]
        if not hot:
            return logits.argmax(-1)
        every = len(hot) == len(rows)
        temp = torch.tensor([rows[i].request.temperature for i in hot], device=self.device)[:, None]
        probs = torch.softmax((logits if every else logits[hot]) / temp, dim=-1)
        u = torch.tensor([rows[i].rng.random() for i in hot], dtype=torch.float64, device=self.device)
        drawn = sample(probs, [rows[i].request.top_p for i in hot], u)
        if every:
            return drawn
        tokens = logits.argmax(-1)
        tokens[hot] = drawn
        return tokens

    def _advance(self, rows: list[RequestHandle], tokens: torch.Tensor, wake: list[Waker]):
        """Record one new token per row and stream it (async consumers' wake-ups go to `wake`); (rows that go on,
        [(row, finish reason)] for the others)."""
        now, keep, done = time.monotonic(), [], []
        for i, (h, t) in enumerate(zip(rows, tokens.tolist())):
            h.tokens.append(t)
            h.first_token_time = h.first_token_time or now
            reason = "stop" if t in h.stop else "length" if len(h.tokens) >= h.limit else None
            h._emit(Delta(self._detok(h), [t]), wake=wake)
            if reason:
                done.append((h, reason))
            else:
                keep.append(i)
        self._counts["tokens_generated"] += len(rows)
        return keep, done

    def _detok(self, h: RequestHandle) -> str:
        """The new text. Decodes a window of the reply, from a few tokens already sent (context: a token's text can
        depend on the one before, e.g. a sentencepiece leading space) to the newest, not the whole reply every step;
        and holds back a trailing incomplete character (U+FFFD: bytes of a character whose other bytes are in
        tokens still to come, or never, if the reply ends)."""
        ids = h.tokens[:-1] if h.tokens[-1] in h.stop else h.tokens
        text = self._decode(ids[h.win:])
        complete = not text.endswith("\ufffd")
        text = text.rstrip("\ufffd")
        if not text.startswith(h.win_text):  # earlier text changed on re-decoding: nothing sane to send
            return ""
        new, h.win_text = text[len(h.win_text):], text
        h.text += new
        if complete and len(ids) - h.win >= 2 * DETOK_CONTEXT:  # slide the window, keeping some context
            h.win = len(ids) - DETOK_CONTEXT
            h.win_text = self._decode(ids[h.win:])
        return new

    def _place(self, rows: int, end: int) -> None:
        """Make room for `rows` slots and put the live columns so that they end at column `end` (>= their width),
        with free columns after it. Reallocates (a power of two, at least twice `end` columns, so this is rare)
        only when the buffers are too small; else moves the live columns in place."""
        from transformers.cache_utils import Cache

        n, lo, width = len(self._rows), self._lo, self._end - self._lo
        new_lo = end - width
        slots, columns = (0, 0) if self._mask is None else self._mask.shape
        want = min(max(64, 1 << (2 * end - 1).bit_length()), max(self.max_context + 1, end + 1))
        if rows > slots or want > columns:
            slots = min(self.max_batch_size, max(rows, 2 * slots, 1 << (rows - 1).bit_length()))
            columns = max(columns, want)
            config = self.model.config
            heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
            dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            dtype = self.model.get_input_embeddings().weight.dtype
            bufs = [[torch.zeros(slots, heads, columns, dim, dtype=dtype, device=self.device) for _ in range(2)]
                    for _ in range(config.num_hidden_layers)]
            mask = torch.zeros(slots, columns, dtype=torch.bool, device=self.device)
            pos, last = (torch.zeros(slots, dtype=torch.long, device=self.device) for _ in range(2))
            if n:  # copy the running batch over
                for (k, v), old in zip(bufs, self._cache.layers):
                    k[:n, :, new_lo:end], v[:n, :, new_lo:end] = old.k[:n, :, lo:self._end], old.v[:n, :, lo:self._end]
                mask[:n, new_lo:end] = self._mask[:n, lo:self._end]
                pos[:n], last[:n] = self._pos[:n], self._last[:n]
            self._cache = Cache(layers=[_slot_layer()(k, v) for k, v in bufs])
            self._mask, self._pos, self._last = mask, pos, last
        elif end != self._end and n:  # shift in place (through a copy: the two ranges may overlap)
            for layer in self._cache.layers:
                for buf in (layer.k, layer.v):
                    buf[:n, :, new_lo:end] = buf[:n, :, lo:self._end].clone()
            live = self._mask[:n, lo:self._end].clone()
            self._mask[:n] = False
            self._mask[:n, new_lo:end] = live
        self._lo, self._end = new_lo, end

    def _select(self, keep: list[int]) -> None:
        """Keep only these rows of the running batch. Rows from the end of the batch move into the slots of rows
        that leave (one row copied per leaver, not the whole cache re-gathered), and the live columns shrink to the
        longest row still running."""
        if not keep:
            self._rows, self._lo, self._end = [], 0, 0
            return
        n, kept, lo, end = len(keep), set(keep), self._lo, self._end
        rows = self._rows[:n]
        for dst, src in zip([i for i in range(n) if i not in kept], [i for i in keep if i >= n]):
            for layer in self._cache.layers:
                layer.k[dst, :, lo:end] = layer.k[src, :, lo:end]
                layer.v[dst, :, lo:end] = layer.v[src, :, lo:end]
            for buf in (self._mask, self._pos, self._last):
                buf[dst] = buf[src]
            rows[dst] = self._rows[src]
        self._rows = rows
        self._lo = end - max(len(h.request.prompt_ids) + len(h.tokens) - 1 for h in rows)

    def _finish(self, h: RequestHandle, reason: str, error: str | None = None, wake: list | None = None) -> None:
        if h.completion is not None:
            return
        now, n, p = time.monotonic(), len(h.tokens), len(h.request.prompt_ids)
        done = Finished(reason, p, n, h.first_token_time, now, h.submit_time, error)
        self._counts["finished"] += 1
        self._counts["cancelled"] += reason == "cancelled"
        self._counts["errors"] += reason == "error"
        self._latency = 0.9 * self._latency + 0.1 * (now - h.submit_time)
        usage = {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}
        h._emit(done, Completion(h.text, list(h.tokens), reason, usage, done), wake)

    def _fail(self, handles: list[RequestHandle], error: str) -> None:
        for h in handles:
            self._finish(h, "error", error)
