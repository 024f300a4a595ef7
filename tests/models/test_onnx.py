"""Models' ONNX forms: written once and checked against torch, read only when intact, never a wrong vector."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertsearch.device import Runtime
from bertsearch.models import onnx_runtime
from bertsearch.models.base import CrossEncoderSpec
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.models.encoder import Encoder
from bertsearch.models.loading import default_model_path, load_pair_scorer, load_query_encoder
from bertsearch.models.onnx_export import export_cross_encoder, export_encoder
from bertsearch.models.onnx_runtime import ENCODER, MODEL_FILE, RECORD_FILE, OnnxCrossEncoder, OnnxEncoder, form_dir

TEXTS = ["tides", "how do plants make oxygen", "Ünïcödé, émoji 🙂 and 東京", "IL-6 > 10 pg/mL in 3/12 (25%)",
         "a long passage that the model truncates " * 60, "vitamin D and multiple sclerosis in northern latitudes"]


@pytest.fixture(scope="module")
def fp32_encoder() -> Encoder:
    return Encoder(runtime=Runtime("cpu", "fp32"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own, so each test sees a form written (or damaged) by itself alone."""
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def written(fp32_encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported encoder form, copied into the caches of the tests that need one."""
    folder = tmp_path_factory.mktemp("written")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(onnx_runtime.CACHE_ENV, str(folder))
        assert export_encoder(fp32_encoder)
    return folder / "onnx" / f"{ENCODER}-{fp32_encoder.info.fingerprint}"


def install(written: Path, cache: Path) -> Path:
    """A copy of the `written` form in `cache`, where the test's reads look for it."""
    target = cache / "onnx" / written.name
    shutil.copytree(written, target)
    return target


def test_the_form_gives_torch_fp32_vectors_for_texts_it_was_not_checked_on(written: Path, cache: Path,
                                                                           fp32_encoder: Encoder) -> None:
    install(written, cache)
    lean = onnx_runtime.open_encoder(fp32_encoder.info.fingerprint)
    assert isinstance(lean, OnnxEncoder) and lean.info == fp32_encoder.info
    expected = fp32_encoder.encode(TEXTS)
    for vectors in (np.stack([lean.encode_query(text) for text in TEXTS]), lean.encode(TEXTS)):
        assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
        assert (np.sum(vectors * expected, axis=1) >= 0.9999).all()
    record = json.loads((written / RECORD_FILE).read_text())
    assert record["check"]["min_cosine"] >= 0.9999 and record["failed"] is None


def test_a_current_form_is_not_written_again(written: Path, cache: Path, fp32_encoder: Encoder) -> None:
    folder = install(written, cache)
    before = (folder / MODEL_FILE).stat().st_mtime_ns
    assert export_encoder(fp32_encoder)
    assert (folder / MODEL_FILE).stat().st_mtime_ns == before


@pytest.mark.parametrize("damage", ["truncated", "altered", "other model"])
def test_a_damaged_form_is_never_used(damage: str, written: Path, cache: Path,
                                                            fp32_encoder: Encoder,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = install(written, cache)
    model = folder / MODEL_FILE
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "altered":  # one weight changed: the graph still loads, its vectors would be wrong
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    else:
        record = json.loads((folder / RECORD_FILE).read_text())
        (folder / RECORD_FILE).write_text(json.dumps({**record, "key": "0" * 16}))
    with caplog.at_level(logging.INFO, logger="bertsearch"):
        assert onnx_runtime.open_encoder(fp32_encoder.info.fingerprint) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0].getMessage()


def test_a_query_that_finds_its_form_damaged_runs_on_torch_and_writes_it_again(
        written: Path, cache: Path, fp32_encoder: Encoder, caplog: pytest.LogCaptureFixture) -> None:
    model = install(written, cache) / MODEL_FILE
    model.write_bytes(model.read_bytes()[:1000])
    with caplog.at_level(logging.INFO, logger="bertsearch"):
        encoder = load_query_encoder(fp32_encoder.info.path, fp32_encoder.info.fingerprint, loaded=fp32_encoder)
    assert encoder is fp32_encoder  # this query runs on torch
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1  # one warning line, not one per step
    assert isinstance(onnx_runtime.open_encoder(fp32_encoder.info.fingerprint), OnnxEncoder)  # the next one does not


def test_a_form_of_another_export_format_is_written_again_quietly(written: Path, cache: Path, fp32_encoder: Encoder,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    folder = install(written, cache)
    record = json.loads((folder / RECORD_FILE).read_text())
    (folder / RECORD_FILE).write_text(json.dumps({**record, "format": record["format"] - 1}))
    with caplog.at_level(logging.INFO, logger="bertsearch"):
        assert onnx_runtime.open_encoder(fp32_encoder.info.fingerprint) is None
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert export_encoder(fp32_encoder)
    assert onnx_runtime.open_encoder(fp32_encoder.info.fingerprint) is not None


def test_a_model_that_cannot_be_exported_keeps_torch_and_is_not_tried_again(
        cache: Path, fp32_encoder: Encoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    attempts = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(1)
        raise RuntimeError("an operator ONNX has no translation for")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with caplog.at_level(logging.INFO, logger="bertsearch"):
        assert not export_encoder(fp32_encoder)
        tried = len(attempts)  # each exporter torch offers, once
        assert load_query_encoder("", fp32_encoder.info.fingerprint, loaded=fp32_encoder) is fp32_encoder
    assert 1 <= tried <= 2 and len(attempts) == tried
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("no ONNX form" in note and "an operator ONNX has no translation" in note for note in notes)
    record = json.loads((form_dir(ENCODER, fp32_encoder.info.fingerprint) / RECORD_FILE).read_text())
    assert record["failed"] and not (form_dir(ENCODER, fp32_encoder.info.fingerprint) / MODEL_FILE).exists()


def test_a_form_that_fails_its_check_keeps_torch(cache: Path, fp32_encoder: Encoder,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from bertsearch.models import onnx_export

    monkeypatch.setattr(onnx_export, "MIN_COSINE", 1.5)  # no vector can pass: stands for a graph that drifted
    assert not export_encoder(fp32_encoder)
    record = json.loads((form_dir(ENCODER, fp32_encoder.info.fingerprint) / RECORD_FILE).read_text())
    assert "failed its check" in record["failed"] and "cosine" in record["failed"]
    assert onnx_runtime.open_encoder(fp32_encoder.info.fingerprint) is None


def test_a_cache_that_cannot_be_written_keeps_torch_with_a_note(tmp_path: Path, fp32_encoder: Encoder,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(blocker / "cache"))
    with caplog.at_level(logging.INFO, logger="bertsearch"):
        assert not export_encoder(fp32_encoder)
    assert any("cannot write the ONNX form" in r.getMessage() for r in caplog.records)


def test_the_cross_encoder_form_scores_as_torch_fp32(cache: Path) -> None:
    folder = default_model_path()
    spec = CrossEncoderSpec(folder, 128, 20.0, 0.5, key="test-head")
    torch_scorer = CrossEncoder(folder, 128, Runtime("cpu", "fp32"), spec.scale, spec.bias)
    assert export_cross_encoder(torch_scorer, spec)
    lean = load_pair_scorer(spec, engine="onnx")
    assert isinstance(lean, OnnxCrossEncoder)
    passages = ["Vitamin D deficiency is common in northern latitudes.", "Tides follow the moon.",
                "A long passage about bone density, calcium and vitamin D supplements in older adults. " * 20]
    for query in ("does vitamin D help bones", "what makes the tides", TEXTS[4]):
        expected = torch_scorer.score(query, passages, batch_size=2)
        got = lean.score(query, passages, batch_size=2)
        assert got.shape == (3,) and np.abs(got - expected).max() < 1e-3
    assert lean.score("anything", []).shape == (0,)
