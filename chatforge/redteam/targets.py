"""Targets: what a campaign attacks. `Target.reply(conversations, seeds)` gives the assistant's next message for
each conversation, sampled with one `SamplingConfig` (temperature, top_p, max_new_tokens) and one seed per attack.

- `ModelTarget`: a chatforge / Hugging Face model directory or a registry ref (`ppo`, `sft:2`), run in-process.
- `EndpointTarget`: any OpenAI-compatible `/v1` endpoint (a running `chatforge serve`, vLLM, a hosted API), through
  the `openai` client, with a bounded request rate and retries with backoff on 429, 5xx and connection errors.
  A malformed URL, a refused connection (once retries are spent) or a 4xx raises a one-line ChatforgeError.

In-process replies come from the server's own continuous-batching engine (`serve/engine.py`, per-request
`random.Random(seed)` draws), so a seeded attack is sampled in-process exactly as `chatforge serve` samples it; it is
also faster than batched `model.generate` (about 45 against 35 attacks/s on the demo model, one CPU thread).
`backend="generate"` uses `chatforge.models.generate.reply` (the eval's path) instead.
Campaigns default to greedy decoding (temperature 0): the simplest setting under which in-process and HTTP replies
are identical (measured: 100% of 200 replies on the demo PPO model, both backends, and on a random tiny model).
Sampled replies with the same seeds agree almost always but not bit for bit: the forward pass rounds differently
for different batch compositions (the server batches whatever requests are in flight), and a draw that falls within
that rounding of a token boundary picks the neighbouring token (1 of 24 replies on a random tiny model at T=1).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from chatforge.errors import ChatforgeError
from chatforge.models.generate import SamplingConfig
from chatforge.models.loading import first_line


def campaign_sampling(max_new_tokens: int = 48, temperature: float = 0.0, top_p: float = 1.0) -> SamplingConfig:
    """The default for campaigns: greedy, so in-process and HTTP replies are identical."""
    return SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)


def _seeds(seeds: int | list[int], n: int) -> list[int]:
    return list(seeds) if isinstance(seeds, (list, tuple)) else [seeds + i for i in range(n)]


class Target:
    name: str = "target"
    sampling: SamplingConfig

    def reply(self, conversations: list[list[dict]], seeds: int | list[int] = 0) -> list[str]:
        """The next assistant message of each conversation; `seeds`: one per conversation (or a first seed)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "sampling": vars(self.sampling)}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ModelTarget(Target):
    def __init__(self, model: str, sampling: SamplingConfig | None = None, device: str | None = None,
                 batch_size: int = 64, backend: str = "engine"):
        from chatforge.models.loading import load_model
        from chatforge.models.registry import Registry

        self.path = Registry().resolve(model)
        self.name = model
        self.model, self.tok = load_model(self.path, device)
        self.sampling = sampling or campaign_sampling()
        if backend not in ("engine", "generate"):
            raise ChatforgeError(f"unknown backend '{backend}' (choose from: engine, generate)")
        self.batch_size, self.backend, self._engine = batch_size, backend, None

    def reply(self, conversations, seeds=0):
        from chatforge.models.generate import reply

        if self.backend == "generate":  # one torch seed for the whole call: per-attack seeds only when greedy
            sampling = SamplingConfig(**{**vars(self.sampling), "seed": _seeds(seeds, 1)[0]})
            return reply(self.model, self.tok, conversations, sampling, batch_size=self.batch_size)
        return self._engine_reply(conversations, _seeds(seeds, len(conversations)))

    def _engine_reply(self, conversations, seeds):
        """Through the server's engine in-process: the same per-request seeded sampler as `chatforge serve`."""
        from chatforge.models.generate import stop_ids
        from chatforge.serve.engine import Engine, GenerationRequest

        if self._engine is None:
            self._engine = Engine(self.model, self.tok, max_batch_size=self.batch_size, max_queue=1 << 20).start()
        limit, stops = int(getattr(self.model.config, "max_position_embeddings", 2048)), stop_ids(self.model, self.tok)
        handles = []
        for conv, seed in zip(conversations, seeds):
            ids = self.tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True)
            ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "input_ids") else ids)
            room = max(1, min(self.sampling.max_new_tokens, limit - len(ids)))
            handles.append(self._engine.submit(GenerationRequest(
                ids, room, self.sampling.temperature, self.sampling.top_p, seed, stops)))
        return [h.result().text.strip() for h in handles]

    def describe(self):
        return {**super().describe(), "kind": "model", "path": str(self.path), "backend": self.backend}

    def close(self):
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None


class RateLimiter:
    """At most `rate` request starts per second, shared by threads (0 = unlimited)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.next, self.lock = 0.0, threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


def api_base(url: str) -> str:
    """`http(s)://host[:port][/path]` → the client's base URL (`/v1` added when the path is empty)."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ChatforgeError(f"bad target URL '{url}' (expected http(s)://host[:port]/v1)")
    try:
        parsed.port
    except ValueError:
        raise ChatforgeError(f"bad target URL '{url}' (the port is not a number from 0 to 65535)") from None
    return url.rstrip("/") + ("/v1" if parsed.path.strip("/") == "" else "")


class EndpointTarget(Target):
    def __init__(self, url: str, model: str = "default", sampling: SamplingConfig | None = None,
                 rate: float = 10.0, retries: int = 4, backoff: float = 0.5, timeout: float = 120.0,
                 concurrency: int = 8, api_key: str | None = None):
        import openai

        self.url, self.model = api_base(url), model
        self.name = f"{model}@{self.url}"
        self.sampling = sampling or campaign_sampling()
        self.retries, self.backoff, self.concurrency = retries, backoff, max(1, concurrency)
        self.limiter = RateLimiter(rate)
        key = api_key or os.environ.get("CHATFORGE_TARGET_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=timeout)
        self.requests = self.retried = 0

    def reply(self, conversations, seeds=0):
        seeds = _seeds(seeds, len(conversations))
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self._one(c, s) for c, s in zip(conversations, seeds)]
        with ThreadPoolExecutor(min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(self._one, conversations, seeds))  # the first error propagates

    def _one(self, messages: list[dict], seed: int) -> str:
        import openai

        s, last = self.sampling, None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                time.sleep(self._delay(last, attempt))
            self.limiter.wait()
            self.requests += 1
            try:
                r = self.client.chat.completions.create(
                    model=self.model, messages=messages, temperature=s.temperature, top_p=s.top_p,
                    max_tokens=s.max_new_tokens, seed=seed)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as e:
                last = e  # transient: back off and retry (APITimeoutError is an APIConnectionError)
                continue
            except openai.APIStatusError as e:
                raise ChatforgeError(f"target {self.url} answered HTTP {e.status_code}: {_message(e)}"
                                     f"{_hint(e.status_code)}") from None
            except openai.APIError as e:
                raise ChatforgeError(f"target {self.url}: {first_line(e)}") from None
            try:
                return (r.choices[0].message.content or "").strip()
            except (AttributeError, IndexError, TypeError):
                raise ChatforgeError(f"target {self.url} did not answer like an OpenAI chat completions API") from None
        if isinstance(last, openai.APIConnectionError):
            cause = first_line(last.__cause__) if last.__cause__ else first_line(last)
            raise ChatforgeError(f"cannot reach target {self.url}: {cause} (after {self.retries + 1} tries)") from None
        raise ChatforgeError(f"target {self.url} kept failing (HTTP {last.status_code}: {_message(last)}) "
                             f"after {self.retries + 1} tries") from None

    def _delay(self, error, attempt: int) -> float:
        wait = self.backoff * 2 ** (attempt - 1)
        header = getattr(getattr(error, "response", None), "headers", {}).get("retry-after")
        try:
            return max(wait, min(float(header), 30.0)) if header else wait
        except ValueError:
            return wait

    def describe(self):
        return {**super().describe(), "kind": "endpoint", "url": self.url, "model": self.model}

    def close(self):
        self.client.close()


def _message(e) -> str:
    """The server's own error message (an OpenAI error object's `message`), else the exception's first line."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body["error"] if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"]).strip().splitlines()[0]
    return first_line(e)


def _hint(code: int) -> str:
    return {401: " (set CHATFORGE_TARGET_KEY or OPENAI_API_KEY)", 403: " (set CHATFORGE_TARGET_KEY or OPENAI_API_KEY)",
            404: " (is --target-url the API base, e.g. http://host:8000/v1, and --target-model a model it serves?)"
            }.get(code, "")
