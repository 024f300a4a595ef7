"""End-to-end: the real `bertsearch` command on a real Elasticsearch node, its one-line errors, and its secrecy.

Every run gets the node's username and password from the environment (as users are told to pass them) and
no URL unless a test passes one, so commands given only `--index-dir` prove the folder's manifest says where
the index is.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bertsearch.search import MODES
from tests.helpers import run_bertsearch, write_scifact_slice

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]


def run(node: ElasticsearchNode, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI with the node's credentials in the environment; whatever happens, it never prints the password."""
    credentials = {
        "BERTSEARCH_ES_URL": "",
        "BERTSEARCH_ES_INDEX": "",
        "BERTSEARCH_ES_API_KEY": "",
        "BERTSEARCH_ES_USERNAME": node.username,
        "BERTSEARCH_ES_PASSWORD": node.password,
    }
    result = run_bertsearch(*args, env={**credentials, **(env or {})})
    assert node.password not in result.stdout + result.stderr
    return result


def ok_json(node: ElasticsearchNode, *args: str | Path, env: dict[str, str] | None = None) -> dict:
    result = run(node, *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fails_with(node: ElasticsearchNode, expected: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    """A non-zero exit and one line on stderr saying what is wrong, without a traceback; returns that line."""
    result = run(node, *args, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    return lines[0]


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
