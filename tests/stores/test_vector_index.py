"""The embedded store's vector index: exact below a size, IVF-SQ8 above (or as chosen), recorded, memory-mapped on
open, kept in step with SQLite. A lowered threshold puts a 2,000-passage index through the large-index code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores import create_store, open_store
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.embedded import VECTOR_INDEX_OPTION, VECTORS_NAME, VECTORS_STATE_NAME, EmbeddedStore, vectors
from bertsearch.types import Document, Passage
from tests.helpers import fails_with

DIMS = 32
PASSAGES = 2000


def settings(choice: str | None = None) -> IndexSettings:
    options = {VECTOR_INDEX_OPTION: choice} if choice else {}
    return IndexSettings(model_path="/m", model_fingerprint="f" * 16, dimensions=DIMS, chunking=ChunkingSettings(),
                         backend_options=options)


def clustered_vectors(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres, as encoded passages cluster by topic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIMS))
    points = centres[rng.integers(0, 40, size=count)] + 0.6 * rng.normal(size=(count, DIMS))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def documents(points: np.ndarray, prefix: str = "d") -> list[EncodedDocument]:
    batch = []
    for i, point in enumerate(points):
        document = Document(doc_id=f"{prefix}{i}", text=f"passage {i}", title="", source="/corpus/a.txt")
        batch.append(EncodedDocument(document, f"h{i}", [Passage(document.doc_id, 0, document.text, "")], point[None]))
    return batch


def exact_top(points: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    return [f"d{i}" for i in np.argsort(-(points @ query), kind="stable")[:k]]


def recall_at_10(store: EmbeddedStore, points: np.ndarray, queries: np.ndarray) -> float:
    found = [len({h.doc_id for h in store.dense_search(q, 10)} & set(exact_top(points, q, 10))) for q in queries]
    return sum(found) / (10 * len(queries))


@pytest.fixture
def large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray]:
    """An index past a lowered threshold, closed (so its vector index is saved)."""
    monkeypatch.setattr(vectors, "ANN_THRESHOLD", 1000)
    points = clustered_vectors(PASSAGES)
    with create_store(tmp_path / "idx", settings()) as store:
        for start in range(0, PASSAGES, 500):
            store.write(documents(points)[start : start + 500])
    return tmp_path / "idx", points


def test_a_large_index_goes_ivf_sq8_records_it_and_keeps_recall(large: tuple[Path, np.ndarray]) -> None:
    folder, points = large
    state = json.loads((folder / VECTORS_STATE_NAME).read_text())
    lists = vectors.ivf_lists(PASSAGES)
    assert state["index"] == {"kind": "ivf-sq8", "lists": lists, "probes": vectors.ivf_probes(lists)}
    assert lists == PASSAGES // 39 and vectors.ivf_probes(lists) == 16
    with open_store(folder) as store:
        assert store.stats().details["vector_index"] == "ivf-sq8"
        assert recall_at_10(store, points, clustered_vectors(50, seed=1)) >= 0.95


def test_a_saved_index_is_searched_memory_mapped_and_read_in_full_to_change(large: tuple[Path, np.ndarray]) -> None:
    folder, points = large
    saved = (folder / VECTORS_NAME).stat().st_mtime_ns
    query = points[7]
    with open_store(folder) as store:
        assert store.dense_search(query, 1)[0].doc_id == "d7"
        assert store._vectors._mapped  # opened without reading the lists into memory
        store.delete(["d7"])
        store.write(documents(query[None], prefix="new"))
        assert store.dense_search(query, 1)[0].doc_id == "new0"
        assert not store._vectors._mapped
    assert (folder / VECTORS_NAME).stat().st_mtime_ns != saved
    with open_store(folder) as store:
        hits = [h.doc_id for h in store.dense_search(query, 5)]
        assert hits[0] == "new0" and "d7" not in hits


def test_a_lost_vector_file_is_rebuilt_as_recorded(large: tuple[Path, np.ndarray]) -> None:
    folder, points = large
    (folder / VECTORS_NAME).unlink()
    with open_store(folder) as store:
        assert store.dense_search(points[3], 1)[0].doc_id == "d3"
    assert json.loads((folder / VECTORS_STATE_NAME).read_text())["index"]["kind"] == "ivf-sq8"


@pytest.mark.parametrize("choice, kind", [(None, "exact"), ("auto", "exact"), ("exact", "exact"), ("ivf", "ivf"),
                                          ("ivf-sq8", "ivf-sq8")])
def test_the_recorded_choice_decides_the_index(tmp_path: Path, choice: str | None, kind: str) -> None:
    points = clustered_vectors(PASSAGES)
    with create_store(tmp_path / "idx", settings(choice)) as store:
        store.write(documents(points))
        assert store.stats().details["vector_index"] == kind
        assert recall_at_10(store, points, clustered_vectors(20, seed=2)) >= (1.0 if kind == "exact" else 0.95)
    assert json.loads((tmp_path / "idx" / VECTORS_STATE_NAME).read_text())["index"]["kind"] == kind


def test_small_indexes_keep_exact_scores(tmp_path: Path) -> None:
    points = clustered_vectors(300)
    with create_store(tmp_path / "idx", settings()) as store:
        store.write(documents(points))
        hits = store.dense_search(points[5], 10)
    assert [h.doc_id for h in hits] == exact_top(points, points[5], 10)
    assert [h.score for h in hits] == pytest.approx(np.sort(points @ points[5])[::-1][:10], abs=1e-5)


def test_an_unknown_choice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown vector index 'hnsw'"):
        create_store(tmp_path / "idx", settings("hnsw"))


def test_the_option_is_refused_on_elasticsearch(tmp_path: Path) -> None:
    corpus = tmp_path / "a.txt"
    corpus.write_text("a document")
    fails_with("embedded store's vector index", "index", corpus, "--index-dir", tmp_path / "idx", "--vector-index",
               "ivf-sq8", "--backend", "elasticsearch", "--es-url", "http://127.0.0.1:9")
