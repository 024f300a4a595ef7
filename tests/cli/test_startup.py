"""An instant command line: nothing heavy is imported to start, and a query loads no torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import imported_by, ok_json, write_scifact_slice

COMMANDS = ["index", "query", "eval", "train-reranker", "reranker", "serve", "stats", "dashboards"]


@pytest.mark.parametrize("args", [["--help"], ["--version"], *[[command, "--help"] for command in COMMANDS],
                                  ["query"], ["query", "x", "--mode", "nope"], ["index", "/no/such/folder"],
                                  ["query", "x", "-k", "0"], ["eval", "/no/such/dataset"]])
def test_help_version_and_argument_errors_import_nothing_heavy(args: list[str]) -> None:
    result, heavy = imported_by(*args)
    assert heavy == [], f"`bertsearch {' '.join(args)}` imported {heavy}"
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def slice_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SciFact slice's index, built by `bertsearch index` (which writes the model's ONNX form for queries)."""
    dataset = write_scifact_slice(tmp_path_factory.mktemp("scifact"), queries=12, documents=80)
    index_dir = tmp_path_factory.mktemp("index") / "idx"
    ok_json("index", dataset / "corpus.jsonl", "--index-dir", index_dir)
    return dataset, index_dir


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_query_loads_no_torch(slice_index: tuple[Path, Path], mode: str) -> None:
    _, index_dir = slice_index
    result, heavy = imported_by("query", "vitamin D and bone density", "--index-dir", str(index_dir), "--mode", mode)
    assert result.returncode == 0, result.stderr
    assert heavy == ([] if mode == "bm25" else ["faiss", "onnxruntime"]), heavy
    assert "vitamin" in result.stdout.lower() and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_onnx_form_ranks_as_torch_does(slice_index: tuple[Path, Path]) -> None:
    """The ONNX form is fp32, so it is compared with torch in fp32: the same vectors, so the same ranking (bf16
    query vectors against fp32 ones are compared on all of SciFact by bench/bench_cli.py)."""
    from bertsearch.device import Runtime
    from bertsearch.models.encoder import Encoder
    from bertsearch.search import Searcher, open_searcher

    dataset, index_dir = slice_index
    lean = open_searcher(index_dir, engine="onnx")
    with lean.store:
        on_torch = Searcher(lean.store, Encoder(runtime=Runtime("cpu", "fp32")))
        assert type(lean.encoder).__name__ == "OnnxEncoder"
        for line in (dataset / "queries.jsonl").read_text().splitlines()[:6]:
            text = json.loads(line)["text"]
            for mode in ("dense", "hybrid"):
                lean_hits = lean.search(text, k=10, mode=mode).hits
                torch_hits = on_torch.search(text, k=10, mode=mode).hits
                assert [h.doc_id for h in lean_hits] == [h.doc_id for h in torch_hits]
                for a, b in zip(lean_hits, torch_hits):
                    ours, theirs = a.scores.to_dict(), b.scores.to_dict()
                    assert ours.keys() == theirs.keys()
                    assert all(abs(ours[name] - theirs[name]) < 1e-4 for name in ours), (ours, theirs)


@pytest.mark.slow
def test_eval_gives_the_same_figures_through_onnx_as_through_torch(slice_index: tuple[Path, Path]) -> None:
    dataset, index_dir = slice_index
    lean = ok_json("eval", dataset, "--index-dir", index_dir)
    on_torch = ok_json("eval", dataset, "--index-dir", index_dir, env={"BERTSEARCH_ENGINE": "torch"})
    for pipeline in ("dense", "bm25", "hybrid"):
        assert abs(lean[pipeline]["nDCG@10"] - on_torch[pipeline]["nDCG@10"]) <= 1e-3, pipeline
