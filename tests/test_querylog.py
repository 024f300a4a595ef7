"""Query events, and the query log on both backends: a SQLite file beside an embedded index, and the
`bertsearch-queries` data stream on a real Elasticsearch node."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import ApiError

from bertsearch.errors import BertsearchError
from bertsearch.querylog import (
    QUERY_EVENT_MAPPING,
    QUERY_HASH_KEY_FILE,
    QUERY_LOG_DATABASE,
    BackgroundQueryLog,
    ElasticsearchQueryLog,
    QueryEvent,
    SqliteQueryLog,
    hash_query,
    open_query_log,
    query_event,
    query_log_mode,
)
from bertsearch.search import SearchResult
from bertsearch.stores import StoreLocation, StoreStats
from bertsearch.stores.elasticsearch import ElasticsearchConnection
from bertsearch.types import Hit, HitScores

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

EMBEDDED = StoreLocation(index_dir=Path("/indexes/papers"))


def hit(doc_id: str, score: float, **scores: float) -> Hit:
    return Hit(doc_id=doc_id, score=score, title="", passage="", passage_position=0, scores=HitScores(**scores))


def event(query: str = "q", at: datetime | None = None, hits: int = 1, **changes: object) -> QueryEvent:
    values = dict(timestamp=at or datetime.now(timezone.utc), query=query, query_hashed=False, mode="hybrid", k=10,
                  reranked=False, hits=hits, zero_results=hits == 0, backend="embedded", origin="cli",
                  index="/indexes/papers", latency_ms={"encode": 10.0, "total": 12.5}, top_score=0.5 if hits else None,
                  top_scores=[0.5] if hits else [])
    return QueryEvent(**(values | changes))


def test_an_event_describes_a_plain_search() -> None:
    result = SearchResult("plants", "hybrid", [hit("a", 0.03, fused=0.03), hit("b", 0.02, fused=0.02)],
                          {"encode": 12.0, "dense": 1.5, "bm25": 0.5, "fuse": 0.1, "total": 14.1})
    logged = query_event(result, 10, EMBEDDED, origin="cli", index_stats=StoreStats(5, 9, "embedded"))
    assert (logged.query, logged.mode, logged.k, logged.hits, logged.zero_results) == ("plants", "hybrid", 10, 2, False)
    assert logged.latency_ms == {"encode": 12.0, "dense": 1.5, "bm25": 0.5, "retrieve": 2.0, "fuse": 0.1, "total": 14.1}
    assert (logged.top_score, logged.top_scores) == (0.03, [0.03, 0.02])
    assert (logged.reranked, logged.rerank_top_first_stage_rank, logged.top_rerank_score) == (False, None, None)
    assert (logged.backend, logged.index, logged.index_documents, logged.index_passages) == (
        "embedded", "/indexes/papers", 5, 9)
    assert logged.timestamp.tzinfo is not None


def test_an_event_measures_what_reranking_changed() -> None:
    reranked = [hit("c", 0.9, first_stage=0.01, rerank=2.5), hit("a", 0.8, first_stage=0.03, rerank=1.0),
                hit("b", 0.1, first_stage=0.02, rerank=-1.0)]
    result = SearchResult("q", "hybrid", reranked, {"encode": 1.0, "rerank": 300.0, "total": 301.0}, reranked=True)
    logged = query_event(result, 3, EMBEDDED, origin="server")
    assert logged.reranked and logged.top_rerank_score == 2.5
    assert logged.rerank_top_first_stage_rank == 3  # the reranker's top hit was third of the first stage


def test_zero_results_and_hashed_queries() -> None:
    key = bytes(range(32))
    result = SearchResult("  Rare   Words ", "bm25", [], {"bm25": 0.2, "total": 0.2})
    logged = query_event(result, 5, EMBEDDED, origin="cli", hash_key=key)
    assert logged.zero_results and logged.hits == 0 and logged.top_score is None and logged.top_scores == []
    assert logged.query == hash_query("rare words", key) and logged.query.startswith("hmac-sha256:")
    assert logged.query_hashed
    assert hash_query("Rare words", key) != hash_query("rare word", key)


def test_a_hashed_query_cannot_be_checked_without_the_key() -> None:
    """An unkeyed digest let anyone confirm a guessed query by hashing it; the keyed one needs the secret."""
    import hashlib

    key, other = b"k" * 32, b"o" * 32
    digest = hash_query("vitamin d", key)
    assert digest == hash_query("Vitamin  D", key)  # repeats still group
    assert digest != hash_query("vitamin d", other)
    assert digest.removeprefix("hmac-sha256:") not in hashlib.sha256(b"vitamin d").hexdigest()


def test_the_hash_key_is_made_once_per_index_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    import stat

    first = open_query_log(StoreLocation(index_dir=tmp_path / "idx"))
    key = first.hash_key()
    key_file = tmp_path / "idx" / QUERY_HASH_KEY_FILE
    assert len(key) == 32 and key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = open_query_log(StoreLocation(index_dir=tmp_path / "idx"))
    assert again.hash_key() == key == first.hash_key()
    other = open_query_log(StoreLocation(index_dir=tmp_path / "other"))
    assert other.hash_key() != key
    assert key not in (tmp_path / "idx" / QUERY_LOG_DATABASE).read_bytes()
    for log in (first, again, other):
        log.close()


def test_a_log_opened_to_read_only_never_writes(tmp_path: Path) -> None:
    location = StoreLocation(index_dir=tmp_path / "idx")
    (tmp_path / "idx").mkdir()
    empty = open_query_log(location, read_only=True)
    assert empty.read() == [] and empty.count() == 0
    empty.close()
    assert list((tmp_path / "idx").iterdir()) == []  # nothing created
    writer = open_query_log(location)
    writer.write([event("kept")])
    writer.close()
    reader = open_query_log(location, read_only=True)
    assert [e.query for e in reader.read()] == ["kept"]
    with pytest.raises(BertsearchError, match="query log"):
        reader.write([event("refused")])
    reader.close()


def test_query_log_mode_comes_from_the_option_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTSEARCH_QUERY_LOG", raising=False)
    assert query_log_mode() == "on"
    monkeypatch.setenv("BERTSEARCH_QUERY_LOG", "Hashed")
    assert query_log_mode() == "hashed" and query_log_mode("off") == "off"
    monkeypatch.setenv("BERTSEARCH_QUERY_LOG", "yes")
    with pytest.raises(BertsearchError, match="on, hashed, off"):
        query_log_mode()


def test_sqlite_log_round_trips_events_in_order(tmp_path: Path) -> None:
    log = open_query_log(StoreLocation(index_dir=tmp_path / "idx"))
    assert isinstance(log, SqliteQueryLog) and log.path == tmp_path / "idx" / QUERY_LOG_DATABASE
    now = datetime.now(timezone.utc)
    events = [event(f"q{i}", at=now - timedelta(hours=10 - i), hits=i % 2) for i in range(10)]
    events[3] = event("reranked", at=events[3].timestamp, reranked=True, rerank_top_first_stage_rank=2,
                      top_rerank_score=1.5, latency_ms={"rerank": 100.0, "total": 120.0}, index_documents=7)
    log.write(events[5:])
    log.write(events[:5])
    assert log.read() == events
    assert log.read(since=now - timedelta(hours=3, minutes=30)) == events[7:]
    assert log.read(limit=4) == events[6:]
    assert log.count() == 10 and log.count(since=now - timedelta(hours=3, minutes=30)) == 3
    log.close()
    reopened = open_query_log(StoreLocation(index_dir=tmp_path / "idx"))
    assert reopened.read()[3] == events[3]
    reopened.close()


def test_background_log_writes_in_batches_and_counts_failures(tmp_path: Path) -> None:
    background = BackgroundQueryLog(SqliteQueryLog(tmp_path / "queries.sqlite3"))
    for i in range(250):
        background.record(event(f"q{i}"))
    background.flush()
    assert [e.query for e in background.log.read()] == [f"q{i}" for i in range(250)]
    background.close()

    class BrokenLog(SqliteQueryLog):
        def write(self, events):  # noqa: ANN001, ANN202
            raise BertsearchError("disk full")

    broken = BackgroundQueryLog(BrokenLog(tmp_path / "other.sqlite3"))
    broken.record(event())
    broken.flush()
    assert (broken.failures, broken.last_error) == (1, "disk full")
    broken.close()


def test_background_log_writes_on_its_own_within_its_interval_and_drops_past_its_limit(tmp_path: Path) -> None:
    background = BackgroundQueryLog(SqliteQueryLog(tmp_path / "queries.sqlite3"), interval=0.1)
    background.record(event("unflushed"))
    deadline = time.monotonic() + 10
    while not background.log.read() and time.monotonic() < deadline:  # no flush: the writer wakes by itself
        time.sleep(0.05)
    assert [e.query for e in background.log.read()] == ["unflushed"]
    background.close()

    full = BackgroundQueryLog(SqliteQueryLog(tmp_path / "full.sqlite3"), max_pending=3, interval=60)
    for i in range(5):
        full.record(event(f"q{i}"))
    assert full.failures == 2
    full.close()  # writes what was queued, though its interval is far off
    assert [e.query for e in SqliteQueryLog(tmp_path / "full.sqlite3").read()] == ["q0", "q1", "q2"]


@pytest.mark.elasticsearch
def test_elasticsearch_log_is_a_data_stream_with_the_declared_mapping(elasticsearch_node: ElasticsearchNode) -> None:
    connection = ElasticsearchConnection(url=elasticsearch_node.url, username=elasticsearch_node.username,
                                         password=elasticsearch_node.password)
    stream = f"bertsearch-queries-test-{uuid.uuid4().hex[:8]}"
    location = StoreLocation(index_dir=Path("/unused"), backend="elasticsearch", elasticsearch=connection,
                             es_index="papers")
    log = ElasticsearchQueryLog(location, stream=stream)
    assert log.read() == []  # nothing logged yet: no stream, no error
    now = datetime.now(timezone.utc).replace(microsecond=0)
    mine = [event(f"q{i}", at=now - timedelta(minutes=10 - i), hits=i % 2, backend="elasticsearch", index="papers")
            for i in range(6)]
    other = event("another index", at=now, index="reports", backend="elasticsearch")
    log.write(mine[:3])
    log.write([*mine[3:], other])
    client = connection.client()
    client.indices.refresh(index=stream)
    assert log.read() == mine  # only this index's events, oldest first
    assert log.read(since=now - timedelta(minutes=6, seconds=30)) == mine[4:]
    assert log.read(limit=2) == mine[4:]
    assert log.count() == 6 and log.count(since=now - timedelta(minutes=6, seconds=30)) == 2
    assert ElasticsearchQueryLog(location, stream=stream + "-none").count() == 0  # no stream yet

    resolved = client.indices.resolve_index(name=stream)
    assert [s["name"] for s in resolved["data_streams"]] == [stream]
    mapping = next(iter(client.indices.get_mapping(index=stream).body.values()))["mappings"]
    assert mapping["dynamic"] == "strict"
    assert flat_fields(mapping) == flat_fields(QUERY_EVENT_MAPPING)
    with pytest.raises(ApiError, match="strict"):  # an unknown field is an error, not a new field
        client.index(index=stream, op_type="create", document={"@timestamp": now.isoformat(), "typo": 1})
    log.close()
    client.close()


@pytest.mark.elasticsearch
def test_elasticsearch_hash_keys_are_kept_on_the_cluster_one_per_index(elasticsearch_node: ElasticsearchNode) -> None:
    """Case 12 on Elasticsearch: the key is a document of a hidden index, apart from the events' data stream."""
    from bertsearch.querylog import QUERY_HASH_KEY_INDEX

    connection = ElasticsearchConnection(url=elasticsearch_node.url, username=elasticsearch_node.username,
                                         password=elasticsearch_node.password)

    def log_of(index: str) -> ElasticsearchQueryLog:
        return ElasticsearchQueryLog(StoreLocation(index_dir=Path("/unused"), backend="elasticsearch",
                                                   elasticsearch=connection, es_index=index))

    name = f"keys-{uuid.uuid4().hex[:8]}"
    first, second, other = log_of(name), log_of(name), log_of(name + "-other")
    key = first.hash_key()
    assert len(key) == 32 and second.hash_key() == key == first.hash_key() and other.hash_key() != key
    client = connection.client()
    settings = client.indices.get_settings(index=QUERY_HASH_KEY_INDEX)[QUERY_HASH_KEY_INDEX]["settings"]["index"]
    assert settings["hidden"] == "true"
    assert QUERY_HASH_KEY_INDEX not in client.indices.get(index="bertsearch*")  # wildcards do not show it
    for log in (first, second, other):
        log.close()
    client.close()


def flat_fields(mapping: dict, prefix: str = "") -> dict[str, str]:
    """`{"a.b": "float", ...}`: every leaf field of a mapping with its type."""
    fields: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        if "properties" in spec:
            fields |= flat_fields(spec, f"{prefix}{name}.")
        else:
            fields[f"{prefix}{name}"] = spec["type"]
    return fields
