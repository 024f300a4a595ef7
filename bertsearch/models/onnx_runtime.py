"""Models' ONNX forms, run by ONNX Runtime with the `tokenizers` library: no torch, loaded in milliseconds.

A model's ONNX form is written once (`bertsearch.models.onnx_export`, which needs torch) into the cache, one
folder per model: `model.onnx`, the tokenizer as `tokenizer.json`, and `export.json`, which records what was
exported, a checksum of both files, and the check against torch that the form passed. Reading a form checks
all of it; a form that is missing, from another export format, or damaged is not used (a damaged one with a
warning), and the caller falls back to torch, which writes it again.

Where: $BERTSEARCH_CACHE_DIR, else $XDG_CACHE_HOME/bertsearch, else ~/.cache/bertsearch; under `onnx/`,
`encoder-<model fingerprint>` for bi-encoders and `cross-encoder-<reranker key>` for rerankers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from bertsearch.models.base import CrossEncoderSpec, ModelInfo
from bertsearch.models.batching import length_batches

CACHE_ENV = "BERTSEARCH_CACHE_DIR"
# Bumped whenever what is exported, or how, changes: forms of another format are written again.
EXPORT_FORMAT = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "export.json"
ENCODER = "encoder"
CROSS_ENCODER = "cross-encoder"
# The int8 forms: the fp32 form's matrix products quantised, weights per output channel (`onnx_export`).
INT8 = "-int8"
CROSS_ENCODER_BATCH = 32

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRecord:
    """What `export.json` says about a model's ONNX form. `failed` says why a model has no usable form (it could
    not be exported, or failed the check), so that later commands do not try again."""

    kind: str
    key: str
    model_path: str
    max_length: int
    dimensions: int = 0
    sha256: str = ""
    check: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None
    format: int = EXPORT_FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir() -> Path:
    """Where models' ONNX forms (and other derived files) are kept."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "bertsearch"


def form_dir(kind: str, key: str) -> Path:
    """The folder of the ONNX form of the model `key` of `kind` (ENCODER or CROSS_ENCODER)."""
    return cache_dir() / "onnx" / f"{kind}-{key}"


def files_digest(model: bytes, tokenizer: bytes) -> str:
    """SHA-256 of a form's model and tokenizer files: what `export.json` records, and reading checks."""
    return hashlib.sha256(hashlib.sha256(model).digest() + hashlib.sha256(tokenizer).digest()).hexdigest()


def read_record(folder: Path) -> ExportRecord | None:
    """The record of the form in `folder`; None if there is none, or it is unreadable or of another format."""
    try:
        data = json.loads((folder / RECORD_FILE).read_text())
        if data.get("format") != EXPORT_FORMAT:
            return None
        return ExportRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class LoadedForm:
    """A form read and checked: its record, an ONNX Runtime session, and its `tokenizers` tokenizer."""

    record: ExportRecord
    session: Any
    tokenizer: Any


def open_encoder(fingerprint: str, kind: str = ENCODER, threads: int = 1,
                 chunking_tokenizer: Any = None) -> OnnxEncoder | None:
    """The ONNX form of the bi-encoder with `fingerprint` (`kind`: ENCODER, or ENCODER + INT8), checked; None if
    there is no usable one (with a note if the model cannot have one, a warning if the form is damaged).
    `threads`: 1 for queries (fastest for one text), the cores for passages. `chunking_tokenizer`: the model's
    transformers tokenizer if the caller has it loaded (see `OnnxEncoder.tokenizer`)."""
    form = open_form(kind, fingerprint, threads)
    return OnnxEncoder(form, chunking_tokenizer) if form is not None else None


def open_cross_encoder(spec: CrossEncoderSpec, kind: str = CROSS_ENCODER) -> OnnxCrossEncoder | None:
    """The ONNX form of the cross-encoder `spec` names, as `open_encoder`; it scores a query's pairs on every core."""
    form = open_form(kind, spec.key, all_cores())
    return OnnxCrossEncoder(form) if form is not None else None


def all_cores() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def form_is_current(kind: str, key: str) -> bool:
    """True if a usable form of `kind` for `key` is in place (its files match their record), quietly."""
    folder = form_dir(kind, key)
    record = read_record(folder)
    if record is None or record.failed or record.kind != kind or record.key != key:
        return False
    try:
        return files_digest((folder / MODEL_FILE).read_bytes(), (folder / TOKENIZER_FILE).read_bytes()) == record.sha256
    except OSError:
        return False


def open_form(kind: str, key: str, threads: int = 1) -> LoadedForm | None:
    """The form of `kind` for `key` with its files checked against their record; None if there is none that is
    usable (a note if the model has none, a warning if the files are damaged)."""
    folder = form_dir(kind, key)
    record = read_record(folder)
    if record is None:
        return None
    if record.failed:
        logger.info("%s has no ONNX form (%s): it runs on torch", record.model_path, record.failed)
        return None
    try:
        model, tokenizer = (folder / MODEL_FILE).read_bytes(), (folder / TOKENIZER_FILE).read_bytes()
        if record.kind != kind or record.key != key or files_digest(model, tokenizer) != record.sha256:
            raise ValueError("its files do not match their record")
        return LoadedForm(record, new_session(model, threads), _tokenizer(tokenizer))
    except Exception as exc:  # noqa: BLE001 - a truncated or altered file fails in many ways; none may give a vector
        logger.warning("the ONNX form of %s in %s is damaged (%s): running it on torch and writing it again",
                       record.model_path, folder, exc)
        return None


def new_session(model: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime session of the serialized graph `model` on `threads` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Threads do not spin once a run ends: beside busy processes, spinning threads only take the cores from them.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _tokenizer(serialized: bytes) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(serialized.decode("utf-8"))


def padded_rows(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows padded with 0 to the longest, and their attention mask: int64 arrays, as the graphs take."""
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for number, row in enumerate(rows):
        ids[number, : len(row)] = row
        mask[number, : len(row)] = 1
    return ids, mask


class OnnxEncoder:
    """A bi-encoder's ONNX form: texts in, L2-normalised float32 vectors out, batched as `Encoder` batches them
    (a `TextEncoder`: it can index as well as search)."""

    def __init__(self, form: LoadedForm, chunking_tokenizer: Any = None) -> None:
        record = form.record
        self.record = record
        self.info = ModelInfo(path=record.model_path, fingerprint=record.key, dimensions=record.dimensions,
                              max_seq_length=record.max_length)
        self._session = form.session
        self._tokenizer = form.tokenizer  # truncates to the model's maximum length, as recorded when exported
        self._chunking_tokenizer = chunking_tokenizer

    @property
    def tokenizer(self) -> Any:
        """The model's transformers tokenizer, for chunking documents (loaded on first use: queries need none)."""
        if self._chunking_tokenizer is None:
            from bertsearch.models.loading import load_tokenizer

            self._chunking_tokenizer = load_tokenizer(Path(self.record.model_path))
        return self._chunking_tokenizer

    def encode(self, texts: Sequence[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        """Vectors of `texts`, shape (len(texts), dimensions), in length-sorted batches (see `length_batches`)."""
        vectors = np.empty((len(texts), self.info.dimensions), dtype=np.float32)
        if not texts:
            return vectors
        token_ids = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        for batch, _, _ in length_batches(token_ids, self.info.max_seq_length, batch_size, length_step):
            ids, mask = padded_rows([token_ids[i] for i in batch])  # a graph takes any length: no bucket padding
            vectors[batch] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return vectors

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text], batch_size=1)[0]


class OnnxCrossEncoder:
    """A cross-encoder's ONNX form: one score per (query, passage) pair, like `CrossEncoder.score`."""

    def __init__(self, form: LoadedForm) -> None:
        self.record = form.record
        self._session = form.session
        self._tokenizer = form.tokenizer  # truncates pairs longest first to the reranker's length, as when exported

    def score(self, query: str, passages: Sequence[str], batch_size: int = CROSS_ENCODER_BATCH) -> np.ndarray:
        scores = []
        for start in range(0, len(passages), batch_size):
            pairs = [(query, passage) for passage in passages[start:start + batch_size]]
            encodings = self._tokenizer.encode_batch(pairs)
            ids, mask = padded_rows([encoding.ids for encoding in encodings])
            types = np.zeros_like(ids)
            for number, encoding in enumerate(encodings):
                types[number, : len(encoding.type_ids)] = encoding.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            scores.append(self._session.run(None, feed)[0].astype(np.float32))
        return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
