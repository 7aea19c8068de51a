"""The request log and the monitoring numbers the admin page shows.

Percentiles are computed in Python over the window's rows (statistics.quantiles, linear interpolation as
numpy's default): portable across SQLite and PostgreSQL, and fast enough for the rows one server logs a day.

The server logs requests with `log_request_later`: a background thread writes what has queued up in one
transaction, off the response path (a write transaction per request cost the API ~10 ms of each reply under load).
Only these monitoring rows wait; `metrics()` and `close()` first wait for every row queued before them, and a crash
loses at most the last moments' rows. Writes a user is told succeeded (feedback, votes, chats, flags) stay
synchronous.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select

from chatforge.store.base import StoreBase, StoreError, as_utc, choice, iso
from chatforge.store.models import Feedback, Flag, RequestLog

OK = ("ok", "200")
log = logging.getLogger(__name__)
_WRITER_LOCK = threading.Lock()  # creating a store's writer


class BatchWriter:
    """A background thread that hands queued items to `write(batch)`, as many at once as have queued up (waiting up
    to `linger` seconds for more, so a busy server makes one transaction for many requests, not one each).
    `flush()` returns once every item queued before it was written (or failed: failures are logged, not raised)."""

    def __init__(self, write: Callable[[list], None], name: str, linger: float = 0.05, max_batch: int = 1000):
        self._write, self.linger, self.max_batch = write, linger, max_batch
        self._cond = threading.Condition()
        self._pending: list = []
        self._queued = self._done = self._flushing = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the writer is closed")
            self._pending.append(item)
            self._queued += 1
            if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
                self._cond.notify_all()

    def flush(self, timeout: float | None = 30) -> bool:
        """Wait until everything queued so far is written; False if that took longer than timeout."""
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._done >= target or not self._thread.is_alive(), timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = 30) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not (self._closed or self._flushing):  # let a busy server's rows gather into one batch
                    self._cond.wait_for(lambda: self._closed or self._flushing or len(self._pending) >= self.max_batch,
                                        self.linger)
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                if not batch:  # closed and drained
                    return
            try:
                self._write(batch)
            except Exception:  # noqa: BLE001 - monitoring must never take the server down
                log.exception("could not write %d queued rows", len(batch))
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()


def percentiles(values: list[float]) -> dict:
    """p50/p95/p99 by linear interpolation between the closest ranks; None for no data."""
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    if len(values) == 1:
        return {p: round(values[0], 2) for p in ("p50", "p95", "p99")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2)}


class MetricsMixin(StoreBase):
    def log_request(self, source: str, model: str, prompt_tokens: int, completion_tokens: int, latency_ms: float,
                    ttft_ms: float | None, status: str | int = "ok", user_id: int | None = None,
                    key_id: int | None = None, family: str | None = None, flagged: bool = False,
                    created: datetime | None = None) -> dict:
        with self.write() as s:
            r = RequestLog(**self._request_row(source, model, prompt_tokens, completion_tokens, latency_ms, ttft_ms,
                                               status, user_id, key_id, family, flagged, created))
            s.add(r)
            s.flush()
            return {"id": r.id, "created": iso(r.created)}

    def log_request_later(self, source: str, model: str, prompt_tokens: int, completion_tokens: int,
                          latency_ms: float, ttft_ms: float | None, status: str | int = "ok",
                          user_id: int | None = None, key_id: int | None = None,
                          family: str | Callable[[], str] | None = None, flagged: bool = False,
                          created: datetime | None = None) -> None:
        """log_request, written by the background writer (see the module's docstring); returns at once. `family`
        may be a function, called in the writer's thread (the topic tagger need not delay the reply either)."""
        row = self._request_row(source, model, prompt_tokens, completion_tokens, latency_ms, ttft_ms, status, user_id,
                                key_id, family, flagged, created)
        writer = self.__dict__.get("_request_writer")
        if writer is None:
            with _WRITER_LOCK:
                writer = self.__dict__.setdefault(
                    "_request_writer", BatchWriter(self._write_request_rows, "chatforge-request-log"))
        writer.put(row)

    def flush_request_log(self, timeout: float | None = 30) -> bool:
        """Wait until every request queued by log_request_later so far is written."""
        writer = self.__dict__.get("_request_writer")
        return writer.flush(timeout) if writer else True

    def close(self) -> None:
        writer = self.__dict__.pop("_request_writer", None)
        if writer:
            writer.close()
        super().close()

    def _request_row(self, source, model, prompt_tokens, completion_tokens, latency_ms, ttft_ms, status, user_id,
                     key_id, family, flagged, created) -> dict:
        choice(source, ("api", "web"), "source")
        return dict(source=source, model=model or "", prompt_tokens=int(prompt_tokens),
                    completion_tokens=int(completion_tokens), latency_ms=float(latency_ms),
                    ttft_ms=None if ttft_ms is None else float(ttft_ms), status=str(status), user_id=user_id,
                    key_id=key_id, family=family, flagged=bool(flagged), created=created or self.now())

    def _write_request_rows(self, rows: list[dict]) -> None:
        for row in rows:
            if callable(row["family"]):
                try:
                    row["family"] = row["family"]()
                except Exception:  # noqa: BLE001 - a tagger failure costs the tag, not the row
                    row["family"] = "unknown"
        with self.write() as s:
            s.add_all([RequestLog(**row) for row in rows])

    def metrics(self, hours: float = 24, bucket_minutes: int = 60, now: datetime | None = None) -> dict:
        """Counts, tokens, latency and time-to-first-token percentiles, and a per-bucket series over the last
        `hours` (buckets aligned to multiples of bucket_minutes since the epoch, oldest first). Requests still queued
        by log_request_later are written first."""
        self.flush_request_log()
        if hours <= 0 or bucket_minutes <= 0:
            raise StoreError("hours and bucket_minutes must be positive")
        end = as_utc(now) if now else self.now()
        start = end - timedelta(hours=hours)
        step = timedelta(minutes=bucket_minutes)
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        first = epoch + ((start - epoch) // step) * step
        n = int((end - first) // step) + 1
        if n > 5000:
            raise StoreError(f"{n} buckets is too many: make bucket_minutes larger")
        series = [{"t": iso(first + i * step), "requests": 0, "thumbs_up": 0, "thumbs_down": 0, "flags": 0}
                  for i in range(n)]

        def bucket(t: datetime) -> dict:
            return series[min(int((t - first) // step), n - 1)]

        with self.read() as s:
            window = RequestLog.created >= start, RequestLog.created <= end
            logs = s.execute(select(RequestLog.created, RequestLog.prompt_tokens, RequestLog.completion_tokens,
                                    RequestLog.latency_ms, RequestLog.ttft_ms, RequestLog.status,
                                    RequestLog.family, RequestLog.flagged, RequestLog.source).where(*window)).all()
            votes = s.execute(select(Feedback.created, Feedback.rating)
                              .where(Feedback.created >= start, Feedback.created <= end)).all()
            flags = s.execute(select(Flag.created, Flag.category)
                              .where(Flag.created >= start, Flag.created <= end)).all()
        for r in logs:
            bucket(r.created)["requests"] += 1
        for t, rating in votes:
            bucket(t)["thumbs_up" if rating > 0 else "thumbs_down"] += 1
        for t, _ in flags:
            bucket(t)["flags"] += 1
        prompt, completion = sum(r.prompt_tokens for r in logs), sum(r.completion_tokens for r in logs)
        return {
            "window": {"start": iso(start), "end": iso(end), "hours": hours, "bucket_minutes": bucket_minutes},
            "requests": len(logs),
            "errors": sum(r.status not in OK for r in logs),
            "flagged": sum(bool(r.flagged) for r in logs),
            "by_source": dict(Counter(r.source for r in logs)),
            "tokens": prompt + completion, "prompt_tokens": prompt, "completion_tokens": completion,
            "latency_ms": percentiles([r.latency_ms for r in logs]),
            "ttft_ms": percentiles([r.ttft_ms for r in logs if r.ttft_ms is not None]),
            "thumbs_up": sum(v > 0 for _, v in votes), "thumbs_down": sum(v < 0 for _, v in votes), "flags": len(flags),
            "series": series,
            "by_family": dict(Counter(r.family or "unknown" for r in logs).most_common()),
            "top_flag_categories": [{"category": c, "count": k}
                                    for c, k in Counter(c or "unspecified" for _, c in flags).most_common(10)],
        }
