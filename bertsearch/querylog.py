"""Query logs: one event per query (from the CLI or the server), stored beside the index it searched.

One small interface, `QueryLog`, with one implementation per backend:

- embedded index → `SqliteQueryLog`: the table `query_events` in `querylog/queries.sqlite3` in the index folder (its own
  file, so logging never waits for the store's write lock);
- Elasticsearch index → `ElasticsearchQueryLog`: the data stream `bertsearch-queries`, created from an index
  template with a strict mapping (`QUERY_EVENT_MAPPING`) and a retention lifecycle. Data streams need no
  optional module: the integ-test distribution auto-creates them from the template (it only lacks the
  `_data_stream` management API and does not run the lifecycle); a full distribution also applies retention.

Logging is configured by `BERTSEARCH_QUERY_LOG` (`on`, the default; `hashed`: the query text is replaced by a
keyed digest, HMAC-SHA256 under a secret kept apart from the log, so repeated queries still group together but
the log alone does not let anyone test guesses; `off`) or `bertsearch serve --query-log`. It is best effort: a
log that cannot be written (a read-only index folder) never fails the query it describes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from bertsearch.errors import BackendError, BertsearchError
from bertsearch.search import SearchResult
from bertsearch.sqlite import is_writable, read_only_uri
from bertsearch.stores import StoreLocation, StoreStats

QUERY_LOG_ENV = "BERTSEARCH_QUERY_LOG"
QUERY_LOG_MODES = ("on", "hashed", "off")
DEFAULT_QUERY_LOG_MODE = "on"
# In a subfolder, so the log does not count towards the index size the store reports.
QUERY_LOG_DATABASE = Path("querylog") / "queries.sqlite3"
QUERY_LOG_STREAM = "bertsearch-queries"
# The secrets of hashed logs: a file in the index folder (owner-only), or documents of a hidden index on the
# cluster, one per bertsearch index; never beside the events themselves.
QUERY_HASH_KEY_FILE = "query-hash.key"
QUERY_HASH_KEY_INDEX = "bertsearch-query-keys"
HASH_KEY_BYTES = 32
# Stages of `SearchResult.timings_ms`, plus `retrieve` (dense + bm25, the time spent in the store).
LATENCY_STAGES = ("encode", "dense", "bm25", "retrieve", "fuse", "rerank", "total")
TOP_SCORES = 3
RETENTION = "90d"
# Events read back for `bertsearch stats` and the stats page; older or further ones are left out.
MAX_EVENTS_READ = 100_000


@dataclass(frozen=True)
class QueryEvent:
    """What one query did; stored flat, so each field is one column or one Elasticsearch field.

    `rerank_top_first_stage_rank` is the first-stage rank, among the returned hits, of the hit the reranker put
    first (1: reranking kept the top hit); None when the query was not reranked or found nothing.
    """

    timestamp: datetime
    query: str
    query_hashed: bool
    mode: str
    k: int
    reranked: bool
    hits: int
    zero_results: bool
    backend: str
    origin: str
    index: str
    latency_ms: dict[str, float]
    top_score: float | None = None
    top_scores: list[float] = field(default_factory=list)
    top_rerank_score: float | None = None
    rerank_top_first_stage_rank: int | None = None
    index_documents: int | None = None
    index_passages: int | None = None

    def to_document(self) -> dict[str, Any]:
        """The event as an Elasticsearch document (and the JSON the stats page reads)."""
        document = asdict(self)
        document["@timestamp"] = document.pop("timestamp").isoformat()
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> QueryEvent:
        values = {f.name: document.get(f.name) for f in fields(cls) if f.name != "timestamp"}
        values["latency_ms"] = {k: float(v) for k, v in (values["latency_ms"] or {}).items() if v is not None}
        values["top_scores"] = list(values["top_scores"] or [])
        return cls(timestamp=_parse_time(document["@timestamp"]), **values)


# The mapping of the Elasticsearch data stream; the Kibana dashboards may reference only these fields.
QUERY_EVENT_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date"},
        "query": {"type": "keyword", "ignore_above": 1024},
        "query_hashed": {"type": "boolean"},
        "mode": {"type": "keyword"},
        "k": {"type": "integer"},
        "reranked": {"type": "boolean"},
        "hits": {"type": "integer"},
        "zero_results": {"type": "boolean"},
        "backend": {"type": "keyword"},
        "origin": {"type": "keyword"},
        "index": {"type": "keyword"},
        "latency_ms": {"properties": {stage: {"type": "float"} for stage in LATENCY_STAGES}},
        "top_score": {"type": "float"},
        "top_scores": {"type": "float"},
        "top_rerank_score": {"type": "float"},
        "rerank_top_first_stage_rank": {"type": "integer"},
        "index_documents": {"type": "long"},
        "index_passages": {"type": "long"},
    },
}


def query_log_mode(value: str | None = None) -> str:
    """`value`, else $BERTSEARCH_QUERY_LOG, else `on`; a BertsearchError for anything else."""
    mode = (value or os.environ.get(QUERY_LOG_ENV) or DEFAULT_QUERY_LOG_MODE).strip().lower()
    if mode not in QUERY_LOG_MODES:
        raise BertsearchError(f"query log mode must be one of {', '.join(QUERY_LOG_MODES)}, got {mode!r}")
    return mode


def hash_query(text: str, key: bytes) -> str:
    """A digest of the query (case and spacing ignored) under the log's secret `key`: it groups repeats without
    keeping the words, and without the key nobody can check a guessed query against it."""
    normalised = " ".join(text.lower().split())
    return "hmac-sha256:" + hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def query_event(
    result: SearchResult,
    k: int,
    location: StoreLocation,
    origin: str,
    hash_key: bytes | None = None,
    index_stats: StoreStats | None = None,
) -> QueryEvent:
    """The event describing `result`, a search for `k` hits in the index at `location`; with `hash_key` (the log's
    `QueryLog.hash_key`) the query is kept as its digest only."""
    hits = result.hits
    reranked = result.reranked
    timings = dict(result.timings_ms)
    if "dense" in timings or "bm25" in timings:
        timings["retrieve"] = timings.get("dense", 0.0) + timings.get("bm25", 0.0)
    first_stage_rank = None
    top_rerank = None
    if reranked and hits:
        top_rerank = hits[0].scores.rerank
        first = hits[0].first_stage_score
        first_stage_rank = 1 + sum(1 for hit in hits[1:] if hit.first_stage_score > first)
    return QueryEvent(
        timestamp=datetime.now(timezone.utc),
        query=hash_query(result.query, hash_key) if hash_key is not None else result.query,
        query_hashed=hash_key is not None,
        mode=result.mode,
        k=k,
        reranked=reranked,
        hits=len(hits),
        zero_results=not hits,
        backend=location.backend,
        origin=origin,
        index=location.es_index if location.backend == "elasticsearch" else str(location.index_dir),
        latency_ms={stage: round(float(ms), 3) for stage, ms in timings.items() if stage in LATENCY_STAGES},
        top_score=hits[0].score if hits else None,
        top_scores=[hit.score for hit in hits[:TOP_SCORES]],
        top_rerank_score=top_rerank,
        rerank_top_first_stage_rank=first_stage_rank,
        index_documents=index_stats.documents if index_stats else None,
        index_passages=index_stats.passages if index_stats else None,
    )


class QueryLog(ABC):
    """Where query events go, and where `bertsearch stats` reads them back."""

    @abstractmethod
    def write(self, events: Sequence[QueryEvent]) -> None:
        """Store `events`; BackendError if they could not be stored."""

    @abstractmethod
    def read(self, since: datetime | None = None, limit: int = MAX_EVENTS_READ) -> list[QueryEvent]:
        """Up to `limit` events from `since` on (the newest ones if there are more), oldest first."""

    @abstractmethod
    def count(self, since: datetime | None = None) -> int:
        """How many events there are from `since` on: more than `read` returns when it had to leave some out."""

    @abstractmethod
    def hash_key(self) -> bytes:
        """The secret hashed queries are keyed with, made once per index (BackendError if it cannot be)."""

    def close(self) -> None:
        """Release connections."""


class SqliteQueryLog(QueryLog):
    """Events in a SQLite table; each `write` is one transaction. The hash key is the file `key_path`.

    With `read_only` the log is only read (`bertsearch stats`, an index folder that cannot be written): it is
    opened read-only, and a log never written reads as empty.
    """

    _COLUMNS = ("timestamp", "query", "query_hashed", "mode", "k", "reranked", "hits", "zero_results", "backend",
                "origin", "index_name", "latency_ms", "top_score", "top_scores", "top_rerank_score",
                "rerank_top_first_stage_rank", "index_documents", "index_passages")

    def __init__(self, path: Path, key_path: Path | None = None, read_only: bool = False) -> None:
        self.path = path
        self.key_path = key_path or path.with_name(QUERY_HASH_KEY_FILE)
        self._lock = threading.Lock()
        try:
            if read_only and path.exists():
                self._db = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False, isolation_level=None)
                return
            self._db = sqlite3.connect(":memory:" if read_only else path, check_same_thread=False,
                                       isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            # No fsync per commit: a power cut may lose the last events, never corrupt the log, and a busy
            # server's writer thread no longer waits on the disk for every handful of queries.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS query_events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,"
                " query TEXT NOT NULL, query_hashed INTEGER NOT NULL, mode TEXT NOT NULL, k INTEGER NOT NULL,"
                " reranked INTEGER NOT NULL, hits INTEGER NOT NULL, zero_results INTEGER NOT NULL, backend TEXT NOT NULL,"
                " origin TEXT NOT NULL, index_name TEXT NOT NULL, latency_ms TEXT NOT NULL, top_score REAL,"
                " top_scores TEXT NOT NULL, top_rerank_score REAL, rerank_top_first_stage_rank INTEGER,"
                " index_documents INTEGER, index_passages INTEGER)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS query_events_time ON query_events (timestamp)")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the query log {path}: {exc}") from exc

    def hash_key(self) -> bytes:
        """The key file's bytes; made on first use, readable by its owner only (mode 0600), and linked into place
        in one step, so processes starting together agree on one key."""
        try:
            if not self.key_path.exists():
                draft = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
                descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(descriptor, secrets.token_bytes(HASH_KEY_BYTES))
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
                try:
                    os.link(draft, self.key_path)
                except FileExistsError:
                    pass  # another process made it first: use theirs
                finally:
                    draft.unlink()
            key = self.key_path.read_bytes()
        except OSError as exc:
            raise BackendError(f"cannot read or make the query hash key {self.key_path}: {exc.strerror}") from None
        if len(key) != HASH_KEY_BYTES:
            raise BackendError(f"the query hash key {self.key_path} is damaged (not {HASH_KEY_BYTES} bytes)")
        return key

    def write(self, events: Sequence[QueryEvent]) -> None:
        rows = [
            (e.timestamp.isoformat(), e.query, e.query_hashed, e.mode, e.k, e.reranked, e.hits, e.zero_results,
             e.backend, e.origin, e.index, json.dumps(e.latency_ms), e.top_score, json.dumps(e.top_scores),
             e.top_rerank_score, e.rerank_top_first_stage_rank, e.index_documents, e.index_passages)
            for e in events
        ]
        placeholders = ",".join("?" * len(self._COLUMNS))
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        f"INSERT INTO query_events ({','.join(self._COLUMNS)}) VALUES ({placeholders})", rows
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot write the query log {self.path}: {exc}") from exc

    def read(self, since: datetime | None = None, limit: int = MAX_EVENTS_READ) -> list[QueryEvent]:
        start = _utc_iso(since) or ""
        with self._lock, self._reading():
            rows = self._db.execute(
                f"SELECT {','.join(self._COLUMNS)} FROM query_events WHERE timestamp >= ?"
                " ORDER BY timestamp DESC, id DESC LIMIT ?",
                (start, limit),
            ).fetchall()
        events = []
        for row in reversed(rows):
            values = dict(zip(self._COLUMNS, row))
            values["@timestamp"] = values.pop("timestamp")
            values["index"] = values.pop("index_name")
            values["latency_ms"] = json.loads(values["latency_ms"])
            values["top_scores"] = json.loads(values["top_scores"])
            for flag in ("query_hashed", "reranked", "zero_results"):
                values[flag] = bool(values[flag])
            events.append(QueryEvent.from_document(values))
        return events

    def count(self, since: datetime | None = None) -> int:
        start = _utc_iso(since) or ""
        with self._lock, self._reading():
            return self._db.execute("SELECT COUNT(*) FROM query_events WHERE timestamp >= ?", (start,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise BackendError(f"cannot read the query log {self.path}: {exc}") from exc


class ElasticsearchQueryLog(QueryLog):
    """Events in an Elasticsearch data stream, set up from an index template on first write.

    The stream is shared by every bertsearch index on the cluster (the dashboards can compare them); `read`
    returns only the events of the index at `location`.
    """

    def __init__(self, location: StoreLocation, stream: str = QUERY_LOG_STREAM) -> None:
        assert location.elasticsearch is not None
        self.connection = location.elasticsearch
        self.stream = stream
        self.index = location.es_index
        self._client = location.elasticsearch.client()
        self._template_ready = False

    def write(self, events: Sequence[QueryEvent]) -> None:
        from elasticsearch import ApiError, TransportError, helpers

        if not events:
            return
        try:
            self._ensure_template()
            actions = [{"_op_type": "create", "_index": self.stream, "_source": e.to_document()} for e in events]
            _, errors = helpers.bulk(self._client, actions, raise_on_error=False, stats_only=False)
        except (ApiError, TransportError) as exc:
            raise BackendError(f"cannot write query events to {self.stream!r} at {self.connection.url}: {exc}") from None
        if errors:
            first = next(iter(errors[0].values()))
            raise BackendError(f"Elasticsearch refused {len(errors)} query event(s) in {self.stream!r}: {first.get('error')}")

    def read(self, since: datetime | None = None, limit: int = MAX_EVENTS_READ) -> list[QueryEvent]:
        from elasticsearch import ApiError, NotFoundError, TransportError, helpers

        query = self._events_of_this_index(_utc_iso(since))
        try:
            count = self._client.count(index=self.stream, query=query)["count"]
            if count > limit:  # keep the newest `limit`: start from the timestamp of the limit-th newest
                newest = self._client.search(index=self.stream, query=query, size=1, from_=limit - 1,
                                             sort=[{"@timestamp": "desc"}], source=["@timestamp"])
                query = self._events_of_this_index(newest["hits"]["hits"][0]["_source"]["@timestamp"])
            hits = helpers.scan(self._client, index=self.stream, query={"query": query}, size=1000)
            events = [QueryEvent.from_document(hit["_source"]) for hit in hits]
        except NotFoundError:
            return []
        except (ApiError, TransportError) as exc:
            raise BackendError(f"cannot read query events from {self.stream!r} at {self.connection.url}: {exc}") from None
        events.sort(key=lambda e: e.timestamp)
        return events[-limit:]

    def count(self, since: datetime | None = None) -> int:
        from elasticsearch import ApiError, NotFoundError, TransportError

        query = self._events_of_this_index(_utc_iso(since))
        try:
            return int(self._client.count(index=self.stream, query=query)["count"])
        except NotFoundError:
            return 0
        except (ApiError, TransportError) as exc:
            raise BackendError(f"cannot count query events in {self.stream!r} at {self.connection.url}: {exc}") from None

    def hash_key(self) -> bytes:
        """This index's document in the hidden index `QUERY_HASH_KEY_INDEX`, created once (`create`, so two
        processes starting together agree on one key): readers of the log need no access to it."""
        from elasticsearch import ApiError, ConflictError, NotFoundError, TransportError

        try:
            try:
                return base64.b64decode(self._client.get(index=QUERY_HASH_KEY_INDEX, id=self.index)["_source"]["key"])
            except NotFoundError:
                pass
            self._client.options(ignore_status=400).indices.create(
                index=QUERY_HASH_KEY_INDEX,
                settings={"number_of_shards": 1, "auto_expand_replicas": "0-1", "hidden": True},
                mappings={"dynamic": "strict", "properties": {"key": {"type": "keyword", "index": False,
                                                                     "doc_values": False}}},
            )
            key = base64.b64encode(secrets.token_bytes(HASH_KEY_BYTES)).decode()
            try:
                self._client.create(index=QUERY_HASH_KEY_INDEX, id=self.index, document={"key": key}, refresh=True)
            except ConflictError:  # another process made it first: use theirs
                pass
            return base64.b64decode(self._client.get(index=QUERY_HASH_KEY_INDEX, id=self.index)["_source"]["key"])
        except (ApiError, TransportError) as exc:
            raise BackendError(f"cannot read or make the query hash key in {QUERY_HASH_KEY_INDEX!r} at "
                               f"{self.connection.url}: {exc}") from None

    def close(self) -> None:
        self._client.close()

    def _events_of_this_index(self, start: str | None) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [{"term": {"index": self.index}}]
        if start is not None:
            clauses.append({"range": {"@timestamp": {"gte": start}}})
        return {"bool": {"filter": clauses}}

    def _ensure_template(self) -> None:
        """An index template that turns `stream` into a data stream with the event mapping; with a retention
        lifecycle where the cluster accepts one (8.11+)."""
        if self._template_ready:
            return
        from elasticsearch import BadRequestError

        template: dict[str, Any] = {"mappings": QUERY_EVENT_MAPPING, "settings": {"number_of_shards": 1}}
        body = {"index_patterns": [self.stream], "data_stream": {}, "priority": 500,
                "_meta": {"description": "bertsearch query events"}}
        try:
            self._client.indices.put_index_template(
                name=self.stream, template={**template, "lifecycle": {"data_retention": RETENTION}}, **body
            )
        except BadRequestError:
            self._client.indices.put_index_template(name=self.stream, template=template, **body)
        self._template_ready = True


def open_query_log(location: StoreLocation, read_only: bool = False) -> QueryLog:
    """The query log of the index at `location`: a data stream on its cluster, or a file in its folder.

    Opened to write unless `read_only`; BackendError if an index folder's log cannot be written (the folder is
    read-only), so that the caller can go on without logging.
    """
    if location.backend == "elasticsearch":
        return ElasticsearchQueryLog(location)
    path = location.index_dir / QUERY_LOG_DATABASE
    key_path = location.index_dir / QUERY_HASH_KEY_FILE
    if read_only:
        return SqliteQueryLog(path, key_path, read_only=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(f"cannot write the query log in {path.parent}: {exc.strerror}") from None
    if not is_writable(path):
        raise BackendError(f"cannot write the query log {path}: it is read-only")
    return SqliteQueryLog(path, key_path)


class BackgroundQueryLog:
    """Writes events on a thread of its own, in batches, so a query never waits for its log entry.

    `record` only appends to a queue: waking the writer for each event cost a search ~0.2 ms of GIL time
    (a futex wake per query, measured with py-spy at 8 clients). The writer wakes every `interval` seconds
    instead, or when `flush` or `close` asks. `failures` counts events that could not be written, or were
    dropped because `max_pending` were waiting; `last_error` says why (shown by the server's health).
    """

    def __init__(self, log: QueryLog, max_pending: int = 10_000, batch: int = 500, interval: float = 0.5) -> None:
        self.log = log
        self.failures = 0
        self.last_error: str | None = None
        self._batch = batch
        self._max_pending = max_pending
        self._interval = interval
        # Events, flush markers (Events set once what precedes them is written) and the stop marker (None).
        self._pending: deque[QueryEvent | threading.Event | None] = deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)
        self._thread.start()

    def record(self, event: QueryEvent) -> None:
        """Queue `event`; if the writer has fallen far behind, the event is dropped and counted."""
        if len(self._pending) >= self._max_pending:
            self.failures += 1
            return
        self._pending.append(event)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event recorded before this call has been written (or failed)."""
        written = threading.Event()
        self._pending.append(written)
        self._wake.set()
        written.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop the writer, then close the log."""
        self._pending.append(None)
        self._wake.set()
        self._thread.join(timeout=30)
        self.log.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while self._pending:
                items = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
                events = [item for item in items if isinstance(item, QueryEvent)]
                if events:
                    try:
                        self.log.write(events)
                    except BertsearchError as exc:
                        self.failures += len(events)
                        self.last_error = str(exc)
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(item is None for item in items):
                    return


def _utc_iso(moment: datetime | None) -> str | None:
    """`moment` in UTC as ISO 8601, the form both logs store and compare timestamps in."""
    return moment.astimezone(timezone.utc).isoformat() if moment else None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
