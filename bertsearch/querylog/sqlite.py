"""The query log beside an embedded index: the table `query_events` in `querylog/queries.sqlite3` in the index
folder (its own file, so logging never waits for the store's write lock); the hash key is a file beside it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from collections.abc import Iterator, Sequence

from bertsearch.errors import BackendError
from bertsearch.querylog.base import MAX_EVENTS_READ, QueryLog
from bertsearch.querylog.event import QueryEvent, utc_iso
from bertsearch.querylog.hashing import QUERY_HASH_KEY_FILE, file_hash_key
from bertsearch.sqlite import is_writable, read_only_uri
from bertsearch.stores import StoreLocation

# In a subfolder, so the log does not count towards the index size the store reports.
QUERY_LOG_DATABASE = Path("querylog") / "queries.sqlite3"


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
                "CREATE TABLE IF NOT EXISTS query_events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " timestamp TEXT NOT NULL, query TEXT NOT NULL, query_hashed INTEGER NOT NULL, mode TEXT NOT NULL,"
                " k INTEGER NOT NULL, reranked INTEGER NOT NULL, hits INTEGER NOT NULL, zero_results INTEGER NOT NULL,"
                " backend TEXT NOT NULL,"
                " origin TEXT NOT NULL, index_name TEXT NOT NULL, latency_ms TEXT NOT NULL, top_score REAL,"
                " top_scores TEXT NOT NULL, top_rerank_score REAL, rerank_top_first_stage_rank INTEGER,"
                " index_documents INTEGER, index_passages INTEGER)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS query_events_time ON query_events (timestamp)")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the query log {path}: {exc}") from exc

    @classmethod
    def open_at(cls, location: StoreLocation, read_only: bool = False) -> SqliteQueryLog:
        """The log in the index folder at `location`; BackendError, unless `read_only`, if the folder cannot be
        written."""
        path = location.index_dir / QUERY_LOG_DATABASE
        key_path = location.index_dir / QUERY_HASH_KEY_FILE
        if read_only:
            return cls(path, key_path, read_only=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot write the query log in {path.parent}: {exc.strerror}") from None
        if not is_writable(path):
            raise BackendError(f"cannot write the query log {path}: it is read-only")
        return cls(path, key_path)

    def hash_key(self) -> bytes:
        return file_hash_key(self.key_path)

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
        start = utc_iso(since) or ""
        with self._lock, self._reading():
            rows = self._db.execute(
                f"SELECT {','.join(self._COLUMNS)} FROM query_events WHERE timestamp >= ?"
                " ORDER BY timestamp DESC, id DESC LIMIT ?",
                (start, limit),
            ).fetchall()
        events = []
        for row in reversed(rows):
            values = dict(zip(self._COLUMNS, row, strict=True))
            values["@timestamp"] = values.pop("timestamp")
            values["index"] = values.pop("index_name")
            values["latency_ms"] = json.loads(values["latency_ms"])
            values["top_scores"] = json.loads(values["top_scores"])
            for flag in ("query_hashed", "reranked", "zero_results"):
                values[flag] = bool(values[flag])
            events.append(QueryEvent.from_document(values))
        return events

    def count(self, since: datetime | None = None) -> int:
        start = utc_iso(since) or ""
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
