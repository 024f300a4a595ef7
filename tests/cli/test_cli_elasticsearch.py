"""End-to-end: the real `bertsearch` command on a real Elasticsearch node, its one-line errors, and its secrecy.

Every run gets the node's credentials as tests.cli.es passes them: no URL unless a test passes one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import ApiError

from bertsearch.search import MODES
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from tests.cli.es import credentials, fails_with, ok_json, run
from tests.helpers import OFFLINE_ENV, bertsearch_command, run_bertsearch, write_scifact_slice

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed on return, so nothing listens there


@dataclass(frozen=True)
class Indexed:
    corpus: Path
    index_dir: Path
    es_index: str
    summary: dict


@pytest.fixture(scope="module")
def indexed(elasticsearch_node: ElasticsearchNode, tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """A small folder indexed into Elasticsearch, the URL given by environment as users would."""
    folder = tmp_path_factory.mktemp("es-cli")
    corpus = folder / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "notes" / "astronomy.txt").write_text("Jupiter is the largest planet in the solar system.\n")
    (corpus / "notes" / "gardening.md").write_text("# Gardening\n\nTomatoes need sun and regular watering.\n")
    (corpus / "page.html").write_text(
        "<html><head><title>Bread</title></head><body><p>Sourdough bread rises with wild yeast.</p></body></html>"
    )
    (corpus / "scratch.txt").write_text("A violin has four strings.\n")  # changed and removed by the update test
    (corpus / "empty.txt").write_text("")
    es_index = f"cli-{uuid.uuid4().hex[:12]}"
    summary = ok_json(
        elasticsearch_node, "index", corpus, "--index-dir", folder / "idx", "--backend", "elasticsearch",
        "--es-index", es_index, env={"BERTSEARCH_ES_URL": elasticsearch_node.url},
    )
    return Indexed(corpus, folder / "idx", es_index, summary)


def test_index_prints_a_summary_and_records_where_the_index_is(
    indexed: Indexed, elasticsearch_node: ElasticsearchNode
) -> None:
    summary = indexed.summary
    assert (summary["documents_added"], summary["documents_skipped"], summary["passages_encoded"]) == (4, 1, 4)
    assert summary["skipped"][0]["path"].endswith("empty.txt")
    manifest = json.loads((indexed.index_dir / "manifest.json").read_text())
    assert manifest["backend"] == "elasticsearch"
    assert manifest["backend_options"] == {"url": elasticsearch_node.url, "index": indexed.es_index}
    files = [path for path in indexed.index_dir.rglob("*") if path.is_file()]
    assert files and not any(elasticsearch_node.password.encode() in path.read_bytes() for path in files)


def test_reindexing_with_only_the_index_dir_encodes_nothing(
    indexed: Indexed, elasticsearch_node: ElasticsearchNode
) -> None:
    again = ok_json(elasticsearch_node, "index", indexed.corpus, "--index-dir", indexed.index_dir)
    assert again["passages_encoded"] == again["documents_added"] == again["documents_updated"] == 0
    assert again["documents_unchanged"] == again["documents_seen"] >= 3


def test_every_mode_queries_the_index_the_folder_names(indexed: Indexed, elasticsearch_node: ElasticsearchNode) -> None:
    for mode in MODES:
        result = ok_json(
            elasticsearch_node, "query", "which planet is the largest", "--index-dir", indexed.index_dir,
            "--mode", mode, "-k", "2",
        )
        hits = result["hits"]
        # BM25 finds only the one document with these words; the vector retrievers rank every document.
        assert len(hits) == (1 if mode == "bm25" else 2) and len({h["doc_id"] for h in hits}) == len(hits), mode
        assert hits[0]["doc_id"] == "notes/astronomy.txt" and "Jupiter" in hits[0]["passage"], mode
        assert hits[0]["source"] == str(indexed.corpus / "notes" / "astronomy.txt")


def test_update_and_prune_follow_the_files(indexed: Indexed, elasticsearch_node: ElasticsearchNode) -> None:
    node, scratch = elasticsearch_node, indexed.corpus / "scratch.txt"
    scratch.write_text("A cello has four strings and a deep voice.\n")
    updated = ok_json(node, "index", indexed.corpus, "--index-dir", indexed.index_dir)
    assert (updated["documents_updated"], updated["passages_encoded"]) == (1, 1)
    hits = ok_json(node, "query", "cello", "--index-dir", indexed.index_dir, "--mode", "bm25")["hits"]
    assert [h["doc_id"] for h in hits] == ["scratch.txt"] and "cello" in hits[0]["passage"]

    scratch.unlink()
    pruned = ok_json(node, "index", indexed.corpus, "--index-dir", indexed.index_dir, "--prune")
    assert (pruned["documents_removed"], pruned["passages_encoded"]) == (1, 0)
    assert ok_json(node, "query", "cello", "--index-dir", indexed.index_dir, "--mode", "bm25")["hits"] == []


def test_eval_indexes_the_dataset_into_elasticsearch(
    elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    dataset = write_scifact_slice(tmp_path / "scifact", queries=5, documents=30)
    results = ok_json(
        elasticsearch_node, "eval", dataset, "--backend", "elasticsearch", "--index-dir", tmp_path / "idx",
        env={"BERTSEARCH_ES_URL": elasticsearch_node.url},
    )
    assert set(results) == set(MODES)
    assert all(metrics["nDCG@10"] > 0.5 for metrics in results.values())
    # Fewer documents than R@100's depth: the dense ranking holds every relevant one.
    assert results["dense"]["R@100"] == 1.0
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["backend_options"]["index"] == "bertsearch-eval-scifact"


def test_bad_credentials_fail_with_one_line_that_names_no_password(
    indexed: Indexed, elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    query = ("query", "planet", "--mode", "bm25")
    line = fails_with(
        elasticsearch_node, "rejected the credentials (401)", *query, "--index-dir", indexed.index_dir,
        env={"BERTSEARCH_ES_PASSWORD": wrong},
    )
    assert wrong not in line
    in_url = elasticsearch_node.url.replace("http://", f"http://elastic:{wrong}@")
    line = fails_with(
        elasticsearch_node, "rejected the credentials (401)", *query, "--index-dir", tmp_path / "idx",
        "--backend", "elasticsearch", "--es-url", in_url, "--es-index", indexed.es_index,
        env={"BERTSEARCH_ES_USERNAME": "", "BERTSEARCH_ES_PASSWORD": ""},
    )
    assert wrong not in line and elasticsearch_node.url in line


def test_an_unreachable_cluster_fails_with_one_line(elasticsearch_node: ElasticsearchNode, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    fails_with(
        elasticsearch_node, f"cannot reach Elasticsearch at {url}", "query", "planet", "--mode", "bm25",
        "--index-dir", tmp_path / "idx", "--backend", "elasticsearch", "--es-url", url,
    )


def test_a_missing_elasticsearch_index_fails_with_one_line(
    elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    fails_with(
        elasticsearch_node, f"no Elasticsearch index {missing!r}", "query", "planet", "--mode", "bm25",
        "--index-dir", tmp_path / "idx", "--backend", "elasticsearch", "--es-url", elasticsearch_node.url,
        "--es-index", missing,
    )
    assert not (tmp_path / "idx").exists(), "a failed query must not leave an index folder behind"


def test_tls_to_a_plain_http_node_fails_with_one_line(elasticsearch_node: ElasticsearchNode, tmp_path: Path) -> None:
    https_url = elasticsearch_node.url.replace("http://", "https://")
    # --es-no-verify is the user's choice: no insecure-connection warnings around the error either.
    fails_with(
        elasticsearch_node, f"TLS failure talking to Elasticsearch at {https_url}", "query", "planet", "--mode",
        "bm25", "--index-dir", tmp_path / "idx", "--backend", "elasticsearch", "--es-url", https_url, "--es-no-verify",
    )
    fails_with(
        elasticsearch_node, "does not exist", "query", "planet", "--mode", "bm25", "--index-dir", tmp_path / "idx",
        "--backend", "elasticsearch", "--es-url", https_url, "--es-ca-certs", tmp_path / "missing.pem",
    )


def test_elasticsearch_only_options_are_refused_elsewhere(
    indexed: Indexed, elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    fails_with(elasticsearch_node, "need the elasticsearch backend (--es-vector-index, --es-shards, --es-replicas, "
               "--backend elasticsearch)", "index", indexed.corpus, "--index-dir",
               tmp_path / "embedded", "--es-shards", "2")
    fails_with(elasticsearch_node, "a rebuild needs the elasticsearch backend", "index", indexed.corpus,
               "--index-dir", tmp_path / "embedded", "--rebuild")
    # An existing index keeps its layout; another one takes a rebuild. Refused before any model is loaded.
    fails_with(elasticsearch_node, "built with vector_index_type hnsw, not vector_index_type int8_hnsw: add --rebuild",
               "index", indexed.corpus, "--index-dir", indexed.index_dir, "--es-vector-index", "int8_hnsw")
    assert not (tmp_path / "embedded").exists()


def test_a_document_the_cluster_rejects_is_reported_then_retried(
    elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    """Lucene refuses a term over 32,766 bytes, which a metadata key of 40,000 characters makes in the flattened
    `metadata` field: one document of the file fails, the others are written, and the run says so and exits
    non-zero."""
    node, corpus, es_index = elasticsearch_node, tmp_path / "records.jsonl", f"cli-{uuid.uuid4().hex[:12]}"
    immense = "k" * 40_000
    records = ['{"_id": "jupiter", "text": "Jupiter is the largest planet."}',
               f'{{"_id": "tomato", "text": "Tomatoes need sun.", "{immense}": "x"}}',
               '{"_id": "bread", "text": "Sourdough bread rises with wild yeast."}']
    corpus.write_text("\n".join(records) + "\n")
    args = ("index", corpus, "--index-dir", tmp_path / "idx", "--backend", "elasticsearch", "--es-index", es_index,
            "--es-url", node.url)
    result = run(node, *args, "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert (summary["documents_added"], summary["documents_failed"]) == (2, 1)
    assert summary["failed"][0]["doc_id"] == "tomato" and "immense field" in summary["failed"][0]["reason"]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: 1 document(s) not stored, first 'tomato'") and "re-run to retry" in line
    connection = ElasticsearchConnection(node.url, username=node.username, password=node.password)
    with ElasticsearchStore.open(connection, es_index) as store:
        assert set(store.stored_documents()) == {"jupiter", "bread"}

    corpus.write_text(corpus.read_text().replace(immense, "short"))
    retried = ok_json(node, *args)
    assert (retried["documents_added"], retried["documents_unchanged"], retried["documents_failed"]) == (1, 2, 0)


REBUILD_DOCUMENTS = 40
# Enough staged documents to prove the build was under way, few enough to be reached long before it ends.
STAGED_BEFORE_KILL = 5


def test_rebuild_swaps_in_the_new_index_only_when_complete_and_resumes_after_a_kill(
    elasticsearch_node: ElasticsearchNode, tmp_path: Path
) -> None:
    node, corpus, index_dir = elasticsearch_node, tmp_path / "corpus", tmp_path / "idx"
    corpus.mkdir()
    (corpus / "astronomy.txt").write_text("Jupiter is the largest planet in the solar system.\n")
    for i in range(1, REBUILD_DOCUMENTS):
        (corpus / f"minutes-{i:02d}.txt").write_text(f"Minutes of meeting {i}: the committee reviewed budget line {i}.\n")
    es_index = f"rebuild-{uuid.uuid4().hex[:12]}"
    ok_json(node, "index", corpus, "--index-dir", index_dir, "--backend", "elasticsearch", "--es-index", es_index,
            "--es-url", node.url)
    connection = ElasticsearchConnection(node.url, username=node.username, password=node.password)
    client = connection.client()
    with ElasticsearchStore.open(connection, es_index) as live:
        old_index, old_settings = live.index, live.settings

    def staged_documents() -> int:
        staged = [index for index in client.indices.get(index=f"{es_index}-*") if index != old_index]
        try:
            return sum(client.count(index=index, query={"term": {"kind": "document"}})["count"] for index in staged)
        except ApiError as exc:  # 503 while a just-created index's shards start
            assert exc.meta.status == 503, exc
            return 0

    def assert_old_index_serves() -> None:
        with ElasticsearchStore.open(connection, es_index) as live:
            assert (live.index, live.settings) == (old_index, old_settings)
            assert live.stats().documents == REBUILD_DOCUMENTS
            assert [hit.doc_id for hit in live.keyword_search("Jupiter", 1)] == ["astronomy.txt"]

    rebuild = ("index", corpus, "--index-dir", index_dir, "--rebuild", "--chunk-tokens", "128",
               "--es-vector-index", "int8_hnsw", "--es-shards", "2", "--es-replicas", "0")
    # One document per batch keeps the build slow enough to watch, and to kill half-way.
    process = subprocess.Popen(bertsearch_command(*rebuild, "--batch-passages", "1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, **OFFLINE_ENV, **credentials(node)})
    try:
        staged = 0
        while process.poll() is None and staged < STAGED_BEFORE_KILL:
            assert_old_index_serves()
            staged = staged_documents()
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert STAGED_BEFORE_KILL <= staged_documents() < REBUILD_DOCUMENTS, "the build was not caught half-way"
    assert_old_index_serves()

    resumed = ok_json(node, *rebuild)
    assert resumed["rebuilt"] and resumed["documents_unchanged"] >= STAGED_BEFORE_KILL
    assert resumed["documents_unchanged"] + resumed["documents_added"] == REBUILD_DOCUMENTS
    with ElasticsearchStore.open(connection, es_index) as live:
        assert live.index != old_index and live.stats().documents == REBUILD_DOCUMENTS
        assert live.settings.chunking.max_tokens == 128
        assert live.settings.backend_options == {"vector_index_type": "int8_hnsw", "shards": 2, "replicas": 0}
        # The old index is deleted with the swap, and no half-built one is left behind.
        assert list(client.indices.get(index=f"{es_index}-*")) == [live.index]
    assert json.loads((index_dir / "manifest.json").read_text())["chunking"]["max_tokens"] == 128
    hits = ok_json(node, "query", "which planet is the largest", "--index-dir", index_dir, "--mode", "dense")["hits"]
    assert hits[0]["doc_id"] == "astronomy.txt"


def test_non_utf8_file_names_and_nan_records_on_elasticsearch(elasticsearch_node: ElasticsearchNode,
                                                              tmp_path: Path) -> None:
    """Cases 2 and 10 on this store: a name that is not UTF-8 is stored with its bytes escaped, found, kept by
    re-indexing and pruned; a record with NaN is a counted skip, as on the embedded store."""
    node, corpus, index_dir = elasticsearch_node, tmp_path / "corpus", tmp_path / "idx"
    corpus.mkdir()
    latin = Path(os.fsdecode(bytes(corpus) + b"/latin\xe9name.txt"))
    latin.write_text("Octopuses open jars with their arms.\n")
    (corpus / "records.jsonl").write_text('{"_id": "nan", "text": "Not a number.", "score": NaN}\n'
                                          '{"_id": "fine", "text": "Squids change colour.", "score": 0.5}\n')
    first = ok_json(node, "index", corpus, "--index-dir", index_dir, "--backend", "elasticsearch", "--es-index",
                    f"names-{uuid.uuid4().hex[:10]}", "--es-url", node.url)
    assert (first["documents_added"], first["documents_failed"], first["documents_skipped"]) == (2, 0, 1)
    assert first["skipped"][0]["reason"] == "line 1: record field 'score' is nan, a number JSON cannot hold"
    (hit,) = ok_json(node, "query", "octopus jars", "--index-dir", index_dir, "--mode", "bm25")["hits"]
    assert (hit["doc_id"], hit["source"]) == (r"latin\xe9name.txt", rf"{corpus}/latin\xe9name.txt")
    assert ok_json(node, "index", corpus, "--index-dir", index_dir)["documents_unchanged"] == 2
    latin.unlink()
    assert ok_json(node, "index", corpus, "--index-dir", index_dir, "--prune")["documents_removed"] == 1
    assert ok_json(node, "query", "octopus jars", "--index-dir", index_dir, "--mode", "bm25")["hits"] == []


def test_secrets_from_files_reach_the_cluster(indexed: Indexed, elasticsearch_node: ElasticsearchNode,
                                              tmp_path: Path) -> None:
    """Case 11: --es-password-file instead of a password on the command line, which other users can read."""
    password = tmp_path / "password"
    password.write_text(elasticsearch_node.password + "\n")
    result = run_bertsearch("query", "which planet is the largest", "--index-dir", indexed.index_dir, "--mode",
                            "bm25", "--json", "--es-password-file", password,
                            env={**credentials(elasticsearch_node), "BERTSEARCH_ES_PASSWORD": ""})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(result.stdout)["hits"][0]["doc_id"] == "notes/astronomy.txt"
