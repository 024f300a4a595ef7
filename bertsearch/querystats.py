"""The figures of the Kibana dashboards, computed from the query log for users without Kibana.

`bertsearch stats` prints them and the server's stats page draws them; both call `compute_query_stats`, so
they always agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from typing import Any

import numpy as np

from bertsearch.querylog import LATENCY_STAGES, MAX_EVENTS_READ, QueryEvent, QueryLog
from bertsearch.stores import StoreStats

# Finer buckets than this would leave most of them empty on a quiet index.
HOURLY_UP_TO = timedelta(days=3)
TOP_ZERO_RESULT_QUERIES = 10


@dataclass(frozen=True)
class TimeBucket:
    """Queries that started in [start, start + the bucket width)."""

    start: datetime
    queries: int
    zero_results: int


@dataclass(frozen=True)
class StageLatency:
    stage: str
    queries: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class RerankImpact:
    """How reranked queries differ: how often the reranker changed the top hit, and what it cost."""

    queries: int
    share: float
    changed_top_rate: float | None
    mean_top_first_stage_rank: float | None
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class QueryStats:
    """Queries over time, latency per stage, zero results, rerank impact, and the index's size."""

    since: datetime | None
    queries: int  # the events the figures come from: the newest `queries` of `queries_in_window`
    queries_in_window: int
    bucket: str
    over_time: list[TimeBucket]
    latency: list[StageLatency]
    zero_result_rate: float | None
    top_zero_result_queries: list[tuple[str, int]]
    modes: dict[str, int]
    origins: dict[str, int]
    rerank: RerankImpact
    index: StoreStats | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        for bucket in data["over_time"]:
            bucket["start"] = bucket["start"].isoformat()
        data["top_zero_result_queries"] = [{"query": q, "count": n} for q, n in self.top_zero_result_queries]
        return data


def compute_query_stats(
    events: Sequence[QueryEvent], index: StoreStats | None = None, since: datetime | None = None,
    queries_in_window: int | None = None,
) -> QueryStats:
    """The dashboard figures for `events` (oldest first), and `index`'s size.

    `queries_in_window` is how many events the log holds since `since`, when it is more than were read.
    """
    count = len(events)
    bucket = _bucket_width(events)
    zero = [e for e in events if e.zero_results]
    reranked = [e for e in events if e.reranked]
    ranks = [e.rerank_top_first_stage_rank for e in reranked if e.rerank_top_first_stage_rank is not None]
    rerank_ms = [e.latency_ms["rerank"] for e in reranked if "rerank" in e.latency_ms]
    return QueryStats(
        since=since,
        queries=count,
        queries_in_window=max(count, queries_in_window or 0),
        bucket="hour" if bucket == timedelta(hours=1) else "day",
        over_time=_over_time(events, bucket),
        latency=[
            StageLatency(stage, len(values), *_percentiles(values))
            for stage in LATENCY_STAGES
            if (values := [e.latency_ms[stage] for e in events if stage in e.latency_ms])
        ],
        zero_result_rate=len(zero) / count if count else None,
        top_zero_result_queries=Counter(e.query for e in zero).most_common(TOP_ZERO_RESULT_QUERIES),
        modes=dict(Counter(e.mode for e in events).most_common()),
        origins=dict(Counter(e.origin for e in events).most_common()),
        rerank=RerankImpact(
            queries=len(reranked),
            share=len(reranked) / count if count else 0.0,
            changed_top_rate=sum(1 for r in ranks if r > 1) / len(ranks) if ranks else None,
            mean_top_first_stage_rank=float(np.mean(ranks)) if ranks else None,
            p50_ms=_percentiles(rerank_ms)[0] if rerank_ms else None,
            p95_ms=_percentiles(rerank_ms)[1] if rerank_ms else None,
        ),
        index=index,
    )


def read_query_stats(log: QueryLog, index: StoreStats | None, since: datetime | None,
                     limit: int = MAX_EVENTS_READ) -> QueryStats:
    """The figures from the newest `limit` events of `log` since `since`, and how many events there were."""
    events = log.read(since, limit=limit)
    in_window = log.count(since) if len(events) >= limit else len(events)
    return compute_query_stats(events, index, since, queries_in_window=in_window)


def _percentiles(values: Sequence[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return round(float(p50), 3), round(float(p95), 3)


def _bucket_width(events: Sequence[QueryEvent]) -> timedelta:
    if not events or events[-1].timestamp - events[0].timestamp <= HOURLY_UP_TO:
        return timedelta(hours=1)
    return timedelta(days=1)


def _over_time(events: Sequence[QueryEvent], width: timedelta) -> list[TimeBucket]:
    """Consecutive buckets from the first event's to the last's, empty ones included (a gap is a figure too)."""
    if not events:
        return []

    def floor(moment: datetime) -> datetime:
        moment = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0) if width == timedelta(days=1) else moment

    queries: Counter[datetime] = Counter()
    zero: Counter[datetime] = Counter()
    for event in events:
        start = floor(event.timestamp)
        queries[start] += 1
        zero[start] += event.zero_results
    buckets = []
    current, last = floor(events[0].timestamp), floor(events[-1].timestamp)
    while current <= last:
        buckets.append(TimeBucket(current, queries[current], zero[current]))
        current += width
    return buckets
