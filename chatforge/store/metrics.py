"""The request log and the monitoring numbers the admin page shows.

Percentiles are computed in Python over the window's rows (statistics.quantiles, linear interpolation as
numpy's default): portable across SQLite and PostgreSQL, and fast enough for the rows one server logs a day.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from chatforge.store.base import StoreBase, StoreError, as_utc, choice, iso
from chatforge.store.models import Feedback, Flag, RequestLog

OK = ("ok", "200")


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
        choice(source, ("api", "web"), "source")
        with self.write() as s:
            r = RequestLog(source=source, model=model or "", prompt_tokens=int(prompt_tokens),
                           completion_tokens=int(completion_tokens), latency_ms=float(latency_ms),
                           ttft_ms=None if ttft_ms is None else float(ttft_ms), status=str(status), user_id=user_id,
                           key_id=key_id, family=family, flagged=bool(flagged), created=created or self.now())
            s.add(r)
            s.flush()
            return {"id": r.id, "created": iso(r.created)}

    def metrics(self, hours: float = 24, bucket_minutes: int = 60, now: datetime | None = None) -> dict:
        """Counts, tokens, latency and time-to-first-token percentiles, and a per-bucket series over the last
        `hours` (buckets aligned to multiples of bucket_minutes since the epoch, oldest first)."""
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
