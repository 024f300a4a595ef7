"""The embedded store's vector index: FAISS over the passages' vectors, derived from SQLite.

SQLite holds every vector; this index is saved beside the database with the database "generation" it reflects,
and brought up to date from SQLite (passage ids added and removed) whenever the two differ, e.g. after a killed
run, so a lost or stale file only costs a rebuild. FAISS is imported on first use: a keyword search needs none.

Which index (`VECTOR_INDEX_CHOICES`) is recorded in the index settings ("auto" unless chosen); the kind it
resolves to, with its IVF lists and probes, is recorded in the state file beside the index
(`VectorIndex.describe`). A saved index is memory-mapped to search, and read in full only to be changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import faiss

VECTORS_NAME = "vectors.faiss"
VECTORS_STATE_NAME = "vectors.json"

# "exact": every vector, float32; "ivf": inverted lists of float32 vectors; "ivf-sq8": inverted lists of vectors
# quantised to 8 bits per dimension (4x smaller). "auto" is exact below ANN_THRESHOLD passages, ivf-sq8 above.
VECTOR_INDEX_CHOICES = ("auto", "exact", "ivf", "ivf-sq8")
# Exact search is fast enough below this many passages (~10 ms at 384 dims on 2 cores); above it IVF-SQ8 answers
# in a few ms at recall@10 >= 0.95 (docs/scale.md, bench/bench_scale.py).
ANN_THRESHOLD = 200_000
# Where the index settings record the choice (`IndexSettings.backend_options`); absent means "auto".
VECTOR_INDEX_OPTION = "vector_index"


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


def check_vector_index_choice(choice: str) -> str:
    """`choice` if it is one of VECTOR_INDEX_CHOICES, else ValueError."""
    if choice not in VECTOR_INDEX_CHOICES:
        raise ValueError(f"unknown vector index {choice!r}; choose one of {', '.join(VECTOR_INDEX_CHOICES)}")
    return choice


def recorded_choice(backend_options: Mapping[str, Any]) -> str:
    """The vector index an index's settings ask for."""
    return check_vector_index_choice(backend_options.get(VECTOR_INDEX_OPTION, "auto"))


def vector_index_kind(passages: int, choice: str = "auto") -> str:
    """Which index a store of `passages` passages searches: "exact", "ivf" or "ivf-sq8"."""
    if check_vector_index_choice(choice) != "auto":
        return choice
    return "ivf-sq8" if passages >= ANN_THRESHOLD else "exact"


def ivf_lists(passages: int) -> int:
    """Inverted lists for `passages` vectors: 4 * sqrt(n), as FAISS's guidelines suggest, with at least 39 training
    vectors per list (fewer leaves centroids that FAISS warns about) and at least one list."""
    return max(1, min(int(4 * np.sqrt(passages)), passages // 39))


def ivf_probes(lists: int) -> int:
    """Lists searched per query: 1/16 of them, at least 16 (all of them in a small index)."""
    return min(lists, max(16, lists // 16))


def remove_vector_files(index_dir: Path) -> None:
    """Forget the saved index (a new or repaired database must never be searched through an old one's)."""
    for name in (VECTORS_NAME, VECTORS_STATE_NAME):
        (index_dir / name).unlink(missing_ok=True)


class VectorIndex:
    """The FAISS index of one embedded store, kept in step with its database. Not thread-safe: the store calls
    it behind its own lock."""

    def __init__(self, index_dir: Path, dimensions: int, choice: str = "auto") -> None:
        self.index_dir = index_dir
        self.dimensions = dimensions
        self.choice = check_vector_index_choice(choice)
        self._index: faiss.Index | None = None
        self._mapped = False  # searched straight from the file, which must be read in full before any change
        self._generation = -1
        self._saved = True

    def search(self, db: sqlite3.Connection, generation: int, query: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` passage ids nearest to `query` with their inner products, best first; only `allowed` ids if given.
        Through "ivf-sq8" the products are those of the quantised vectors (within ~0.01 of the exact ones)."""
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
            self._index, self._generation, self._mapped = self._load(mapped=True)
            if self._generation == generation:
                return self._index
        db_ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM passages")), dtype=np.int64)
        wanted_kind = vector_index_kind(len(db_ids), self.choice)
        if (self._index is None or _kind_of(self._index) != wanted_kind
                or self._needs_retraining(self._index, len(db_ids))):
            self._index = self._build(db, db_ids, wanted_kind)
        else:
            if self._mapped:
                self._index, _, self._mapped = self._load(mapped=False)
            held = _index_ids(self._index)
            stale = np.setdiff1d(held, db_ids, assume_unique=True)
            if stale.size:
                self._index.remove_ids(faiss.IDSelectorBatch(stale))
            missing = np.setdiff1d(db_ids, held, assume_unique=True)
            for ids, vectors in self._read(db, missing, len(db_ids)):
                self._index.add_with_ids(vectors, ids)
        self._mapped = False
        self._generation = generation
        self._saved = False
        return self._index

    def describe(self) -> dict[str, Any]:
        """The index as searched now: its kind and, for IVF, its lists and probes per query (as recorded)."""
        if self._index is None:
            try:
                return json.loads((self.index_dir / VECTORS_STATE_NAME).read_text())["index"]
            except (OSError, ValueError, KeyError):
                return {}
        return _description(self._index)

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
        tmp_state.write_text(json.dumps({"generation": self._generation, "index": _description(self._index)}))
        _fsync(tmp_state)
        os.replace(tmp_state, state_file)
        self._saved = True

    def close(self) -> None:
        """Let go of the index (and of its file's mapping, which would otherwise keep the file busy)."""
        self._index, self._mapped, self._generation = None, False, -1

    @staticmethod
    def _search_params(index: Any, selector: Any) -> Any:
        faiss = _faiss()
        if isinstance(index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(nprobe=ivf_probes(index.nlist))
            if selector is not None:
                params.sel = selector
            return params
        return faiss.SearchParameters(sel=selector)

    @staticmethod
    def _needs_retraining(index: Any, count: int) -> bool:
        """IVF centroids trained for far fewer vectors than the index now holds make lists lopsided."""
        if not isinstance(index, _faiss().IndexIVF):
            return False
        return index.nlist < ivf_lists(count) // 2

    def _build(self, db: sqlite3.Connection, db_ids: np.ndarray, kind: str) -> Any:
        faiss = _faiss()
        dims = self.dimensions
        if kind == "exact":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dims))
            for ids, vectors in self._read(db, db_ids, len(db_ids)):
                index.add_with_ids(vectors, ids)
            return index
        nlist = ivf_lists(len(db_ids))
        quantizer = faiss.IndexFlatIP(dims)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, dims, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
        if len(db_ids):
            sample_ids = np.sort(np.random.default_rng(0).choice(db_ids, size=min(len(db_ids), nlist * 40),
                                                                 replace=False))
            index.train(np.concatenate([v for _, v in self._read(db, sample_ids, len(db_ids))]))
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

    def _load(self, mapped: bool) -> tuple[Any, int, bool]:
        """The saved index, its generation, and whether it is memory-mapped (read-only); (None, -1, False) if none."""
        faiss = _faiss()
        try:
            state = json.loads((self.index_dir / VECTORS_STATE_NAME).read_text())
            flags = 0
            if mapped:  # IVF lists and flat vectors are mapped by different flags (flat ones since FAISS 1.9)
                exact = state.get("index", {}).get("kind", "exact") == "exact"
                flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if exact else faiss.IO_FLAG_MMAP
            return faiss.read_index(str(self.index_dir / VECTORS_NAME), flags), int(state["generation"]), mapped
        except (OSError, ValueError, KeyError, RuntimeError):
            return None, -1, False


def _kind_of(index: Any) -> str:
    faiss = _faiss()
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivf-sq8"
    return "ivf" if isinstance(index, faiss.IndexIVF) else "exact"


def _description(index: Any) -> dict[str, Any]:
    kind = _kind_of(index)
    if kind == "exact":
        return {"kind": kind}
    return {"kind": kind, "lists": int(index.nlist), "probes": ivf_probes(int(index.nlist))}


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
