"""What is left of a damaged SQLite database of the embedded store: the check that finds the damage, and the
passages' vectors that can still be read, for `EmbeddedStore.repair` to hand to re-indexing."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from bertsearch.sqlite import read_only_uri
from bertsearch.stores.base import vector_key
from bertsearch.types import Passage


def damage(database: Path) -> str | None:
    """What SQLite finds wrong with `database` (a quick_check), or None if nothing."""
    try:
        with contextlib.closing(sqlite3.connect(read_only_uri(database), uri=True)) as db:
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if problem == "ok" else problem


def salvaged_vectors(database: Path, dims: int, chunk: int = 1000) -> Iterator[tuple[list[str], np.ndarray]]:
    """The passages of a damaged database that can still be read, as (vector keys, vectors) in chunks.

    They are read from a copy whose header claims only the pages the file holds (SQLite refuses a truncated
    file whole). Rows are read in id order; past a damaged part, reading resumes ever further on (1, 2, 4...
    ids) until it finds rows again, so each damaged part costs a few failed reads, not one per row.
    """
    copy = database.with_name(database.name + ".salvage")
    try:
        _readable_copy(database, copy)
        keys: list[str] = []
        vectors: list[np.ndarray] = []
        last, gap = 0, 1
        with contextlib.closing(sqlite3.connect(copy)) as db:
            while gap < 1 << 62:
                try:
                    for passage_id, title, text, vector in db.execute(
                        "SELECT id, title, text, vector FROM passages WHERE id > ? ORDER BY id", (last,)
                    ):
                        last, gap = passage_id, 1
                        if not (isinstance(title, str) and isinstance(text, str) and isinstance(vector, bytes)
                                and len(vector) == 4 * dims):
                            continue
                        values = np.frombuffer(vector, dtype=np.float32)
                        if not np.isfinite(values).all():
                            continue
                        keys.append(vector_key(Passage("", 0, text, title).encoder_input()))
                        vectors.append(values)
                        if len(keys) == chunk:
                            yield keys, np.stack(vectors)
                            keys, vectors = [], []
                    break
                except sqlite3.DatabaseError:
                    last, gap = last + gap, gap * 2
        if keys:
            yield keys, np.stack(vectors)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _readable_copy(database: Path, copy: Path) -> None:
    """A copy of `database` (and its log) whose header gives the number of whole pages the file really holds
    (SQLite's file format: the in-header size counts when offset 92 matches the change counter at 24)."""
    shutil.copyfile(database, copy)
    if Path(f"{database}-wal").exists():
        shutil.copyfile(f"{database}-wal", f"{copy}-wal")
    with open(copy, "r+b") as handle:
        header = handle.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            return
        page_size = int.from_bytes(header[16:18], "big")
        pages = os.path.getsize(copy) // (65536 if page_size == 1 else page_size)
        handle.truncate(pages * (65536 if page_size == 1 else page_size))
        handle.seek(28)
        handle.write(pages.to_bytes(4, "big"))
        handle.seek(92)
        handle.write(header[24:28])
