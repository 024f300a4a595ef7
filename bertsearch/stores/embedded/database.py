"""The embedded store's SQLite file: its schema, write transactions, the one-writer claim, and damage reports."""

from __future__ import annotations

import fcntl
import functools
import sqlite3
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable

from bertsearch.errors import BackendError, DamagedIndexError, ReadOnlyIndexError
from bertsearch.text import FTS5_TOKENIZER

F = TypeVar("F", bound=Callable[..., Any])

DATABASE_NAME = "store.sqlite3"
LOCK_NAME = "write.lock"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (doc_id, position)
);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    title, text, content='passages', content_rowid='id',
    tokenize='{FTS5_TOKENIZER}'
);
CREATE TRIGGER IF NOT EXISTS passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
END;
CREATE TABLE IF NOT EXISTS stashed_vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
"""
# SQLite's primary result codes for a damaged file (extended codes keep them in the low byte).
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def reports_damage(method: F) -> F:
    """`method`, raising DamagedIndexError when SQLite finds the database damaged, instead of its own error."""

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _DAMAGE_CODES:
                raise
            raise damaged(self.index_dir, str(exc)) from None

    return checked  # type: ignore[return-value]


def damaged(index_dir: Path, problem: str) -> DamagedIndexError:
    return DamagedIndexError(f"the index database {index_dir / DATABASE_NAME} is damaged ({problem})", str(index_dir))


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def claim_writing(index_dir: Path) -> Any:
    """The index's write lock (an flock on its lock file), held until the returned file is closed."""
    try:
        handle = open(index_dir / LOCK_NAME, "w")
    except OSError as exc:
        raise ReadOnlyIndexError(f"the index at {index_dir} cannot be written: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BackendError(f"{index_dir} is being written by another process") from None
    return handle
