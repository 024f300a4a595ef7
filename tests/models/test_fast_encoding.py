"""The encoding path indexing takes: checked against fp32 before an index takes its vectors, recorded in the index,
and refused (or given up for fp32) when it is not faithful."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bertsearch.device import PRECISION_ENV, EncodingPath, Runtime
from bertsearch.errors import IndexMismatchError
from bertsearch.models import fast_encoding, onnx_runtime
from bertsearch.models.encoder import Encoder
from bertsearch.models.faithfulness import MIN_PATH_COSINE, check_index_encodings, cosines
from bertsearch.models.fast_encoding import UnfaithfulPathError, indexing_encoder
from bertsearch.models.onnx_runtime import OnnxEncoder
from bertsearch.settings import EncodingRecord, read_encodings

INT8 = EncodingPath("onnx", "cpu", "int8")
TEXTS = ["how tides follow the moon", "Kinase inhibitors in lung cancer cell lines " * 5, "東京の天気", "a"]


@pytest.fixture(scope="module")
def fp32_encoder() -> Encoder:
    return Encoder(runtime=Runtime("cpu", "fp32"))


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory, fp32_encoder: Encoder) -> Path:
    """A cache in which the int8 form has been written (and checked) once for the module's tests."""
    folder = tmp_path_factory.mktemp("int8-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(onnx_runtime.CACHE_ENV, str(folder))
        indexing_encoder(fp32_encoder, None, INT8).encode(["write the form"])
    return folder


def test_the_int8_path_is_checked_recorded_and_close_to_fp32(int8_cache: Path, fp32_encoder: Encoder,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(int8_cache))
    encoder = indexing_encoder(fp32_encoder, tmp_path, INT8)
    assert read_encodings(tmp_path) == []  # nothing encoded yet: nothing checked or recorded
    vectors = encoder.encode(TEXTS)
    chosen = encoder.chosen
    assert isinstance(chosen, OnnxEncoder)
    [record] = read_encodings(tmp_path)
    assert record.path == "onnx int8 on cpu" and record.bound == MIN_PATH_COSINE
    assert record.min_cosine is not None and MIN_PATH_COSINE <= record.min_cosine <= record.mean_cosine <= 1
    # texts the check never saw stay as close
    assert cosines(vectors, fp32_encoder.encode(TEXTS)).min() >= MIN_PATH_COSINE


def test_a_path_below_todays_bound_gives_way_to_fp32_with_one_warning(int8_cache: Path, fp32_encoder: Encoder,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(int8_cache))
    monkeypatch.setattr(fast_encoding, "MIN_PATH_COSINE", 0.999999)
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        chosen = indexing_encoder(fp32_encoder, tmp_path, INT8).chosen
    assert isinstance(chosen, Encoder) and chosen.runtime.precision == "fp32"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        caplog.records[-1].getMessage()] and "encoding in fp32" in caplog.records[-1].getMessage()
    assert [record.path for record in read_encodings(tmp_path)] == ["torch fp32 on cpu"]


def test_a_path_asked_for_that_fails_its_check_is_an_error(int8_cache: Path, fp32_encoder: Encoder, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(int8_cache))
    monkeypatch.setattr(fast_encoding, "MIN_PATH_COSINE", 0.999999)
    monkeypatch.setenv(PRECISION_ENV, "int8")
    with pytest.raises(UnfaithfulPathError, match="onnx int8 on cpu cannot encode this model faithfully"):
        indexing_encoder(fp32_encoder, tmp_path, INT8).encode(TEXTS)
    assert read_encodings(tmp_path) == []


def test_queries_search_an_index_only_if_every_path_that_wrote_it_was_faithful() -> None:
    check_index_encodings([], "onnx")  # an index from before paths were recorded
    check_index_encodings([EncodingRecord("torch fp32 on cpu"),
                           EncodingRecord("onnx int8 on cpu", "AVX2", MIN_PATH_COSINE + 0.001, 0.995, 0.99)], "onnx")
    with pytest.raises(IndexMismatchError, match=r"encoded by onnx int8 on cpu .* queries encoded by onnx fp32 on cpu"):
        check_index_encodings([EncodingRecord("onnx int8 on cpu", "AVX2", MIN_PATH_COSINE - 0.01, 0.99, 0.9)], "onnx")


def test_a_query_on_an_index_written_by_an_unfaithful_path_is_one_error_naming_both(tmp_path: Path) -> None:
    from tests.helpers import fails_with, ok_json

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The moon pulls the oceans into tides twice a day.")
    index_dir = tmp_path / "idx"
    ok_json("index", tmp_path / "docs", "--index-dir", index_dir)
    assert ok_json("query", "tides", "--index-dir", index_dir)["hits"]
    record = {"path": "onnx int8 on cpu", "cpu": "AVX2", "min_cosine": 0.95, "mean_cosine": 0.97, "bound": 0.9}
    paths = json.loads((index_dir / "encoding.json").read_text())["paths"]
    (index_dir / "encoding.json").write_text(json.dumps({"paths": [*paths, record]}))
    message = fails_with("encoded by onnx int8 on cpu", "query", "tides", "--index-dir", index_dir)
    assert "queries encoded by onnx fp32 on cpu" in message
