"""The indexing pipeline on a real Elasticsearch node: documents the cluster does not store are reported, never
silently lost, and the next run writes them; a caller handing documents over gets an error naming them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pytest

from bertsearch.errors import PartialWriteError
from bertsearch.indexer.pipeline import Indexer, open_index_for_writing
from bertsearch.indexer.progress import NullProgress
from bertsearch.stores import StoreLocation
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from bertsearch.types import Document

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = pytest.mark.elasticsearch


@pytest.fixture
def connection(elasticsearch_node: ElasticsearchNode) -> ElasticsearchConnection:
    return ElasticsearchConnection(
        elasticsearch_node.url, username=elasticsearch_node.username, password=elasticsearch_node.password
    )


@pytest.fixture
def location(connection: ElasticsearchConnection, tmp_path: Path) -> StoreLocation:
    return StoreLocation(tmp_path / "idx", "elasticsearch", connection, f"pipeline-{uuid.uuid4().hex[:12]}")


def records(tmp_path: Path, count: int) -> Path:
    corpus = tmp_path / "records.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"r{i}", "text": f"Record number {i}."}) + "\n" for i in range(count)))
    return corpus


def test_documents_refused_mid_run_are_reported_and_written_by_the_next_run(
    location: StoreLocation, connection: ElasticsearchConnection, tmp_path: Path
) -> None:
    corpus = records(tmp_path, 6)
    store, encoder, chunking = open_index_for_writing(location)
    client = connection.client()

    class BlockWritesAfterFirstBatch(NullProgress):
        """An administrator blocks writes to the index once the first batch is in."""

        def advance(self, documents: int = 0, passages: int = 0) -> None:
            if documents:  # documents count once written; passages already once encoded
                client.indices.put_settings(index=store.index, settings={"index.blocks.write": True})

    with store:
        summary = Indexer(store, encoder, chunking, BlockWritesAfterFirstBatch(), batch_passages=2).index([corpus])
        assert (summary.documents_added, summary.documents_failed) == (2, 4)
        assert [entry["doc_id"] for entry in summary.failed] == ["r2", "r3", "r4", "r5"]
        assert all("cluster_block_exception" in entry["reason"] for entry in summary.failed)
        assert set(store.stored_documents()) == {"r0", "r1"}

        client.indices.put_settings(index=store.index, settings={"index.blocks.write": False})
        retried = Indexer(store, encoder, chunking, batch_passages=2).index([corpus])
        assert (retried.documents_added, retried.documents_unchanged, retried.documents_failed) == (4, 2, 0)


class ConcurrentlyDeleted(ElasticsearchStore):
    """The real store, while another client deletes a passage of `r1` the moment a write is acknowledged."""

    def write(self, batch: Sequence[EncodedDocument]) -> None:
        super().write(batch)
        if any(item.document.doc_id == "r1" for item in batch):
            self._client.delete(index=self.index, id="r1#0", refresh=True)


def test_passages_lost_after_an_acknowledged_write_are_found_by_the_count_check(
    location: StoreLocation, connection: ElasticsearchConnection, tmp_path: Path
) -> None:
    corpus = records(tmp_path, 3)
    store, encoder, chunking = open_index_for_writing(location)
    store.close()
    with ConcurrentlyDeleted.open(connection, location.es_index) as racing:
        summary = Indexer(racing, encoder, chunking).index([corpus])
    assert (summary.documents_added, summary.documents_failed) == (2, 1)
    assert summary.failed == [{"doc_id": "r1", "reason": "the store acknowledged it but holds 0 of its 1 passages"}]
    with ElasticsearchStore.open(connection, location.es_index) as store:
        # Forgotten rather than left half-stored, so the next run sees it as new and writes it whole.
        assert set(store.stored_documents()) == {"r0", "r2"}
        retried = Indexer(store, encoder, chunking).index([corpus])
        assert (retried.documents_added, retried.documents_unchanged) == (1, 2)
        assert store.passage_counts(["r0", "r1", "r2"]) == {"r0": 1, "r1": 1, "r2": 1}


def test_documents_given_by_a_caller_that_the_cluster_refuses_raise_naming_them(location: StoreLocation) -> None:
    store, encoder, chunking = open_index_for_writing(location)
    documents = [Document("kept", "Jupiter is the largest planet."),
                 Document("refused", "Tomatoes need sun.", metadata={"score": float("nan")})]
    with store:
        with pytest.raises(PartialWriteError, match="1 document.*'refused'.*NaN") as caught:
            Indexer(store, encoder, chunking).index_documents(documents)
        assert list(caught.value.failures) == ["refused"]
        assert set(store.stored_documents()) == {"kept"}
