"""The Elasticsearch store against a real node: replace/delete semantics, kNN and BM25, filters, errors, aliases,
index layout and staged rebuilds."""

from __future__ import annotations

import base64
import socket
import threading
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pytest

from bertsearch.errors import BackendError, IndexMismatchError, IndexNotFoundError, PartialWriteError
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores import SearchFilter
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore, with_layout_defaults
from bertsearch.stores.elasticsearch import store as es_store_module
from bertsearch.types import Document, Passage
from tests.stores.contract import check_ids_only_searches_and_with_texts, check_stash

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = pytest.mark.elasticsearch

DIMS = 16


def settings(fingerprint: str = "f" * 16, dims: int = DIMS, **backend_options: object) -> IndexSettings:
    return IndexSettings(
        model_path="/m",
        model_fingerprint=fingerprint,
        dimensions=dims,
        chunking=ChunkingSettings(),
        backend="elasticsearch",
        backend_options=dict(backend_options),
    )


def unit(seed: int, dims: int = DIMS) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def encoded(
    doc_id: str, texts: list[str], seed: int, source: str = "/corpus/a.txt", **metadata: object
) -> EncodedDocument:
    document = Document(
        doc_id=doc_id, text=" ".join(texts), title=f"title {doc_id}", source=source, metadata=dict(metadata)
    )
    passages = [Passage(doc_id=doc_id, position=i, text=t, title=document.title) for i, t in enumerate(texts)]
    vectors = np.stack([unit(seed * 100 + i) for i in range(len(texts))]) if texts else np.zeros((0, DIMS), np.float32)
    return EncodedDocument(document, f"hash-{doc_id}-{len(texts)}", passages, vectors)


@pytest.fixture
def connection(elasticsearch_node: ElasticsearchNode) -> ElasticsearchConnection:
    return ElasticsearchConnection(
        elasticsearch_node.url, username=elasticsearch_node.username, password=elasticsearch_node.password
    )


@pytest.fixture
def index_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(connection: ElasticsearchConnection, index_name: str) -> Iterator[ElasticsearchStore]:
    opened = ElasticsearchStore.create(connection, index_name, settings())
    yield opened
    opened.close()


def test_dense_search_finds_the_stored_vector_first(store: ElasticsearchStore) -> None:
    store.write([encoded("a", ["alpha one", "alpha two"], 1), encoded("b", ["beta"], 2)])
    hits = store.dense_search(unit(200), k=3)
    assert hits[0].doc_id == "b" and hits[0].position == 0
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].title == "title b" and hits[0].source == "/corpus/a.txt" and hits[0].text == "beta"
    assert len(hits) == 3
    assert hits[1].score >= hits[2].score


def test_dense_search_ranks_exactly_on_a_small_set(store: ElasticsearchStore) -> None:
    store.write([encoded(f"d{i}", [f"passage {i}"], i) for i in range(40)])
    vectors = np.stack([unit(i * 100) for i in range(40)])
    query = unit(12345)
    expected = [f"d{i}" for i in np.argsort(-(vectors @ query))[:5]]
    hits = store.dense_search(query, k=5)
    assert [h.doc_id for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(sorted(vectors @ query, reverse=True)[:5], abs=1e-4)


def test_searches_without_texts_give_the_same_hits_and_with_texts_reads_them(store: ElasticsearchStore) -> None:
    long_id = "z" * 600  # its `_id` is a hash: with_texts must find it all the same
    store.write([encoded("a", ["zebra one", "zebra two"], 1), encoded(long_id, ["zebra three"], 2)])
    check_ids_only_searches_and_with_texts(store, unit(101), "zebra", deleted=long_id)


def test_stashed_vectors_come_back_exactly_from_an_index_of_their_own(store: ElasticsearchStore) -> None:
    store.write([encoded("a", ["zebra crossing"], 1)])
    check_stash(store, np.stack([unit(7), unit(8)]))
    store.stash_vectors(["kept"], unit(9)[None])
    client = store.connection.client()
    assert client.indices.exists(index=f"{store.index}-stash")
    store.clear_stash()
    assert not client.indices.exists(index=f"{store.index}-stash")
    client.close()


def test_rewrite_with_fewer_passages_leaves_no_stale_ones(store: ElasticsearchStore) -> None:
    store.write([encoded("a", ["one", "two", "three"], 1)])
    store.write([encoded("a", ["uno"], 5)])
    assert store.stats().passages == 1
    assert [h.text for h in store.dense_search(unit(500), k=10)] == ["uno"]
    assert store.keyword_search("three", 10) == []
    assert store.stored_documents()["a"].content_hash == "hash-a-1"
    assert store.get_document("a") == Document("a", "uno", "title a", "/corpus/a.txt")


def test_writing_the_same_documents_twice_duplicates_nothing(store: ElasticsearchStore) -> None:
    batch = [encoded("a", ["one", "two"], 1), encoded("b", ["three"], 2)]
    store.write(batch)
    store.write(batch)
    stats = store.stats()
    assert (stats.documents, stats.passages) == (2, 3)
    assert len(store.dense_search(unit(100), k=10)) == 3


def test_delete_removes_documents_vectors_and_keywords(store: ElasticsearchStore) -> None:
    store.write([encoded("a", ["zebra crossing", "more"], 1), encoded("b", ["zebra stripes"], 2)])
    store.delete(["a", "missing"])
    assert (store.stats().documents, store.stats().passages) == (1, 1)
    assert {h.doc_id for h in store.keyword_search("zebra", 10)} == {"b"}
    assert {h.doc_id for h in store.dense_search(unit(100), 10)} == {"b"}
    assert store.get_document("a") is None
    assert set(store.stored_documents()) == {"b"}


def test_keyword_search_ranks_by_bm25(store: ElasticsearchStore) -> None:
    store.write(
        [
            encoded("a", ["protein folding: a protein folds into a shape"], 1),
            encoded("b", ["the weather was mild"], 2),
            encoded("c", ["a protein"], 3),
        ]
    )
    hits = store.keyword_search("Protein folding?", 10)
    assert [h.doc_id for h in hits] == ["a", "c"]
    assert hits[0].score > hits[1].score > 0
    assert hits[0].text.startswith("protein folding")
    # Stemmed as the embedded store stems, though the integ-test node has no stemmer: "folds" finds "folding".
    assert [h.doc_id for h in store.keyword_search("folds", 10)] == ["a"]
    # A query of stopwords only still searches them, as the embedded store does.
    assert [h.doc_id for h in store.keyword_search("the", 10)] == ["b"]
    assert store.keyword_search("?!", 10) == []


def test_filters_apply_before_knn_so_k_hits_still_come_back(store: ElasticsearchStore) -> None:
    batch = [encoded(f"d{i}", [f"common words {i}"], i, source=f"/corpus/other/{i}.txt", lang="de") for i in range(150)]
    batch += [
        encoded(f"m{i}", [f"common words {i}"], 1000 + i, source=f"/corpus/mine/{i}.txt", lang="en", n=i % 2)
        for i in range(12)
    ]
    store.write(batch)
    # The query is an unfiltered passage's own vector: filtering after a top-k search would find nothing.
    query = unit(0)
    by_prefix = store.dense_search(query, k=10, filter=SearchFilter(source_prefix="/corpus/mine/"))
    assert len(by_prefix) == 10 and all(h.doc_id.startswith("m") for h in by_prefix)
    by_metadata = store.dense_search(query, k=10, filter=SearchFilter(metadata={"lang": "en", "n": 1}))
    assert sorted(h.doc_id for h in by_metadata) == sorted(f"m{i}" for i in range(1, 12, 2))
    keyword = store.keyword_search(
        "common", k=10, filter=SearchFilter(source_prefix="/corpus/mine/", metadata={"lang": "en"})
    )
    assert len(keyword) == 10 and all(h.source.startswith("/corpus/mine/") for h in keyword)
    assert store.dense_search(query, k=5, filter=SearchFilter(source_prefix="/nowhere/")) == []


def test_get_document_and_stored_documents_round_trip(
    store: ElasticsearchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(es_store_module, "SCAN_PAGE", 3)  # several scroll pages from a few documents
    batch = [encoded(f"d{i}", [f"text {i}"], i, source=f"/corpus/{i}.txt") for i in range(10)]
    batch.append(encoded("empty", [], 99, source="/corpus/empty.txt"))
    rich = Document(
        doc_id="r", text="full text", title="T", source="/s/r.json", metadata={"n": 3, "tags": ["x", "y"], "ok": True}
    )
    batch.append(EncodedDocument(rich, "hash-r", [Passage("r", 0, "full text", "T")], unit(7)[None, :]))
    store.write(batch)
    stored = store.stored_documents()
    assert len(stored) == 12
    assert stored["d4"].content_hash == "hash-d4-1" and stored["d4"].source == "/corpus/4.txt"
    assert stored["empty"].content_hash == "hash-empty-0"
    assert store.get_document("r") == rich
    assert store.get_document("nope") is None
    assert (store.stats().documents, store.stats().passages) == (12, 11)


def test_a_rejected_passage_fails_the_write_naming_its_document(store: ElasticsearchStore) -> None:
    bad = encoded("bad", ["zero vector"], 3)
    bad = EncodedDocument(bad.document, bad.content_hash, bad.passages, np.zeros((1, DIMS), np.float32))
    with pytest.raises(PartialWriteError, match="could not write 1 document.*bad") as caught:
        store.write([encoded("good", ["fine"], 1), bad])
    assert list(caught.value.failures) == ["bad"]
    # The good document is stored; the bad one is not remembered, so the next run retries it.
    assert set(store.stored_documents()) == {"good"}
    assert store.passage_counts(["good", "bad"]) == {"good": 1}


def test_passage_counts_say_what_the_index_holds(store: ElasticsearchStore) -> None:
    store.write([encoded("a", ["one", "two", "three"], 1), encoded("empty", [], 2), encoded("b", ["four"], 3)])
    store.write([encoded("a", ["uno"], 4)])
    assert store.passage_counts(["a", "empty", "b", "missing", "a"]) == {"a": 1, "empty": 0, "b": 1}
    assert store.passage_counts([]) == {}


def test_a_document_id_too_long_for_an_elasticsearch_id_is_stored(store: ElasticsearchStore) -> None:
    long_id = "deep/" * 120 + "é.txt"  # over Elasticsearch's 512-byte `_id` limit, which fails a whole bulk request
    store.write([encoded(long_id, ["long one", "long two"], 1), encoded("short", ["short"], 2)])
    assert set(store.stored_documents()) == {long_id, "short"}
    assert store.get_document(long_id).doc_id == long_id
    assert [h.doc_id for h in store.dense_search(unit(100), k=1)] == [long_id]
    store.write([encoded(long_id, ["only one now"], 3)])
    assert store.passage_counts([long_id]) == {long_id: 1}
    store.delete([long_id])
    assert set(store.stored_documents()) == {"short"} and store.stats().passages == 1


def test_open_reads_the_settings_and_refuses_another_model_or_chunking(
    connection: ElasticsearchConnection, store: ElasticsearchStore
) -> None:
    store.write([encoded("a", ["one"], 1)])
    with ElasticsearchStore.open(connection, store.name) as reopened:
        assert reopened.settings == with_layout_defaults(settings())
        assert reopened.get_document("a") is not None
    with pytest.raises(IndexMismatchError, match="another model"):
        ElasticsearchStore.create(connection, store.name, settings(fingerprint="0" * 16))
    other_chunking = IndexSettings("/m", "f" * 16, DIMS, ChunkingSettings(max_tokens=128), backend="elasticsearch")
    with pytest.raises(IndexMismatchError, match="chunking"):
        ElasticsearchStore.create(connection, store.name, other_chunking)


def test_missing_index_is_index_not_found(connection: ElasticsearchConnection, index_name: str) -> None:
    with pytest.raises(IndexNotFoundError, match=index_name):
        ElasticsearchStore.open(connection, index_name)


def test_bad_credentials_are_a_backend_error_without_the_password(
    elasticsearch_node: ElasticsearchNode, store: ElasticsearchStore
) -> None:
    wrong = "not-the-password-" + uuid.uuid4().hex
    for connection in (
        ElasticsearchConnection(elasticsearch_node.url, username="elastic", password=wrong),
        ElasticsearchConnection(elasticsearch_node.url.replace("http://", f"http://elastic:{wrong}@")),
    ):
        assert wrong not in repr(connection) and wrong not in connection.url
        with pytest.raises(BackendError, match="401") as caught:
            ElasticsearchStore.open(connection, store.name, max_retries=0)
        assert wrong not in str(caught.value) and wrong not in repr(caught.value)


def test_an_unknown_api_key_is_rejected_without_being_printed(
    elasticsearch_node: ElasticsearchNode, store: ElasticsearchStore
) -> None:
    """The integ-test node cannot issue API keys (its security index needs analysis-common), so this checks the
    API-key path up to the cluster's refusal."""
    key = base64.b64encode(f"{uuid.uuid4().hex}:{uuid.uuid4().hex}".encode()).decode()
    connection = ElasticsearchConnection(elasticsearch_node.url, api_key=key)
    assert key not in repr(connection)
    with pytest.raises(BackendError, match="rejected the credentials") as rejected:
        ElasticsearchStore.open(connection, store.name, max_retries=0)
    assert key not in str(rejected.value)


def test_credentials_inside_the_url_work(elasticsearch_node: ElasticsearchNode, store: ElasticsearchStore) -> None:
    url = elasticsearch_node.url.replace(
        "http://", f"http://{elasticsearch_node.username}:{elasticsearch_node.password}@"
    )
    with ElasticsearchStore.open(ElasticsearchConnection(url), store.name) as opened:
        assert opened.stats().documents == 0


def test_several_nodes_fail_over_to_one_that_answers(
    elasticsearch_node: ElasticsearchNode, store: ElasticsearchStore
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed below, so nothing listens there
    live = elasticsearch_node.url.replace("http://", f"http://elastic:{elasticsearch_node.password}@")
    connection = ElasticsearchConnection(f"{dead}, {live}")
    assert connection.url == f"{dead},{elasticsearch_node.url}" and elasticsearch_node.password not in repr(connection)
    for _ in range(3):  # whichever node the client tries first
        with ElasticsearchStore.open(connection, store.name, max_retries=0) as opened:
            assert opened.stats().documents == 0
    with pytest.raises(BackendError, match="mix http and https"):
        ElasticsearchConnection(f"{dead},https://127.0.0.1:9200")


def test_unreachable_url_is_a_backend_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed below, so nothing listens there
    connection = ElasticsearchConnection(f"http://elastic:secret-pw@127.0.0.1:{port}")
    with pytest.raises(BackendError, match="cannot reach Elasticsearch") as caught:
        ElasticsearchStore.open(connection, "anything", max_retries=1, initial_backoff=0.01)
    assert "secret-pw" not in str(caught.value)


def test_invalid_index_name_is_refused(connection: ElasticsearchConnection) -> None:
    with pytest.raises(BackendError, match="invalid Elasticsearch index name"):
        ElasticsearchStore.open(connection, "Upper/Case")


def test_staged_index_replaces_the_live_one_atomically(
    connection: ElasticsearchConnection, store: ElasticsearchStore
) -> None:
    store.write([encoded("old", ["old text"], 1)])
    old_index = store.index
    new_settings = settings(fingerprint="n" * 16, dims=8, vector_index_type="int8_hnsw")
    staged = ElasticsearchStore.stage(connection, store.name, new_settings)
    staged.write([EncodedDocument(Document("new", "new text"), "h", [Passage("new", 0, "new text")], unit(5, 8)[None])])
    # Until published, the alias still serves the old index.
    assert [h.doc_id for h in store.keyword_search("text", 10)] == ["old"]
    assert staged.publish() == [old_index]
    assert [h.doc_id for h in staged.dense_search(unit(5, 8), 1)] == ["new"]
    staged.close()
    # A store opened before the swap holds the old model's settings: it refuses rather than mix the two.
    with pytest.raises(IndexMismatchError, match="rebuilt with another model"):
        store.keyword_search("text", 10)
    reopened = ElasticsearchStore.open(connection, store.name)
    assert reopened.settings == with_layout_defaults(new_settings) and reopened.index != old_index
    assert reopened.stats().details["vector_index"] == "int8_hnsw"
    reopened.close()


def test_a_store_follows_a_rebuild_with_the_same_model_in_another_layout(
    connection: ElasticsearchConnection, store: ElasticsearchStore
) -> None:
    store.write([encoded("old", ["old text"], 1)])
    staged = ElasticsearchStore.stage(connection, store.name, settings(vector_index_type="int8_hnsw"))
    staged.write([encoded("new", ["new text"], 2)])
    staged.publish()
    staged.close()
    assert [h.doc_id for h in store.keyword_search("text", 10)] == ["new"]
    assert [h.doc_id for h in store.dense_search(unit(200), 1)] == ["new"]
    assert store.index == staged.index


def test_writers_creating_one_index_at_once_all_write_into_one(
    connection: ElasticsearchConnection, index_name: str
) -> None:
    """Partitions of a corpus starting together each find no index and create it: one creation wins, the others
    open that one, and no second index is left behind the alias."""
    writers = 3
    together = threading.Barrier(writers)

    class Simultaneous(ElasticsearchStore):
        """Creates only once every writer has found that the index does not exist."""

        def _create_index(self, settings: IndexSettings, alias: str | None) -> str | None:
            together.wait(timeout=60)
            return super()._create_index(settings, alias)

    with ThreadPoolExecutor(writers) as pool:
        stores = list(pool.map(lambda _: Simultaneous.create(connection, index_name, settings()), range(writers)))
    assert len({store.index for store in stores}) == 1
    for number, store in enumerate(stores):
        store.write([encoded(f"d{number}", ["text"], number)])
        store.close()
    with ElasticsearchStore.open(connection, index_name) as reopened:
        assert set(reopened.stored_documents()) == {"d0", "d1", "d2"}
        assert list(connection.client().indices.get(index=f"{index_name}-*")) == [reopened.index]


def test_layout_options_shape_a_new_index(connection: ElasticsearchConnection, index_name: str) -> None:
    layout = {"vector_index_type": "int8_hnsw", "shards": 2, "replicas": 0}
    with ElasticsearchStore.create(connection, index_name, settings(**layout)) as created:
        created.write([encoded(f"d{i}", [f"passage {i}"], i) for i in range(30)])
        client = connection.client()
        index_settings = client.indices.get_settings(index=created.index)[created.index]["settings"]["index"]
        assert (index_settings["number_of_shards"], index_settings["number_of_replicas"]) == ("2", "0")
        vector = client.indices.get_mapping(index=created.index)[created.index]["mappings"]["properties"]["vector"]
        assert vector["index_options"]["type"] == "int8_hnsw"
        # Quantised vectors still find a stored vector first, with a score close to the exact one.
        hits = created.dense_search(unit(700), k=3)
        assert hits[0].doc_id == "d7" and hits[0].score == pytest.approx(1.0, abs=0.01)
        assert {key: created.stats().details[key] for key in ("vector_index", "shards", "replicas")} == {
            "vector_index": "int8_hnsw", "shards": 2, "replicas": 0
        }
    with ElasticsearchStore.open(connection, index_name) as reopened:
        assert reopened.settings.backend_options == layout
    with pytest.raises(BackendError, match="vector_index_type must be one of hnsw, int8_hnsw, flat"):
        ElasticsearchStore.create(connection, f"{index_name}-x", settings(vector_index_type="pq"))


def test_an_interrupted_stage_is_resumed_and_one_with_other_settings_discarded(
    connection: ElasticsearchConnection, store: ElasticsearchStore
) -> None:
    store.write([encoded("old", ["old text"], 1)])
    client = connection.client()
    rebuilt = settings(fingerprint="n" * 16)
    first = ElasticsearchStore.stage(connection, store.name, rebuilt)
    first.write([encoded("new", ["new text"], 2)])
    first.close()  # killed before publishing: the alias still serves the old index
    assert [h.doc_id for h in store.keyword_search("text", 10)] == ["old"]

    again = ElasticsearchStore.stage(connection, store.name, rebuilt)
    assert again.resumed and again.index == first.index and set(again.stored_documents()) == {"new"}
    again.close()

    other = ElasticsearchStore.stage(connection, store.name, settings(fingerprint="o" * 16))
    assert not other.resumed and not client.indices.exists(index=first.index)
    other.write([encoded("other", ["other text"], 3)])
    assert other.publish() == [store.index]
    assert sorted(client.indices.get(index=f"{store.name}-*")) == [other.index]
    with pytest.raises(IndexMismatchError, match="rebuilt with another model"):
        store.keyword_search("text", 10)  # its vectors came from another model: refused, not mixed
    reopened = ElasticsearchStore.open(connection, store.name)
    assert [h.doc_id for h in reopened.keyword_search("text", 10)] == ["other"]
    reopened.close()
    other.close()


def test_a_first_index_can_be_staged_and_published(connection: ElasticsearchConnection, index_name: str) -> None:
    staged = ElasticsearchStore.stage(connection, index_name, settings())
    staged.write([encoded("a", ["alpha"], 1)])
    assert staged.publish() == []
    staged.close()
    with ElasticsearchStore.open(connection, index_name) as opened:
        assert opened.index == staged.index and set(opened.stored_documents()) == {"a"}


def test_a_missing_or_unusable_ca_certificate_is_one_clear_error(
    elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    https_url = elasticsearch_node.url.replace("http://", "https://")
    with pytest.raises(BackendError, match="CA certificate file .* does not exist"):
        ElasticsearchConnection(https_url, ca_certs=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(BackendError, match="only applies to https"):
        ElasticsearchConnection(elasticsearch_node.url, ca_certs=str(garbage))
    connection = ElasticsearchConnection(https_url, username="elastic", password="pw", ca_certs=str(garbage))
    with pytest.raises(BackendError, match=r"TLS failure .*CA certificate.*no certificate"):
        ElasticsearchStore.open(connection, "anything", max_retries=0)


def test_tls_to_a_plain_http_node_fails_clearly_and_quietly(elasticsearch_node: ElasticsearchNode) -> None:
    https_url = elasticsearch_node.url.replace("http://", "https://")
    for verify in (True, False):
        connection = ElasticsearchConnection(
            https_url, username="elastic", password=elasticsearch_node.password, verify_certs=verify
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(BackendError, match=f"TLS failure talking to Elasticsearch at {https_url}") as error:
                ElasticsearchStore.open(connection, "anything", max_retries=0)
        assert elasticsearch_node.password not in str(error.value)
        # Turning verification off is the user's explicit choice: no warning on every request.
        assert [str(w.message) for w in caught] == [], verify
