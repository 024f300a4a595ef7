"""The embedded store: atomic per-document writes, FAISS kept in step with SQLite, BM25 and filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bertsearch.errors import BackendError, DamagedIndexError, IndexNotFoundError, ReadOnlyIndexError
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores import SearchFilter, create_store, open_store
from bertsearch.stores import embedded
from bertsearch.stores.base import EncodedDocument, vector_key
from bertsearch.stores.embedded import EmbeddedStore, vectors
from bertsearch.types import Document, Passage
from tests.helpers import immutable_files, read_only_view
from tests.stores.contract import check_ids_only_searches_and_with_texts, check_stash

DIMS = 16


def settings() -> IndexSettings:
    return IndexSettings(model_path="/m", model_fingerprint="f" * 16, dimensions=DIMS, chunking=ChunkingSettings())


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


def encoded(doc_id: str, texts: list[str], seed: int, source: str = "/corpus/a.txt", **metadata: object) -> EncodedDocument:
    document = Document(doc_id=doc_id, text=" ".join(texts), title=f"title {doc_id}", source=source, metadata=dict(metadata))
    passages = [Passage(doc_id=doc_id, position=i, text=t, title=document.title) for i, t in enumerate(texts)]
    vectors = np.stack([unit(seed * 100 + i) for i in range(len(texts))])
    return EncodedDocument(document, f"hash-{doc_id}-{len(texts)}", passages, vectors)


@pytest.fixture
def store(tmp_path: Path):
    with create_store(tmp_path / "idx", settings()) as opened:
        yield opened


def test_dense_search_finds_the_stored_vector_first(store: EmbeddedStore) -> None:
    store.write([encoded("a", ["alpha one", "alpha two"], 1), encoded("b", ["beta"], 2)])
    hits = store.dense_search(unit(200), k=3)
    assert hits[0].doc_id == "b" and hits[0].position == 0
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].title == "title b" and hits[0].source == "/corpus/a.txt"
    assert len(hits) == 3


def test_searches_without_texts_give_the_same_hits_and_with_texts_reads_them(store: EmbeddedStore) -> None:
    store.write([encoded("a", ["zebra one", "zebra two"], 1), encoded("b", ["zebra three"], 2)])
    check_ids_only_searches_and_with_texts(store, unit(101), "zebra", deleted="b")


def test_reading_threads_see_each_committed_write(store: EmbeddedStore) -> None:
    """Each reading thread has its own connection; it must never keep reading an older state."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as reader:  # one thread, so the same connection every time
        def found(query: str) -> set[str]:
            return reader.submit(lambda: {h.doc_id for h in store.keyword_search(query, 10)}).result()

        store.write([encoded("a", ["zebra crossing"], 1)])
        assert found("zebra") == {"a"}
        store.write([encoded("b", ["zebra stripes"], 2)])
        assert found("zebra") == {"a", "b"}
        store.delete(["a"])
        assert found("zebra") == {"b"}
        assert reader.submit(lambda: [h.text for h in store.with_texts(store.dense_search(unit(200), 1))]).result() == [
            "zebra stripes"]


def test_rewrite_replaces_all_passages_of_a_document(store: EmbeddedStore) -> None:
    store.write([encoded("a", ["one", "two", "three"], 1)])
    store.write([encoded("a", ["uno"], 5)])
    assert store.stats().passages == 1
    assert [h.text for h in store.dense_search(unit(500), k=10)] == ["uno"]
    assert store.stored_documents()["a"].content_hash == "hash-a-1"


def test_delete_removes_documents_vectors_and_keywords(store: EmbeddedStore) -> None:
    store.write([encoded("a", ["zebra crossing"], 1), encoded("b", ["zebra stripes"], 2)])
    store.delete(["a", "missing"])
    assert store.stats().documents == 1
    assert {h.doc_id for h in store.keyword_search("zebra", 10)} == {"b"}
    assert {h.doc_id for h in store.dense_search(unit(100), 10)} == {"b"}
    assert store.get_document("a") is None


def test_keyword_search_ranks_by_bm25_and_stems(store: EmbeddedStore) -> None:
    store.write([
        encoded("a", ["proteins fold into shapes; protein folding is studied"], 1),
        encoded("b", ["the weather was mild"], 2),
        encoded("c", ["a protein"], 3),
    ])
    hits = store.keyword_search("Protein folding?", 10)
    assert [h.doc_id for h in hits] == ["a", "c"]
    assert hits[0].score > hits[1].score > 0
    # A query of stopwords only still searches them rather than returning nothing.
    assert [h.doc_id for h in store.keyword_search("the of", 10)] == ["b"]
    assert store.keyword_search("?!", 10) == []
    # FTS5 syntax in user text is quoted, not interpreted.
    assert [h.doc_id for h in store.keyword_search('"weather AND (NEAR', 10)] == ["b"]


def test_filters_restrict_both_retrievers_and_still_return_k(store: EmbeddedStore) -> None:
    store.write([encoded(f"d{i}", [f"common word {i}"], i, source=f"/corpus/{'x' if i % 2 else 'y'}/{i}.txt", lang="en" if i < 6 else "de")
                 for i in range(10)])
    only_x = SearchFilter(source_prefix="/corpus/x/")
    dense = store.dense_search(unit(0), k=3, filter=only_x)
    assert len(dense) == 3 and all(h.source.startswith("/corpus/x/") for h in dense)
    keyword = store.keyword_search("common", 10, filter=only_x)
    assert {h.doc_id for h in keyword} == {"d1", "d3", "d5", "d7", "d9"}
    german = store.keyword_search("common", 10, filter=SearchFilter(metadata={"lang": "de"}))
    assert {h.doc_id for h in german} == {"d6", "d7", "d8", "d9"}


def test_reopen_after_crash_resyncs_vectors_from_sqlite(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as store:
        store.write([encoded("a", ["first"], 1)])
    # Simulate a process killed after a later commit but before the vector file was saved.
    store = open_store(folder)
    store.write([encoded("b", ["second"], 2)])
    store.delete(["a"])
    store._db.close()
    store._write_lock_file.close()
    reopened = open_store(folder)
    assert [h.doc_id for h in reopened.dense_search(unit(200), 5)] == ["b"]
    reopened.close()


def test_corrupt_vector_file_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as store:
        store.write([encoded("a", ["first"], 1)])
    (folder / embedded.VECTORS_NAME).write_bytes(b"garbage")
    with open_store(folder) as store:
        assert store.dense_search(unit(100), 1)[0].doc_id == "a"


def test_switches_to_ivf_above_threshold_and_keeps_recall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "ANN_THRESHOLD", 400)
    with create_store(tmp_path / "idx", settings()) as store:
        store.write([encoded(f"d{i}", [f"text {i}"], i) for i in range(500)])
        hits = store.dense_search(unit(4200), 5)
        assert store.stats().details["vector_index"] == "ivf-sq8"
        assert hits[0].doc_id == "d42"
        store.delete(["d42"])
        assert all(h.doc_id != "d42" for h in store.dense_search(unit(4200), 5))


def test_second_writer_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as first:
        first.write([encoded("a", ["x"], 1)])
        second = open_store(folder)
        with pytest.raises(BackendError, match="another process"):
            second.write([encoded("b", ["y"], 2)])
        second.close()


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index at"):
        open_store(tmp_path / "nothing")


@pytest.mark.parametrize("protection", ["read-only mount", "immutable files"])
def test_a_read_only_index_answers_searches_and_refuses_writes(tmp_path: Path, protection: str) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as store:
        store.write([encoded("a", ["zebra crossing"], 1), encoded("b", ["zebra stripes"], 2)])
    def contents() -> dict[str, bytes]:  # SQLite's own -shm and -wal files may come and go
        return {path.name: path.read_bytes() for path in folder.iterdir() if not path.name.endswith(("-shm", "-wal"))}

    files = contents()
    with read_only_view(folder) if protection == "read-only mount" else immutable_files(folder) as view:
        with open_store(view or folder) as store:
            assert store.read_only
            assert {h.doc_id for h in store.keyword_search("zebra", 10)} == {"a", "b"}
            assert store.dense_search(unit(100), 1)[0].doc_id == "a"
            assert store.get_document("b").text == "zebra stripes" and store.stats().documents == 2
            for write in (lambda: store.write([encoded("c", ["zebra"], 3)]), lambda: store.delete(["a"]),
                          lambda: store.stash_vectors(["k"], unit(1)[None])):
                with pytest.raises(ReadOnlyIndexError, match="read-only: it can be searched, not written"):
                    write()
    assert contents() == files


def many_passages(count: int) -> list[EncodedDocument]:
    return [encoded(f"d{i}", [f"passage {i}: " + "filler words to fill pages " * 40], i) for i in range(count)]


def test_a_damaged_database_is_one_error_and_repair_keeps_it_and_saves_its_vectors(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    documents = many_passages(80)
    with create_store(folder, settings()) as store:
        store.write(documents)
    database = folder / embedded.DATABASE_NAME
    damaged = database.read_bytes()[: database.stat().st_size // 2]
    database.write_bytes(damaged)
    with pytest.raises(DamagedIndexError, match=r"store.sqlite3 is damaged \(database disk image is malformed\)"):
        open_store(folder)

    repair = EmbeddedStore.repair(folder)

    assert repair.moved_to.parent == folder and repair.moved_to.read_bytes() == damaged  # kept as it was
    assert 10 < repair.vectors_salvaged < len(documents)
    keys = {vector_key(item.passages[0].encoder_input()): item.vectors[0] for item in documents}
    with open_store(folder) as store:
        assert store.stats().documents == 0 and store.dense_search(unit(1), 5) == []  # stashed, never searched
        stashed = store.stashed_vectors(list(keys))
    assert len(stashed) == repair.vectors_salvaged
    assert all(np.array_equal(vector, keys[key]) for key, vector in stashed.items())
    assert EmbeddedStore.repair(folder) is None  # the new database is sound


def test_stashed_vectors_come_back_exactly_and_outlive_the_process(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as store:
        store.write([encoded("a", ["zebra crossing"], 1)])
        check_stash(store, np.stack([unit(7), unit(8)]))
        store.stash_vectors(["kept"], unit(9)[None])
    with open_store(folder) as store:
        assert np.array_equal(store.stashed_vectors(["kept"])["kept"], unit(9))


def test_a_new_database_never_takes_an_old_vector_file_for_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with create_store(folder, settings()) as store:
        store.write([encoded("old", ["old text"], 1)])
    (folder / embedded.DATABASE_NAME).unlink()
    with create_store(folder, settings()) as store:
        store.write([encoded("new", ["new text"], 2)])
        assert [h.doc_id for h in store.dense_search(unit(100), 5)] == ["new"]
