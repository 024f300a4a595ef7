"""End-to-end: `bertsearch train-reranker`, `reranker use` and reranked queries through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertsearch.rerank import METADATA_NAME
from tests.helpers import fails_with, imported_by, ok_json, run_bertsearch, write_scifact_slice

TINY_TRAINING = ("--max-steps", "4", "--max-length", "64", "--negatives", "3", "--groups-per-step", "2",
                 "--validation-queries", "2")
QUERY = "Vitamin D deficiency is associated with cardiovascular disease"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("scifact"), queries=12, documents=60)


@pytest.fixture(scope="module")
def index_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("index") / "idx"
    ok_json("index", dataset / "corpus.jsonl", "--index-dir", folder)
    return folder


@pytest.fixture(scope="module")
def reranker(dataset: Path, index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("reranker") / "model"
    metadata = ok_json("train-reranker", "--index-dir", index_dir, "--queries", dataset / "queries.jsonl",
                       "--qrels", dataset / "qrels" / "test.tsv", "--output", output, *TINY_TRAINING)
    assert metadata["check"]["queries"] == 2 and metadata["max_length"] == 64
    return output


def test_training_writes_a_model_folder_with_its_check(reranker: Path) -> None:
    metadata = json.loads((reranker / METADATA_NAME).read_text())
    assert metadata["data_source"].startswith("qrels:") and len(metadata["data_hash"]) == 16
    assert {"first_stage", "rerank_only", "blend", "blend_weight"} <= metadata["check"].keys()
    assert not [p for p in reranker.parent.iterdir() if p.name.startswith(".")]


def test_reranking_reorders_hits_and_shows_both_scores(index_dir: Path, reranker: Path) -> None:
    plain = ok_json("query", QUERY, "--index-dir", index_dir, "-k", "10")
    reranked = ok_json("query", QUERY, "--index-dir", index_dir, "-k", "10", "--reranker", reranker, "--force",
                       "--rerank-depth", "10")
    plain_ids = [h["doc_id"] for h in plain["hits"]]
    reranked_ids = [h["doc_id"] for h in reranked["hits"]]
    assert sorted(plain_ids) == sorted(reranked_ids) and plain_ids != reranked_ids
    assert all({"rerank", "fused", "first_stage"} <= hit["scores"].keys() for hit in reranked["hits"])
    assert "rerank" in reranked["timings_ms"]
    # The cross-encoder runs on its ONNX form (written by train-reranker): no torch, the order torch gives in fp32.
    lean, heavy = imported_by("query", QUERY, "--index-dir", str(index_dir), "-k", "10", "--reranker", str(reranker),
                              "--force", "--rerank-depth", "10", "--json")
    assert lean.returncode == 0 and "torch" not in heavy and "onnxruntime" in heavy, (heavy, lean.stderr)
    on_torch = ok_json("query", QUERY, "--index-dir", index_dir, "-k", "10", "--reranker", reranker, "--force",
                       "--rerank-depth", "10", env={"BERTSEARCH_ENGINE": "torch", "BERTSEARCH_PRECISION": "fp32"})
    lean_hits = json.loads(lean.stdout)["hits"]
    assert [h["doc_id"] for h in lean_hits] == [h["doc_id"] for h in on_torch["hits"]]
    assert all(abs(a["scores"]["rerank"] - b["scores"]["rerank"]) < 1e-3 for a, b in zip(lean_hits, on_torch["hits"]))


def test_reranker_use_records_it_in_the_index(index_dir: Path, reranker: Path, dataset: Path) -> None:
    result = run_bertsearch("reranker", "use", reranker, "--index-dir", index_dir, "--force", "--depth", "10")
    assert result.returncode == 0, result.stderr
    configured = ok_json("query", QUERY, "--index-dir", index_dir, "-k", "5")
    assert all("rerank" in hit["scores"] for hit in configured["hits"])
    off = ok_json("query", QUERY, "--index-dir", index_dir, "-k", "5", "--no-rerank")
    assert not any("rerank" in hit["scores"] for hit in off["hits"])
    # eval on an index with a reranker adds the reranked pipelines without being asked.
    results = ok_json("eval", dataset, "--index-dir", index_dir, "--pipelines", "hybrid")
    assert list(results) == ["hybrid", "hybrid+rerank", "dense+rerank"]
    assert all(0.0 <= metrics["nDCG@10"] <= 1.0 for metrics in results.values())
    (index_dir / "reranker.json").unlink()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_inputs_fail_with_one_line(tmp_path: Path, index_dir: Path, dataset: Path) -> None:
    out = ("--output", tmp_path / "out")
    fails_with("is empty", "train-reranker", "--pairs", write(tmp_path / "empty.tsv", ""), *out)
    fails_with("expected 3 tab-separated columns", "train-reranker", "--pairs", write(tmp_path / "c.tsv", "q\tp\n"), *out)
    fails_with("out of range", "train-reranker", "--pairs", write(tmp_path / "l.tsv", "q\tp\t3\n"), *out)
    fails_with("expected keys", "train-reranker", "--pairs", write(tmp_path / "k.jsonl", '{"q": "x"}\n'), *out)
    fails_with("pairs file not found", "train-reranker", "--pairs", tmp_path / "missing.tsv", *out)
    fails_with("no index at", "train-reranker", "--index-dir", tmp_path / "none", "--queries",
               dataset / "queries.jsonl", "--qrels", dataset / "qrels" / "test.tsv", *out)
    fails_with("give exactly one of", "train-reranker", *out)
    fails_with("not a bertsearch reranker", "reranker", "use", tmp_path, "--index-dir", index_dir)
    fails_with("no reranker configured", "query", QUERY, "--index-dir", index_dir, "--rerank")
    fails_with("the +rerank pipelines need a reranker", "eval", dataset, "--index-dir", index_dir, "--pipelines", "hybrid+rerank")


def test_a_reranker_that_loses_is_refused_unless_forced(tmp_path: Path, index_dir: Path, reranker: Path) -> None:
    metadata = json.loads((reranker / METADATA_NAME).read_text())
    metadata["check"].update(first_stage=0.7, blend=0.7, blend_weight=0.0)
    losing = tmp_path / "losing"
    losing.mkdir()
    (losing / METADATA_NAME).write_text(json.dumps(metadata))
    fails_with("does not improve on first-stage retrieval", "reranker", "use", losing, "--index-dir", index_dir)
    fails_with("does not improve on first-stage retrieval", "query", QUERY, "--index-dir", index_dir,
               "--reranker", losing)
