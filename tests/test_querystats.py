"""The dashboard figures computed from query events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from bertsearch.querylog import open_query_log
from bertsearch.querystats import compute_query_stats, read_query_stats
from bertsearch.stores import StoreLocation, StoreStats
from tests.test_querylog import event

START = datetime(2026, 3, 1, 9, 15, tzinfo=timezone.utc)


def test_no_events_give_empty_figures() -> None:
    figures = compute_query_stats([], StoreStats(3, 4, "embedded"))
    assert (figures.queries, figures.over_time, figures.latency, figures.zero_result_rate) == (0, [], [], None)
    assert figures.rerank.queries == 0 and figures.index.documents == 3
    assert figures.to_dict()["index"]["passages"] == 4


def test_figures_over_hours() -> None:
    events = [
        event("a", at=START, latency_ms={"encode": 10.0, "total": 20.0}),
        event("nothing", at=START + timedelta(minutes=5), hits=0, latency_ms={"bm25": 1.0, "total": 1.0}, mode="bm25"),
        event("nothing", at=START + timedelta(hours=2), hits=0, latency_ms={"total": 3.0}, mode="bm25"),
        event("b", at=START + timedelta(hours=2, minutes=1), reranked=True, rerank_top_first_stage_rank=1,
              latency_ms={"rerank": 100.0, "total": 130.0}),
        event("c", at=START + timedelta(hours=2, minutes=2), reranked=True, rerank_top_first_stage_rank=4,
              latency_ms={"rerank": 300.0, "total": 330.0}, origin="server"),
    ]
    figures = compute_query_stats(events)
    assert figures.bucket == "hour" and figures.queries == 5
    assert [(b.start.hour, b.queries, b.zero_results) for b in figures.over_time] == [(9, 2, 1), (10, 0, 0), (11, 3, 1)]
    assert figures.zero_result_rate == 0.4
    assert figures.top_zero_result_queries == [("nothing", 2)]
    assert figures.modes == {"hybrid": 3, "bm25": 2} and figures.origins == {"cli": 4, "server": 1}
    total = next(s for s in figures.latency if s.stage == "total")
    assert (total.queries, total.p50_ms) == (5, 20.0)
    assert [s.stage for s in figures.latency] == ["encode", "bm25", "rerank", "total"]
    rerank = figures.rerank
    assert (rerank.queries, rerank.share, rerank.changed_top_rate, rerank.mean_top_first_stage_rank) == (2, 0.4, 0.5, 2.5)
    assert (rerank.p50_ms, rerank.p95_ms) == (200.0, 290.0)


def test_long_spans_are_counted_per_day() -> None:
    events = [event(at=START + timedelta(days=d)) for d in (0, 0, 4)]
    figures = compute_query_stats(events)
    assert figures.bucket == "day"
    assert [b.queries for b in figures.over_time] == [2, 0, 0, 0, 1]
    assert figures.to_dict()["over_time"][0]["start"] == "2026-03-01T00:00:00+00:00"


def test_figures_from_a_capped_read_say_how_many_queries_there_were(tmp_path: Path) -> None:
    log = open_query_log(StoreLocation(index_dir=tmp_path / "idx"))
    events = [event(f"q{i}", at=START + timedelta(minutes=i)) for i in range(7)]
    log.write(events)
    capped = read_query_stats(log, None, START, limit=3)
    assert (capped.queries, capped.queries_in_window) == (3, 7)
    assert [b.queries for b in capped.over_time] == [3]  # the figures are the newest three's
    whole = read_query_stats(log, None, START)
    assert (whole.queries, whole.queries_in_window) == (7, 7)
    assert whole.to_dict()["queries_in_window"] == 7
    log.close()
