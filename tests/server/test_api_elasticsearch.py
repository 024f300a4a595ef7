"""The API on the Elasticsearch backend: a real `bertsearch serve` over an index on a real node."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from tests.helpers import ok_json, write_scifact_slice
from tests.server.conftest import RunningServer, start_server, stop_server

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]


@pytest.fixture(scope="module")
def es_server(elasticsearch_node: ElasticsearchNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """40 SciFact abstracts indexed into Elasticsearch, served by `bertsearch serve --index-dir` alone: the folder
    records the cluster and index, the environment carries the credentials."""
    dataset = write_scifact_slice(tmp_path_factory.mktemp("es-server-scifact"), queries=5, documents=40)
    index_dir = tmp_path_factory.mktemp("es-server") / "idx"
    env = {"BERTSEARCH_ES_USERNAME": elasticsearch_node.username, "BERTSEARCH_ES_PASSWORD": elasticsearch_node.password}
    ok_json("index", dataset / "corpus.jsonl", "--index-dir", index_dir, "--backend", "elasticsearch",
            "--es-url", elasticsearch_node.url, "--es-index", f"server-{uuid.uuid4().hex[:10]}", env=env,
            secret=elasticsearch_node.password)
    server = start_server(index_dir, env=env)
    yield server
    stop_server(server)
    assert elasticsearch_node.password not in Path(server.log).read_text()


def test_search_and_writes_go_through_elasticsearch(es_server: RunningServer) -> None:
    ready = es_server.request("GET", "/api/ready")
    assert ready.status == 200 and ready.body["backend"] == "elasticsearch" and ready.body["documents"] == 40

    found = es_server.search("mitochondria in muscle cells", k=3, mode="hybrid")
    assert found.status == 200 and len(found.body["hits"]) == 3

    document = {"title": "Glacier retreat", "text": "Alpine glaciers lost a third of their ice mass since 1980."}
    written = es_server.request("PUT", "/api/documents/glaciers", document)
    assert written.status == 200 and written.body["durable"] is True, written.body
    for mode in ("dense", "bm25", "hybrid"):
        hits = es_server.search("how much ice have alpine glaciers lost", k=1, mode=mode).body["hits"]
        assert hits[0]["doc_id"] == "glaciers", mode
    assert es_server.request("GET", "/api/documents/glaciers").body["text"] == document["text"]

    assert es_server.request("DELETE", "/api/documents/glaciers").status == 200
    assert es_server.request("GET", "/api/documents/glaciers").status == 404
    hits = es_server.search("alpine glaciers ice mass", k=5, mode="bm25").body["hits"]
    assert "glaciers" not in {hit["doc_id"] for hit in hits}


def test_bodies_elasticsearch_could_not_hold_are_422_here_too(es_server: RunningServer) -> None:
    """Cases 8 and 10 on this store: refused by the API before they reach it, never half-written."""
    for raw in (b'{"text": "t", "metadata": {"\\ud800": "x"}}', b'{"text": "t", "metadata": {"score": NaN}}'):
        answer = es_server.request("PUT", "/api/documents/refused", raw=raw)
        assert answer.status == 422 and answer.body["error"].startswith("metadata"), answer.body
    assert es_server.request("GET", "/api/documents/refused").status == 404
    kept = {"tenth": 0.1, "count": 2**53 + 1, "none": None}
    assert es_server.request("PUT", "/api/documents/exact", {"text": "t", "metadata": kept}).status == 200
    assert es_server.request("GET", "/api/documents/exact").body["metadata"] == kept
    es_server.request("DELETE", "/api/documents/exact")
