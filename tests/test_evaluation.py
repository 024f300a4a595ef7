import json
from pathlib import Path

import pytest

from bertsearch.errors import DatasetError
from bertsearch.beir import load_beir, read_qrels
from bertsearch.evaluation import eval_index_dir, eval_index_name, parse_pipelines, run_pipeline, score_run


def write_dataset(folder: Path, header: bool = True) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "x"}) + "\n")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n" for q in ("q1", "q2", "q3"))
    )
    rows = "q1\td1\t1\nq2\td2\t1\nq2\td3\t2\n"
    (folder / "qrels" / "test.tsv").write_text(("query-id\tcorpus-id\tscore\n" if header else "") + rows)
    return folder


def test_load_beir_keeps_only_judged_queries(tmp_path: Path) -> None:
    dataset = load_beir(write_dataset(tmp_path / "toy"))
    assert dataset.name == "toy"
    assert dataset.queries == {"q1": "query q1", "q2": "query q2"}
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 2}}
    assert read_qrels(write_dataset(tmp_path / "plain", header=False) / "qrels" / "test.tsv") == dataset.qrels


def test_malformed_datasets_are_clear_errors(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "toy")
    with pytest.raises(DatasetError, match="no qrels for split 'dev'.*available: test"):
        load_beir(folder, "dev")
    (folder / "qrels" / "bad.tsv").write_text("q1\td1\tyes\n")
    with pytest.raises(DatasetError, match="not an integer"):
        load_beir(folder, "bad")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "only one"}) + "\n")
    with pytest.raises(DatasetError, match="missing from the queries file"):
        load_beir(folder)
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DatasetError, match="corpus.jsonl or corpus.jsonl.gz is missing"):
        load_beir(folder)


def test_metrics_come_from_ir_measures_with_our_rank_order() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    ranked = {"query one": ["d1", "x", "y"], "query two": ["x", "d2", "y"]}
    run, latencies = run_pipeline(lambda text: ranked[text], {"q1": "query one", "q2": "query two"})
    assert len(latencies) == 2
    metrics = score_run(qrels, run)
    assert metrics["RR@10"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["R@100"] == pytest.approx(1.0)
    assert metrics["nDCG@10"] == pytest.approx((1 + 1 / 1.5849625) / 2, abs=1e-4)


def test_identical_ids_are_dropped_on_request() -> None:
    run, _ = run_pipeline(lambda text: ["q1", "d1"], {"q1": "text"}, ignore_identical_ids=True)
    assert list(run["q1"]) == ["d1"]


def test_an_evaluation_names_its_pipelines_and_its_own_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_pipelines(" hybrid, ,bm25+rerank,") == ["hybrid", "bm25+rerank"]
    dataset = load_beir(write_dataset(tmp_path / "SciToy"))
    monkeypatch.setenv("BERTSEARCH_INDEX_DIR", str(tmp_path / "indexes"))
    assert eval_index_dir(dataset) == tmp_path / "indexes" / "eval" / "SciToy"
    assert eval_index_dir(dataset, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "eval" / "SciToy"
    assert eval_index_name(dataset) == "bertsearch-eval-scitoy"
