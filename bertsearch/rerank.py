"""Reranking: a BERT cross-encoder reads query and passage together and rescores the first stage's top hits.

Input is BERT's sentence pair, "[CLS] query [SEP] passage [SEP]". The score head sits on MEAN-POOLED token
states, the representation sentence-transformers weights were trained to produce: score = scale · cos(mean of
the query segment's states, mean of the passage segment's states) + bias, both from one joint pass.

Measured on SciFact (hybrid top 20, 300 listwise steps from all-MiniLM-L6-v2, test nDCG@10 with the blend
chosen on held-out train queries; first stage 0.717): this head reached 0.705 alone and 0.746 blended. A
variant that starts as the bi-encoder (segments encoded apart, cross-segment attention behind a learned
bias that starts closed) scored 0.691 and 0.725: its segments never opened to each other, so it stayed a
fine-tuned bi-encoder.

A reranker folder holds the BERT weights, the tokenizer and `bertsearch-reranker.json` (the head, how it was
trained, and the check against the first stage: the blend weight to use, and whether it helps at all).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsearch.errors import BertsearchError
from bertsearch.models.base import CrossEncoderSpec
from bertsearch.types import Hit, passage_text

METADATA_NAME = "bertsearch-reranker.json"
# Recorded in an index folder by `bertsearch reranker use`.
INDEX_RERANKER_NAME = "reranker.json"
# Rerank this many first-stage hits by default: the depth the training check validates the blend at; a query's
# reranking cost grows with it (N=50 costs ~2.5x N=20, bench/bench_rerank.py).
DEFAULT_RERANK_DEPTH = 20
# Word pieces of query and passage together: what every SciFact measurement in the README used. A reranked
# passage keeps its first ~165 word pieces; cost grows with the length.
DEFAULT_MAX_LENGTH = 192


class RerankerError(BertsearchError):
    """A reranker folder that cannot be used: missing, malformed, or refused by its own check."""


class RerankerRejectedError(RerankerError):
    """The reranker in `folder` lost to first-stage retrieval on its validation queries (`check`), or was never
    checked (`check` is None)."""

    def __init__(self, folder: Path, check: RerankCheck | None) -> None:
        if check is None:
            message = f"reranker {folder} was never checked against first-stage retrieval (trained without an index)"
        else:
            message = (f"reranker {folder} does not improve on first-stage retrieval (validation nDCG@10 "
                       f"{check.first_stage:.3f} alone, {check.blend:.3f} with it)")
        super().__init__(message)
        self.folder = folder
        self.check = check


@dataclass(frozen=True)
class RerankCheck:
    """First stage alone vs. with the reranker on held-out validation queries (nDCG@10 of the top `depth`)."""

    queries: int
    depth: int
    first_stage: float
    rerank_only: float
    blend: float
    blend_weight: float
    # "judged" (real queries with relevance judgments) or "pseudo-queries" (made from the corpus, which predict
    # real queries less well: the weight is then chosen conservatively, bertsearch.training.validation).
    evidence: str = "judged"
    # One-sided 95% lower bound of the blend's nDCG@10 gain over the first stage, per validation query.
    gain_lower_bound: float | None = None

    @property
    def judged(self) -> bool:
        return self.evidence == "judged"

    @property
    def helps(self) -> bool:
        return self.blend_weight > 0 and self.blend > self.first_stage


@dataclass(frozen=True)
class RerankerMetadata:
    """What a reranker folder records about itself."""

    base_model: str
    data_source: str
    data_hash: str
    steps: int
    max_length: int
    scale: float
    bias: float
    check: RerankCheck | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RerankerMetadata:
        data = dict(data)
        if data.get("check") is not None:
            data["check"] = RerankCheck(**data["check"])
        return cls(**data)


def read_metadata(folder: Path) -> RerankerMetadata:
    """The metadata of the reranker in `folder`, or RerankerError."""
    path = folder / METADATA_NAME
    if not folder.is_dir():
        raise RerankerError(f"reranker folder not found: {folder}")
    if not path.is_file():
        raise RerankerError(f"not a bertsearch reranker (no {METADATA_NAME}): {folder}")
    try:
        return RerankerMetadata.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise RerankerError(f"unreadable reranker metadata {path}: {exc}") from exc


def check_usable(folder: Path, metadata: RerankerMetadata, force: bool) -> None:
    """Refuse a reranker that was never checked against, or lost to, the first stage unless `force`."""
    if force:
        return
    if metadata.check is None or not metadata.check.helps:
        raise RerankerRejectedError(folder, metadata.check)


def blend(ce_scores: np.ndarray, weight: float) -> np.ndarray:
    """weight · min-max-normalised cross-encoder score + (1 − weight) · normalised first-stage rank score.

    `ce_scores` are in first-stage order (best first); the first-stage rank score falls linearly from 1 to 0.
    """
    count = len(ce_scores)
    if count == 0:
        return np.zeros(0)
    rank_score = 1.0 - np.arange(count) / max(count - 1, 1)
    spread = float(ce_scores.max() - ce_scores.min())
    ce_norm = (ce_scores - ce_scores.min()) / spread if spread > 0 else np.zeros(count)
    return weight * ce_norm + (1.0 - weight) * rank_score


def reranker_head(folder: Path) -> tuple[float, float]:
    """The (scale, bias) of the score head in `folder`: as trained if it is a reranker, else an untrained head's."""
    from bertsearch.models.cross_encoder import DEFAULT_SCALE

    if (folder / METADATA_NAME).is_file():
        metadata = read_metadata(folder)
        return metadata.scale, metadata.bias
    return DEFAULT_SCALE, 0.0


def reranker_key(folder: Path) -> str:
    """A cheap identity of the reranker in `folder` (its path, its weight files' size, time and inode, its
    metadata), to find the ONNX form written for it without hashing its weights on every query."""
    from bertsearch.models.loading import WEIGHT_FILES

    digest = hashlib.sha256(str(folder).encode())
    for name in (*WEIGHT_FILES, "config.json"):
        if (file := folder / name).is_file():
            info = file.stat()
            digest.update(f"{name}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}".encode())
    digest.update((folder / METADATA_NAME).read_bytes())
    return digest.hexdigest()[:16]


def reranker_spec(folder: Path, metadata: RerankerMetadata) -> CrossEncoderSpec:
    """How to load the cross-encoder of the reranker in `folder`."""
    return CrossEncoderSpec(folder, metadata.max_length, metadata.scale, metadata.bias, reranker_key(folder))


def prepare_query_reranker(folder: Path) -> None:
    """Write the ONNX form of the reranker in `folder` now (it needs torch), unless queries run on torch, so that the
    first query reranking with it loads in milliseconds (see `bertsearch.models.onnx_export`)."""
    from bertsearch.device import Runtime, query_engine
    from bertsearch.models.cross_encoder import CrossEncoder
    from bertsearch.models.onnx_export import export_cross_encoder
    from bertsearch.models.onnx_runtime import CROSS_ENCODER, form_is_current

    folder = Path(folder).expanduser().resolve()
    spec = reranker_spec(folder, read_metadata(folder))
    if query_engine() != "onnx" or form_is_current(CROSS_ENCODER, spec.key):
        return
    export_cross_encoder(CrossEncoder(spec.folder, spec.max_length, Runtime("cpu", "fp32"), spec.scale, spec.bias),
                         spec)


class Reranker:
    """A trained reranker used as its check says: the blend weight chosen on validation queries."""

    def __init__(self, folder: Path, force: bool = False, engine: str | None = None) -> None:
        """`engine` "torch" or "onnx" runs the cross-encoder there; None lets `bertsearch.device` choose."""
        from bertsearch.models.loading import load_pair_scorer

        folder = Path(folder).expanduser().resolve()
        self.metadata = read_metadata(folder)
        check_usable(folder, self.metadata, force)
        self.folder = folder
        # A forced reranker that was never checked (or lost) is used alone, as the user asked.
        self.weight = self.metadata.check.blend_weight if self.metadata.check and self.metadata.check.helps else 1.0
        self.scorer = load_pair_scorer(reranker_spec(folder, self.metadata), engine)

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """`hits` (first-stage order) reordered; each keeps its first-stage scores and gains `rerank` and `blend`."""
        if not hits:
            return []
        ce = self.scorer.score(query, [passage_text(h.title, h.passage) for h in hits])
        final = blend(ce, self.weight)
        reranked = []
        for hit, ce_score, score in zip(hits, ce, final, strict=True):
            scores = hit.scores.reranked(first_stage=hit.score, rerank=float(ce_score), blend=float(score))
            reranked.append(Hit(doc_id=hit.doc_id, score=float(score), title=hit.title, passage=hit.passage,
                                passage_position=hit.passage_position, source=hit.source, scores=scores))
        order = sorted(range(len(reranked)), key=lambda i: (-reranked[i].score, i))
        return [reranked[i] for i in order]


@dataclass(frozen=True)
class IndexRerankerConfig:
    """The reranker an index uses by default (`bertsearch reranker use`)."""

    path: str
    force: bool = False
    depth: int = DEFAULT_RERANK_DEPTH


def read_index_reranker(index_dir: Path) -> IndexRerankerConfig | None:
    path = index_dir / INDEX_RERANKER_NAME
    if not path.is_file():
        return None
    try:
        return IndexRerankerConfig(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise RerankerError(f"unreadable reranker setting {path}: {exc}") from exc


def use_reranker(
    index_dir: Path, folder: Path, force: bool = False, depth: int = DEFAULT_RERANK_DEPTH
) -> RerankerMetadata:
    """Record `folder` as the index's reranker after checking it is usable, and write the ONNX form its queries will
    load (`prepare_query_reranker`); returns its metadata."""
    from bertsearch.settings import read_settings

    read_settings(index_dir)  # IndexNotFoundError if there is no index
    folder = Path(folder).expanduser().resolve()
    metadata = read_metadata(folder)
    check_usable(folder, metadata, force)
    config = IndexRerankerConfig(path=str(folder), force=force, depth=depth)
    target = index_dir / INDEX_RERANKER_NAME
    tmp = target.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(asdict(config), indent=2))
        os.replace(tmp, target)
    except OSError as exc:
        raise BertsearchError(f"cannot record the reranker in {index_dir}: {exc.strerror}") from None
    prepare_query_reranker(folder)
    return metadata


def configured_reranker(index_dir: Path, path: Path | None = None, force: bool = False, depth: int | None = None,
                        engine: str | None = None) -> tuple[Callable[[], Reranker] | None, int]:
    """The reranker for queries on `index_dir` and how many hits it reranks: `path` if given, else the one
    `bertsearch reranker use` recorded there (if any). Its check is enforced now, its weights load on first use."""
    if path is not None:
        return lazy_reranker(Path(path), force, engine), depth or DEFAULT_RERANK_DEPTH
    recorded = read_index_reranker(index_dir)
    if recorded is None:
        return None, depth or DEFAULT_RERANK_DEPTH
    return lazy_reranker(Path(recorded.path), recorded.force or force, engine), depth or recorded.depth


def lazy_reranker(folder: Path, force: bool = False, engine: str | None = None) -> Callable[[], Reranker]:
    """A loader for the searcher: the reranker's metadata is checked now, its weights read on first use."""
    folder = Path(folder).expanduser().resolve()
    check_usable(folder, read_metadata(folder), force)
    return lambda: Reranker(folder, force=force, engine=engine)

