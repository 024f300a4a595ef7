"""The embedded store's vector index: FAISS over the passages' vectors, derived from SQLite.

SQLite holds every vector; this index is saved beside the database with the database "generation" it reflects,
and brought up to date from SQLite (passage ids added and removed) whenever the two differ, e.g. after a killed
run, so a lost or stale file only costs a rebuild. FAISS is imported on first use: a keyword search needs none.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import faiss

VECTORS_NAME = "vectors.faiss"
VECTORS_STATE_NAME = "vectors.json"

# Exact search is fast enough below this many passages (~10 ms at 384 dims on 2 cores); above it an
# IVF index answers in a fraction of that with recall@10 ~0.95+ at the nprobe chosen below.
ANN_THRESHOLD = 200_000


def _faiss() -> Any:
    import faiss

    return faiss


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    """Run FAISS with `count` OpenMP threads: one for single queries, where spinning threads only fight the
    encoder for cores (measured: 800 ms instead of 10 ms per query on 2 busy cores), all of them for builds."""
    faiss = _faiss()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def vector_index_kind(passages: int) -> str:
    """Which index a store of `passages` passages searches: "exact" or "ivf"."""
    return "ivf" if passages >= ANN_THRESHOLD else "exact"


def remove_vector_files(index_dir: Path) -> None:
    """Forget the saved index (a new or repaired database must never be searched through an old one's)."""
    for name in (VECTORS_NAME, VECTORS_STATE_NAME):
        (index_dir / name).unlink(missing_ok=True)


class VectorIndex:
    """The FAISS index of one embedded store, kept in step with its database. Not thread-safe: the store calls
    it behind its own lock."""

    def __init__(self, index_dir: Path, dimensions: int) -> None:
        self.index_dir = index_dir
        self.dimensions = dimensions
        self._index: faiss.Index | None = None
        self._generation = -1
        self._saved = True

    def search(self, db: sqlite3.Connection, generation: int, query: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` passage ids nearest to `query` with their inner products, best first; only `allowed` ids if given."""
        faiss = _faiss()
        index = self.synced(db, generation)
        if index.ntotal == 0 or k <= 0:
            return []
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            params = self._search_params(index, faiss.IDSelectorBatch(allowed))
        elif isinstance(index, faiss.IndexIVF):
            params = self._search_params(index, None)
        with faiss_threads(1):
            scores, ids = index.search(vector, min(k, index.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def synced(self, db: sqlite3.Connection, generation: int) -> Any:
        """The FAISS index, loaded or rebuilt and brought up to the database's `generation`."""
        faiss = _faiss()
        if self._index is not None and self._generation == generation:
            return self._index
        if self._index is None:
            self._index, self._generation = self._load()
            if self._generation == generation:
                return self._index
        db_ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM passages")), dtype=np.int64)
        wanted_kind = faiss.IndexIVF if vector_index_kind(len(db_ids)) == "ivf" else faiss.IndexIDMap2
        if not isinstance(self._index, wanted_kind) or self._needs_retraining(self._index, len(db_ids)):
            self._index = self._build(db, db_ids)
        else:
            held = _index_ids(self._index)
            stale = np.setdiff1d(held, db_ids, assume_unique=True)
            if stale.size:
                self._index.remove_ids(faiss.IDSelectorBatch(stale))
            missing = np.setdiff1d(db_ids, held, assume_unique=True)
            for ids, vectors in self._read(db, missing, len(db_ids)):
                self._index.add_with_ids(vectors, ids)
        self._generation = generation
        self._saved = False
        return self._index

    def save(self) -> None:
        """Index file first, then the generation it reflects: a crash between them only costs a re-sync."""
        if self._index is None or self._saved:
            return
        vectors_file = self.index_dir / VECTORS_NAME
        tmp = vectors_file.with_suffix(".tmp")
        _faiss().write_index(self._index, str(tmp))
        _fsync(tmp)
        os.replace(tmp, vectors_file)
        state_file = self.index_dir / VECTORS_STATE_NAME
        tmp_state = state_file.with_suffix(".tmp")
        tmp_state.write_text(json.dumps({"generation": self._generation}))
        _fsync(tmp_state)
        os.replace(tmp_state, state_file)
        self._saved = True

    @staticmethod
    def _search_params(index: Any, selector: Any) -> Any:
        faiss = _faiss()
        if isinstance(index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(nprobe=max(16, index.nlist // 16))
            if selector is not None:
                params.sel = selector
            return params
        return faiss.SearchParameters(sel=selector)

    @staticmethod
    def _needs_retraining(index: Any, count: int) -> bool:
        """IVF centroids trained on far fewer vectors than the index now holds make lists lopsided."""
        if not isinstance(index, _faiss().IndexIVF):
            return False
        trained_for = (index.nlist / 4) ** 2  # inverse of nlist = 4 * sqrt(count) in _build
        return count > 4 * trained_for

    def _build(self, db: sqlite3.Connection, db_ids: np.ndarray) -> Any:
        faiss = _faiss()
        dims = self.dimensions
        if vector_index_kind(len(db_ids)) == "exact":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dims))
            for ids, vectors in self._read(db, db_ids, len(db_ids)):
                index.add_with_ids(vectors, ids)
            return index
        nlist = int(4 * np.sqrt(len(db_ids)))
        quantizer = faiss.IndexFlatIP(dims)
        index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss.METRIC_INNER_PRODUCT)
        sample_ids = np.sort(np.random.default_rng(0).choice(db_ids, size=min(len(db_ids), nlist * 64), replace=False))
        sample = np.concatenate([v for _, v in self._read(db, sample_ids, len(db_ids))])
        index.train(sample)
        for ids, vectors in self._read(db, db_ids, len(db_ids)):
            index.add_with_ids(vectors, ids)
        return index

    def _read(self, db: sqlite3.Connection, ids: np.ndarray, total: int,
              chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Vectors of `ids` from SQLite in chunks; a full scan when most rows are wanted."""
        if ids.size == 0:
            return
        if ids.size > total // 4:
            wanted = set(ids.tolist()) if ids.size < total else None
            cursor = db.execute("SELECT id, vector FROM passages ORDER BY id")
            while rows := cursor.fetchmany(chunk):
                if wanted is not None:
                    rows = [r for r in rows if r[0] in wanted]
                if rows:
                    yield _as_arrays(rows, self.dimensions)
            return
        for start in range(0, ids.size, 900):
            part = ids[start : start + 900].tolist()
            rows = db.execute(f"SELECT id, vector FROM passages WHERE id IN ({','.join('?' * len(part))})",
                              part).fetchall()
            if rows:
                yield _as_arrays(rows, self.dimensions)

    def _load(self) -> tuple[Any, int]:
        try:
            state = json.loads((self.index_dir / VECTORS_STATE_NAME).read_text())
            return _faiss().read_index(str(self.index_dir / VECTORS_NAME)), int(state["generation"])
        except (OSError, ValueError, KeyError, RuntimeError):
            return None, -1


def _index_ids(index: Any) -> np.ndarray:
    faiss = _faiss()
    if isinstance(index, faiss.IndexIDMap2):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    lists = index.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(index.nlist)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, dtype=np.int64)


def _as_arrays(rows: list[tuple[int, bytes]], dims: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dims)
    return ids, vectors


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
