"""End-to-end: the real `bertsearch` command on a SciFact slice and on a folder of files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import bertsearch_command, fails_with, ok_json, run_bertsearch, write_scifact_slice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("scifact"))


@pytest.fixture(scope="module")
def slice_index(scifact_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    index_dir = tmp_path_factory.mktemp("index") / "idx"
    summary = ok_json("index", scifact_slice / "corpus.jsonl", "--index-dir", index_dir)
    return index_dir, summary


def test_index_summary_counts_every_document(slice_index: tuple[Path, dict], scifact_slice: Path) -> None:
    _, summary = slice_index
    records = len((scifact_slice / "corpus.jsonl").read_text().splitlines())
    assert summary["documents_seen"] == summary["documents_added"] == records
    assert summary["documents_updated"] == summary["documents_removed"] == summary["documents_skipped"] == 0
    assert summary["passages_encoded"] >= records
    assert summary["seconds"] > 0


def test_reindexing_an_unchanged_corpus_encodes_nothing(slice_index: tuple[Path, dict], scifact_slice: Path) -> None:
    index_dir, first = slice_index
    second = ok_json("index", scifact_slice / "corpus.jsonl", "--index-dir", index_dir)
    assert second["passages_encoded"] == 0
    assert second["documents_unchanged"] == first["documents_seen"]
    assert second["documents_added"] == second["documents_updated"] == 0


def test_query_returns_ranked_documents_with_passages(slice_index: tuple[Path, dict], scifact_slice: Path) -> None:
    index_dir, _ = slice_index
    records = [json.loads(line) for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()]
    target = records[len(records) // 2]
    for mode in ("dense", "bm25", "hybrid"):
        # A document's own title, asked as a question, must bring that document first in every mode.
        result = ok_json("query", target["title"], "--index-dir", index_dir, "-k", "5", "--mode", mode)
        hits = result["hits"]
        assert len(hits) == 5
        assert len({h["doc_id"] for h in hits}) == 5
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        assert all(h["passage"] and "title" in h and "scores" in h for h in hits)
        assert hits[0]["doc_id"] == target["_id"], mode
        assert hits[0]["title"] == target["title"]
        assert hits[0]["passage"] in target["text"]


def test_human_output_shows_title_and_snippet(slice_index: tuple[Path, dict]) -> None:
    index_dir, _ = slice_index
    result = run_bertsearch("query", "vitamin D deficiency", "--index-dir", index_dir, "-k", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(" 1. ")
    assert "score" in result.stdout and "vitamin" in result.stdout.lower()


def test_eval_reports_ir_measures_for_each_pipeline(slice_index: tuple[Path, dict], scifact_slice: Path) -> None:
    index_dir, _ = slice_index
    results = ok_json("eval", scifact_slice, "--index-dir", index_dir)
    assert set(results) == {"bm25", "dense", "hybrid"}
    for metrics in results.values():
        assert {"nDCG@10", "RR@10", "R@100", "latency_p50_ms", "latency_p95_ms"} <= set(metrics)
    # Real retrieval quality on the slice (300 documents, 40 test queries).
    assert results["bm25"]["nDCG@10"] > 0.7
    assert results["dense"]["nDCG@10"] > 0.7
    assert results["hybrid"]["nDCG@10"] >= max(results["bm25"]["nDCG@10"], results["dense"]["nDCG@10"]) - 0.03
    assert results["hybrid"]["R@100"] > 0.95


def write_files(folder: Path) -> None:
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "gardening.md").write_text("# Gardening\n\nTomatoes need sun and regular watering.\n")
    (folder / "notes" / "astronomy.txt").write_text("Jupiter is the largest planet in the solar system.\n")
    (folder / "page.html").write_text(
        "<html><head><title>Bread</title><script>var x = 1;</script></head>"
        "<body><h1>Bread</h1><p>Sourdough bread rises with wild yeast.</p></body></html>"
    )
    (folder / "empty.txt").write_text("")


def test_update_and_prune_follow_the_files(tmp_path: Path) -> None:
    corpus, index_dir = tmp_path / "corpus", tmp_path / "idx"
    write_files(corpus)
    first = ok_json("index", corpus, "--index-dir", index_dir)
    assert (first["documents_added"], first["documents_skipped"]) == (3, 1)
    assert first["skipped"][0]["path"].endswith("empty.txt")

    (corpus / "notes" / "astronomy.txt").write_text("Saturn has the most visible rings of any planet.\n")
    second = ok_json("index", corpus, "--index-dir", index_dir)
    assert (second["documents_updated"], second["documents_unchanged"], second["passages_encoded"]) == (1, 2, 1)
    top = ok_json("query", "which planet has rings", "--index-dir", index_dir, "-k", "1")["hits"][0]
    assert top["doc_id"] == "notes/astronomy.txt" and "Saturn" in top["passage"]

    (corpus / "page.html").unlink()
    kept = ok_json("index", corpus, "--index-dir", index_dir)
    assert kept["documents_removed"] == 0, "without --prune nothing is removed"
    pruned = ok_json("index", corpus, "--index-dir", index_dir, "--prune")
    assert pruned["documents_removed"] == 1 and pruned["passages_encoded"] == 0
    hits = ok_json("query", "sourdough bread yeast", "--index-dir", index_dir, "--mode", "bm25")["hits"]
    assert "page.html" not in {h["doc_id"] for h in hits}


def index_contents(index_dir: Path) -> tuple[list[tuple], np.ndarray]:
    with sqlite3.connect(index_dir / "store.sqlite3") as db:
        rows = db.execute("SELECT doc_id, position, title, text, vector FROM passages ORDER BY doc_id, position").fetchall()
        docs = db.execute("SELECT doc_id, content_hash FROM documents ORDER BY doc_id").fetchall()
    vectors = np.stack([np.frombuffer(r[4], dtype=np.float32) for r in rows])
    return [r[:4] for r in rows] + docs, vectors


def test_kill_9_mid_index_then_resume_matches_a_clean_run(scifact_slice: Path, slice_index: tuple[Path, dict],
                                                         tmp_path: Path) -> None:
    clean_dir, _ = slice_index
    index_dir = tmp_path / "killed"
    corpus = scifact_slice / "corpus.jsonl"
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(bertsearch_command("index", corpus, "--index-dir", index_dir, "--batch-passages", "32"),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(index_dir / "store.sqlite3", timeout=1) as db:
                committed = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        except sqlite3.Error:
            continue
        if committed >= 64:
            break
    assert process.poll() is None, "indexing finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert committed >= 64

    resumed = ok_json("index", corpus, "--index-dir", index_dir)
    assert resumed["documents_unchanged"] >= committed
    assert resumed["documents_added"] + resumed["documents_unchanged"] == resumed["documents_seen"]

    killed_rows, killed_vectors = index_contents(index_dir)
    clean_rows, clean_vectors = index_contents(clean_dir)
    assert killed_rows == clean_rows, "passages differ from an uninterrupted run"
    cosine = (killed_vectors * clean_vectors).sum(axis=1)
    assert cosine.min() > 0.999
    query = "vitamin D and bone density"
    for mode in ("dense", "bm25", "hybrid"):
        killed = [h["doc_id"] for h in ok_json("query", query, "--index-dir", index_dir, "--mode", mode)["hits"]]
        clean = [h["doc_id"] for h in ok_json("query", query, "--index-dir", clean_dir, "--mode", mode)["hits"]]
        assert killed[:5] == clean[:5]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    write_files(folder / "corpus")
    ok_json("index", folder / "corpus", "--index-dir", folder / "idx")
    return folder / "idx"


def test_bad_query_inputs_fail_with_one_line(small_index: Path, tmp_path: Path) -> None:
    fails_with("query is empty", "query", "   ", "--index-dir", small_index)
    fails_with("unknown mode 'fuzzy'", "query", "planets", "--index-dir", small_index, "--mode", "fuzzy")
    fails_with("k must be between", "query", "planets", "--index-dir", small_index, "-k", "0")
    fails_with("no index at", "query", "planets", "--index-dir", tmp_path / "nowhere")
    # bytes that are not UTF-8 reach Python as lone surrogates, which no tokenizer or store takes
    fails_with("not valid UTF-8", "query", os.fsdecode(b"caf\xe9 au lait"), "--index-dir", small_index)


def test_bad_index_inputs_fail_with_one_line(small_index: Path, tmp_path: Path) -> None:
    fails_with("no such file or folder", "index", tmp_path / "missing-folder", "--index-dir", tmp_path / "idx")
    fails_with("model folder not found", "index", tmp_path, "--index-dir", tmp_path / "idx2", "--model", tmp_path / "no-model")
    fails_with("chunking", "index", tmp_path, "--index-dir", small_index, "--chunk-tokens", "128")
    fails_with("Missing argument", "index")


def test_an_index_refuses_another_model(small_index: Path, tmp_path: Path) -> None:
    from bertsearch.models.loading import default_model_path

    other = tmp_path / "other-model"
    shutil.copytree(default_model_path(), other)
    config = json.loads((other / "config.json").read_text())
    config["bertsearch_test_marker"] = True  # same architecture, different fingerprint
    (other / "config.json").write_text(json.dumps(config))
    fails_with("built with another model", "index", tmp_path, "--index-dir", small_index, "--model", other)


def test_bad_eval_inputs_fail_with_one_line(tmp_path: Path, scifact_slice: Path) -> None:
    fails_with("dataset folder not found", "eval", tmp_path / "none")
    fails_with("no qrels for split 'dev'", "eval", scifact_slice, "--split", "dev")
    fails_with("unknown pipeline", "eval", scifact_slice, "--pipelines", "magic")


def test_failed_run_keeps_what_was_indexed(small_index: Path, tmp_path: Path) -> None:
    before = ok_json("query", "planet", "--index-dir", small_index, "--mode", "bm25")["hits"]
    fails_with("no such file or folder", "index", tmp_path / "missing", "--index-dir", small_index)
    after = ok_json("query", "planet", "--index-dir", small_index, "--mode", "bm25")["hits"]
    assert before == after and before
