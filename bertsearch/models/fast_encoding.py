"""The encoder indexing uses: the fastest path on this machine that stays faithful to the model.

`bertsearch.device.encoding_path` names the path to try (torch bf16 on CPUs with bf16 matrix units, ONNX Runtime
int8 on other CPUs, fp16 on CUDA); the path is checked against fp32 (`faithfulness.check_path`) before an index
takes its vectors, and the index records which paths wrote into it (`settings.record_encoding`). A path that
cannot be had here, or fails its check, gives way to torch fp32 with one warning line; one that
$BERTSEARCH_PRECISION asked for is an error instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from bertsearch.device import PRECISION_ENV, EncodingPath, Runtime, cpu_features, encoding_path
from bertsearch.errors import BertsearchError
from bertsearch.models.base import ModelInfo, TextEncoder
from bertsearch.models.encoder import Encoder
from bertsearch.models.faithfulness import MIN_PATH_COSINE, PathCheck, check_path
from bertsearch.settings import EncodingRecord, read_encodings, record_encoding

logger = logging.getLogger(__name__)


class UnfaithfulPathError(BertsearchError):
    """The encoding path asked for gives vectors too far from the model's own (fp32) to search with."""


def indexing_encoder(encoder: Encoder, index_dir: Path | None = None,
                     path: EncodingPath | None = None) -> IndexingEncoder:
    """What encodes the passages of the index in `index_dir`: `encoder` itself, or the int8 ONNX form of its model,
    as `path` (by default `encoding_path()`) says and its check allows (see `IndexingEncoder`)."""
    return IndexingEncoder(encoder, index_dir, path or encoding_path(encoder.runtime.device))


class IndexingEncoder:
    """An index's passage encoder, chosen on the first passages it encodes: a run with nothing to encode pays for no
    check and records no path. The path taken is recorded in the index (checked once per index and path: an index
    that took it before is not checked again)."""

    def __init__(self, encoder: Encoder, index_dir: Path | None, path: EncodingPath) -> None:
        self._encoder, self._index_dir, self._path = encoder, index_dir, path
        self.info: ModelInfo = encoder.info
        self._chosen: TextEncoder | None = None

    @property
    def tokenizer(self) -> Any:
        return self._encoder.tokenizer

    @property
    def chosen(self) -> TextEncoder:
        """The encoder the path came to (checked and recorded now if it has not been yet)."""
        if self._chosen is None:
            self._chosen = _choose(self._encoder, self._index_dir, self._path)
        return self._chosen

    def encode(self, texts: list[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        if not texts:
            return self._encoder.encode(texts)
        return self.chosen.encode(texts, batch_size, length_step)

    def encode_query(self, text: str) -> np.ndarray:
        return self._encoder.encode_query(text)


def _choose(encoder: Encoder, index_dir: Path | None, path: EncodingPath) -> TextEncoder:
    forced = os.environ.get(PRECISION_ENV, "").strip().lower() == path.precision
    recorded = {entry.path: entry for entry in read_encodings(index_dir)} if index_dir is not None else {}
    chosen: TextEncoder = encoder
    check: PathCheck | None = None
    if path.engine == "onnx":
        from bertsearch.models.onnx_export import export_int8_encoder
        from bertsearch.models.onnx_runtime import ENCODER, INT8, all_cores, form_dir, open_encoder, read_record

        lean = open_encoder(encoder.info.fingerprint, ENCODER + INT8, all_cores(), encoder.tokenizer) \
            if export_int8_encoder(encoder) else None
        if lean is None:
            record = read_record(form_dir(ENCODER + INT8, encoder.info.fingerprint))
            reason = record.failed if record is not None and record.failed else "no int8 form could be written"
            return _fall_back(encoder, path, reason, forced, index_dir)
        figures = lean.record.check
        # Judged by today's bound, not the one the form was written under.
        check = PathCheck(path.describe(), figures["texts"], figures["min_cosine"], figures["mean_cosine"],
                          MIN_PATH_COSINE)
        chosen = lean
    elif path.precision != "fp32" and path.describe() not in recorded:
        check = check_path(encoder, Encoder(encoder.info.path, Runtime(encoder.runtime.device, "fp32")),
                           path.describe())
    if check is not None and not check.passed:
        return _fall_back(encoder, path, check.shortfall, forced, index_dir)
    if index_dir is not None:
        record_encoding(index_dir, _record(path, check))
    return chosen


def _fall_back(encoder: Encoder, path: EncodingPath, reason: str, forced: bool,
               index_dir: Path | None) -> TextEncoder:
    if forced:
        raise UnfaithfulPathError(f"{path.describe()} cannot encode this model faithfully here ({reason}); "
                                  "encode in fp32 instead")
    logger.warning("%s cannot encode %s faithfully here (%s): encoding in fp32", path.describe(), encoder.info.path,
                   reason)
    fp32 = encoder if encoder.runtime.precision == "fp32" else Encoder(encoder.info.path,
                                                                      Runtime(encoder.runtime.device, "fp32"))
    if index_dir is not None:
        record_encoding(index_dir, _record(EncodingPath("torch", fp32.runtime.device, "fp32"), None))
    return fp32


def _record(path: EncodingPath, check: PathCheck | None) -> EncodingRecord:
    if check is None:
        return EncodingRecord(path=path.describe(), cpu=cpu_features().family)
    return EncodingRecord(path=path.describe(), cpu=cpu_features().family, min_cosine=check.min_cosine,
                          mean_cosine=check.mean_cosine, bound=check.bound)
