"""Writing a model's ONNX form once, with torch: exported, checked against torch, then moved into place atomically.

The check runs the written form with ONNX Runtime on a fixed set of texts (short and long queries, non-ASCII,
digits, a text longer than the model reads) and compares it with the fp32 torch model: every vector must have
cosine >= 0.9999 with torch's, every cross-encoder score must be within 1e-3 of torch's, and the saved
tokenizer must give exactly the word pieces of the model's own. A model that cannot be exported, or fails,
is recorded as such (`ExportRecord.failed`) and keeps running on torch.

See `bertsearch.models.onnx_runtime` for where forms live and how they are read.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
import torch

from bertsearch.device import Runtime, cpu_features
from bertsearch.models import samples
from bertsearch.models.base import CrossEncoderSpec
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.models.encoder import Encoder
from bertsearch.models.onnx_runtime import (
    CROSS_ENCODER,
    ENCODER,
    INT8,
    MODEL_FILE,
    RECORD_FILE,
    TOKENIZER_FILE,
    ExportRecord,
    LoadedForm,
    OnnxCrossEncoder,
    OnnxEncoder,
    files_digest,
    form_dir,
    form_is_current,
    new_session,
    read_record,
)

MIN_COSINE = 0.9999
MAX_SCORE_DIFFERENCE = 1e-3
CHECK_TEXTS = samples.QUERIES
CHECK_PASSAGES = (*samples.PASSAGES[:2], "A passage longer than the reranker reads, to check that pairs are truncated "
                  "the same way " * 30)

logger = logging.getLogger(__name__)


def export_encoder(encoder: Encoder) -> bool:
    """Write the checked ONNX form of `encoder`'s model into the cache unless it is there already; True if it is
    there now, False (with a note saying why) if the model cannot have one or the cache cannot be written."""
    info = encoder.info

    def write(folder: Path) -> dict[str, Any]:
        reference = encoder
        if encoder.runtime != Runtime("cpu", "fp32"):  # the form is fp32: made from the fp32 weights, not a cast
            reference = Encoder(info.path, runtime=Runtime("cpu", "fp32"))
        tokenizer = _backend_tokenizer(reference.tokenizer)
        tokenizer.enable_truncation(info.max_seq_length)
        tokenizer.save(str(folder / TOKENIZER_FILE))
        example = reference.tokenizer(["a query of a few words", "a longer sentence, padded less than the first"],
                                      padding=True, return_tensors="pt")
        _export(reference.embedding_module, reference.embedding_module.transformer,
                (example["input_ids"], example["attention_mask"]), ["input_ids", "attention_mask"],
                folder / MODEL_FILE, info.max_seq_length)
        expected_ids = reference.tokenizer(list(CHECK_TEXTS), truncation=True, max_length=info.max_seq_length)
        if [e.ids for e in tokenizer.encode_batch(list(CHECK_TEXTS))] != expected_ids["input_ids"]:
            raise _CheckFailed("its tokenizer does not give the model's word pieces once saved")
        lean = OnnxEncoder(_loaded(folder, ENCODER, info.fingerprint, info.path, info.max_seq_length,
                                   info.dimensions, tokenizer))
        expected = reference.encode(list(CHECK_TEXTS))
        one_by_one = np.stack([lean.encode_query(text) for text in CHECK_TEXTS])
        batched = lean.encode(CHECK_TEXTS)
        cosine = float(min((expected * one_by_one).sum(axis=1).min(), (expected * batched).sum(axis=1).min()))
        if cosine < MIN_COSINE:
            raise _CheckFailed(f"its vectors differ from torch's (cosine {cosine:.6f} < {MIN_COSINE})")
        return {"texts": len(CHECK_TEXTS), "min_cosine": round(cosine, 7)}

    return _write_form(ENCODER, info.fingerprint, info.path, info.max_seq_length, info.dimensions, write)


def export_int8_encoder(encoder: Encoder) -> bool:
    """Write the int8 form of `encoder`'s model (ENCODER + INT8): its fp32 form (written first if missing) with the
    matrix products' weights quantised per output channel, and activations per batch as it runs (ONNX Runtime's
    dynamic quantisation). Checked before it is recorded: every vector of the fixed sample (`samples`: queries
    and passages of several kinds) must have cosine >= `faithfulness.MIN_PATH_COSINE` with the fp32 torch
    model's (`faithfulness.check_path`). True if a checked int8 form is in place."""
    from bertsearch.models.faithfulness import check_path

    info = encoder.info
    if not export_encoder(encoder):
        return False
    kind = ENCODER + INT8
    # VNNI multiplies unsigned activations by signed weights exactly; plain AVX2's instruction for it saturates
    # 16-bit sums, which unsigned weights avoid (ONNX Runtime's advice for CPUs without VNNI).
    signed = cpu_features().int8_dot_products

    def write(folder: Path) -> dict[str, Any]:
        source = form_dir(ENCODER, info.fingerprint)
        _quantize(source / MODEL_FILE, folder / MODEL_FILE, signed)
        shutil.copyfile(source / TOKENIZER_FILE, folder / TOKENIZER_FILE)
        tokenizer = _tokenizer_file(folder / TOKENIZER_FILE)
        reference = encoder if encoder.runtime == Runtime("cpu", "fp32") else Encoder(info.path, Runtime("cpu", "fp32"))
        lean = OnnxEncoder(_loaded(folder, kind, info.fingerprint, info.path, info.max_seq_length, info.dimensions,
                                   tokenizer))
        check = check_path(lean, reference, "onnx int8 on cpu")
        if not check.passed:
            raise _CheckFailed(check.shortfall)
        return {**check.to_json(), "weights": "int8" if signed else "uint8", "cpu": cpu_features().family}

    return _write_form(kind, info.fingerprint, info.path, info.max_seq_length, info.dimensions, write)


def export_cross_encoder(scorer: CrossEncoder, spec: CrossEncoderSpec) -> bool:
    """Write the checked ONNX form of the reranker `spec` names, as `export_encoder` does; `scorer` is its torch
    form."""

    def write(folder: Path) -> dict[str, Any]:
        reference = scorer
        if scorer.runtime != Runtime("cpu", "fp32") or next(scorer.network.parameters()).dtype != torch.float32:
            reference = CrossEncoder(spec.folder, spec.max_length, Runtime("cpu", "fp32"), spec.scale, spec.bias)
        tokenizer = _backend_tokenizer(reference.tokenizer)
        tokenizer.enable_truncation(spec.max_length, strategy="longest_first")
        tokenizer.save(str(folder / TOKENIZER_FILE))
        example = reference.tokenize(["a short query", "another query"], ["a passage of a few words", "a shorter one"])
        _export(reference.network, reference.network.bert,
                (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
                ["input_ids", "attention_mask", "token_type_ids"], folder / MODEL_FILE, spec.max_length)
        pairs = [(query, passage) for query in CHECK_TEXTS for passage in CHECK_PASSAGES]
        expected_ids = reference.tokenizer([q for q, _ in pairs], [p for _, p in pairs], truncation="longest_first",
                                        max_length=spec.max_length, return_token_type_ids=True)
        encodings = tokenizer.encode_batch(pairs)
        if [e.ids for e in encodings] != expected_ids["input_ids"] or \
                [e.type_ids for e in encodings] != expected_ids["token_type_ids"]:
            raise _CheckFailed("its tokenizer does not give the model's word pieces once saved")
        lean = OnnxCrossEncoder(_loaded(folder, CROSS_ENCODER, spec.key, str(spec.folder), spec.max_length, 0,
                                        tokenizer))
        worst = 0.0
        for query in CHECK_TEXTS:
            with torch.inference_mode():
                expected = reference.score(query, list(CHECK_PASSAGES))
            worst = max(worst, float(np.abs(lean.score(query, list(CHECK_PASSAGES)) - expected).max()))
        if worst > MAX_SCORE_DIFFERENCE:
            raise _CheckFailed(f"its scores differ from torch's by up to {worst:.5f} (> {MAX_SCORE_DIFFERENCE})")
        return {"pairs": len(pairs), "max_score_difference": round(worst, 7)}

    return _write_form(CROSS_ENCODER, spec.key, str(spec.folder), spec.max_length, 0, write)


class _CheckFailed(Exception):
    """The written form does not behave as the torch model does; the message says how."""


def _record(kind: str, key: str, model_path: str, max_length: int, dimensions: int = 0) -> ExportRecord:
    return ExportRecord(kind=kind, key=key, model_path=model_path, max_length=max_length, dimensions=dimensions)


def _loaded(folder: Path, kind: str, key: str, model_path: str, max_length: int, dimensions: int,
            tokenizer: Any) -> LoadedForm:
    """The form being written in `folder`, loaded as readers will load it, to be checked before it is recorded."""
    session = new_session((folder / MODEL_FILE).read_bytes())
    return LoadedForm(_record(kind, key, model_path, max_length, dimensions), session, tokenizer)


def _write_form(kind: str, key: str, model_path: str, max_length: int, dimensions: int,
                write: Callable[[Path], dict[str, Any]]) -> bool:
    """Run `write` (export and check, returning the check's figures) in a new folder beside the form's, then move
    it into place in one rename: readers see the old form, or none, or the whole new one."""
    target = form_dir(kind, key)
    if form_is_current(kind, key):
        return True
    record = read_record(target)
    if record is not None and record.failed:
        return False
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    except OSError as exc:
        logger.info("cannot write the ONNX form of %s into %s (%s): it runs on torch", model_path, target.parent,
                    exc.strerror or exc)
        return False
    record = _record(kind, key, model_path, max_length, dimensions)
    try:
        try:
            check = write(staging)
            record = ExportRecord(**{**record.to_json(), "check": check, "sha256": files_digest(
                (staging / MODEL_FILE).read_bytes(), (staging / TOKENIZER_FILE).read_bytes())})
        except _CheckFailed as exc:
            record = ExportRecord(**{**record.to_json(), "failed": f"failed its check: {exc}"})
        except Exception as exc:  # noqa: BLE001 - exporters raise many types for a graph they cannot take
            record = ExportRecord(**{**record.to_json(), "failed": f"cannot be exported: {type(exc).__name__}: {exc}"})
        if record.failed:
            for name in (MODEL_FILE, TOKENIZER_FILE):
                (staging / name).unlink(missing_ok=True)
        (staging / RECORD_FILE).write_text(json.dumps(record.to_json(), indent=2))
        for file in staging.iterdir():
            _fsync(file)
        _replace(staging, target)
    except OSError as exc:
        logger.info("cannot write the ONNX form of %s into %s (%s): it runs on torch", model_path, target.parent,
                    exc.strerror or exc)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if record.failed:
        logger.info("%s has no ONNX form (%s): it runs on torch", model_path, record.failed)
        return False
    use = "indexing on this CPU encodes with it" if kind.endswith(INT8) else "queries load it instead of torch"
    logger.info("wrote the ONNX form of %s into %s: %s", model_path, target, use)
    return True


def _replace(staging: Path, target: Path) -> None:
    """Move `staging` to `target`, replacing a damaged or failed form there (a rename cannot replace a folder)."""
    if target.exists():
        retired = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, retired)
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if not (target / RECORD_FILE).is_file():  # another process that wrote it first is as good as this one
            raise


def _quantize(source: Path, target: Path, signed: bool) -> None:
    """`source`'s MatMul weights as int8 (or uint8) per output channel, activations quantised as they run."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(source, target, op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8 if signed else QuantType.QUInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _tokenizer_file(path: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def _backend_tokenizer(tokenizer: Any) -> Any:
    """A copy of a transformers fast tokenizer's Rust tokenizer, not padding (the runtime pads)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise _CheckFailed("its tokenizer has no fast (Rust) form to save")
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    return copy


def _export(module: torch.nn.Module, transformer: Any, example: tuple[torch.Tensor, ...], names: list[str],
            path: Path, max_length: int) -> None:
    """`module` (whose BERT is `transformer`) as an ONNX graph over inputs of any batch size and any length up to
    `max_length`, with attention, LayerNorm and GELU fused into ONNX Runtime's own operators (its transformer
    optimizer: ~25% faster on CPU). The optimizer recognises the graph torch's TorchScript exporter makes of
    eager attention, so the form is exported that way; if that exporter is gone or refuses the model, torch's
    newer exporter writes an unfused graph instead. Either way the caller checks the form before recording it."""
    try:
        with _eager_attention(transformer), _quiet(), torch.inference_mode(False), torch.no_grad():
            axes = {name: {0: "batch", 1: "length"} for name in names}
            torch.onnx.export(module.eval(), example, str(path), input_names=names, output_names=["output"],
                              dynamic_axes={**axes, "output": {0: "batch"}}, dynamo=False, opset_version=17)
        _fuse(path, transformer.config)
    except Exception:  # noqa: BLE001 - the exporters raise many types; the graph below is checked as well
        batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=max(max_length, 8))
        with _quiet(), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module.eval(), example, str(path), input_names=names, output_names=["output"],
                              dynamic_shapes=tuple({0: batch, 1: length} for _ in names), dynamo=True,
                              external_data=False, verbose=False)


def _fuse(path: Path, config: Any) -> None:
    """Rewrite the graph at `path` with ONNX Runtime's fused transformer operators."""
    from onnxruntime.transformers import optimizer

    with _quiet():
        fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size)
        fused.save_model_to_file(str(path))


@contextlib.contextmanager
def _eager_attention(transformer: Any) -> Iterator[None]:
    """`transformer` computing attention with plain matrix products while in the block (the pattern the fusion
    finds), then as before."""
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    try:
        yield
    finally:
        transformer.set_attn_implementation(previous)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' and the quantiser's warnings, log lines and prints (operators they skip, advice) are noise on
    a command's output."""
    logs = [logging.getLogger(name) for name in ("", "torch.onnx")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
