"""Opening SQLite files read-only, shared by the embedded store and the query log beside it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from pathlib import Path


def read_only_uri(database: Path) -> str:
    """The URI that opens `database` read-only. In WAL mode SQLite keeps the log's index in a `-shm` file beside
    the database; where it can create none (a read-only folder, after a clean close removed it) the database is
    opened immutable: its file then holds every committed change, and this process cannot change it either."""
    uri = "file:" + urllib.parse.quote(os.fsencode(database)) + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as probe:
            probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        return uri + "&immutable=1"
    return uri


def is_writable(path: Path) -> bool:
    """True if this process may change the file at `path` (or create it, in its folder): not so on a read-only
    mount, for an immutable file, or without write permission."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
