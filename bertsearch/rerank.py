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

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsearch.device import Runtime, select_runtime
from bertsearch.errors import BertsearchError, ModelNotFoundError
from bertsearch.types import Hit

METADATA_NAME = "bertsearch-reranker.json"
# Recorded in an index folder by `bertsearch reranker use`.
INDEX_RERANKER_NAME = "reranker.json"
# Rerank this many first-stage hits by default: the depth the training check validates the blend at, and
# the latency a 2-core CPU can afford (N=50 costs ~2.5x N=20; bench/bench_rerank.py).
DEFAULT_RERANK_DEPTH = 20
# Word pieces of query and passage together: what every SciFact measurement in the README used. A reranked
# passage keeps its first ~165 word pieces; cost grows with the length.
DEFAULT_MAX_LENGTH = 192
BATCH_SIZE = 32


class RerankerError(BertsearchError):
    """A reranker folder that cannot be used: missing, malformed, or refused by its own check."""


class RerankerRejectedError(RerankerError):
    """The reranker lost to first-stage retrieval on its validation queries."""


@dataclass(frozen=True)
class RerankCheck:
    """First stage alone vs. with the reranker on held-out validation queries (nDCG@10 of the top `depth`)."""

    queries: int
    depth: int
    first_stage: float
    rerank_only: float
    blend: float
    blend_weight: float

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
    check = metadata.check
    if check is None:
        raise RerankerRejectedError(
            f"reranker {folder} was never checked against first-stage retrieval (trained without an index); "
            "use --force to use it anyway"
        )
    if not check.helps:
        raise RerankerRejectedError(
            f"reranker {folder} does not improve on first-stage retrieval (validation nDCG@10 "
            f"{check.first_stage:.3f} alone, {check.blend:.3f} with it); use --force to use it anyway"
        )


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


def passage_text(title: str, text: str) -> str:
    """What the cross-encoder reads for a passage: the title goes with it, as for the bi-encoder."""
    return f"{title}. {text}" if title else text


def build_model(folder: Path):
    """The cross-encoder network over the BERT weights in `folder` (a base model or a trained reranker)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()

    class CrossEncoderNetwork(torch.nn.Module):
        """score = scale · cos(mean(query-segment states), mean(passage-segment states)) + bias."""

        def __init__(self, bert: torch.nn.Module, scale: float, bias: float) -> None:
            super().__init__()
            self.bert = bert
            self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
            self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

        def forward(self, input_ids, attention_mask, token_type_ids):
            states = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state.float()
            mask = attention_mask.unsqueeze(-1).float()
            passage_mask = mask * token_type_ids.unsqueeze(-1).float()
            query_mask = mask - passage_mask
            query = (states * query_mask).sum(1) / query_mask.sum(1).clamp(min=1.0)
            passage = (states * passage_mask).sum(1) / passage_mask.sum(1).clamp(min=1.0)
            return self.scale * torch.nn.functional.cosine_similarity(query, passage, dim=-1) + self.bias

    metadata_path = folder / METADATA_NAME
    scale, bias = 20.0, 0.0  # 20 is the temperature sentence-transformers trains MiniLM's cosine with
    if metadata_path.is_file():
        metadata = read_metadata(folder)
        scale, bias = metadata.scale, metadata.bias
    try:
        bert = AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
    except Exception as exc:  # transformers raises many types for a broken folder
        raise ModelNotFoundError(f"cannot load BERT weights from {folder}: {exc}") from exc
    return CrossEncoderNetwork(bert, scale, bias)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelNotFoundError(f"cannot load a tokenizer from {folder}: {exc}") from exc


class CrossEncoder:
    """Scores (query, passage) pairs with a cross-encoder network, batched, in the runtime's precision."""

    def __init__(self, folder: Path, max_length: int = DEFAULT_MAX_LENGTH, runtime: Runtime | None = None) -> None:
        self.runtime = runtime or select_runtime()
        self.folder = folder
        self.max_length = max_length
        self.tokenizer = load_tokenizer(folder)
        self.network = build_model(folder).to(self.runtime.device)
        self.network.eval()
        self._traced = None  # a TorchScript trace of `network`, once `release_gil` made one

    def tokenize(self, queries: Sequence[str], passages: Sequence[str]):
        batch = self.tokenizer(
            list(queries), list(passages), truncation="longest_first", max_length=self.max_length,
            padding=True, return_tensors="pt", return_token_type_ids=True,
        )
        return {name: tensor.to(self.runtime.device) for name, tensor in batch.items()
                if name in ("input_ids", "attention_mask", "token_type_ids")}

    def score(self, query: str, passages: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """One relevance score per passage (higher is better), float32."""
        import torch

        scores = []
        # The trace runs without autocast: the weights are already in the runtime's precision, and the scores
        # were checked against the autocast ones when it was made.
        with torch.inference_mode(), self.runtime.autocast() if self._traced is None else contextlib.nullcontext():
            for start in range(0, len(passages), batch_size):
                chunk = passages[start:start + batch_size]
                scores.append(self._forward(self.tokenize([query] * len(chunk), chunk)).float().cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)

    def release_gil(self) -> bool:
        """Score with a TorchScript trace of the network, one call that holds no GIL; True if that is now the case.

        For the server, where request threads run Python beside every forward pass: eagerly, reranking 20
        passages took 1.5 s instead of 0.13 s beside one busy Python thread (measured). Checked against the
        eager, autocast scores on pairs of other shapes first; CPU only, like the encoder's trace.
        """
        if self._traced is None and self.runtime.device == "cpu":
            import torch

            from bertsearch.models import trace_without_gil

            def pairs(queries: list[str], passages: list[str]) -> tuple:
                batch = self.tokenize(queries, passages)
                return batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]

            example = pairs(["a short query", "another query"], ["a passage of a few words", "a shorter one"])
            checks = [pairs(["one"], ["word"]),
                      pairs(["q"] * 3, ["three passages", "of different lengths", "to check the padding " * 30])]
            with torch.inference_mode(), self.runtime.autocast():
                expected = [self.network(*inputs) for inputs in checks]  # the eager scores, as `score` makes them
            self._traced = trace_without_gil(self.network, example, list(zip(checks, expected)), atol=0.05)
        return self._traced is not None

    def _forward(self, batch: dict):  # noqa: ANN202 - a torch.Tensor
        if self._traced is not None:
            return self._traced(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return self.network(**batch)


class Reranker:
    """A trained reranker used as its check says: the blend weight chosen on validation queries."""

    def __init__(self, folder: Path, force: bool = False, runtime: Runtime | None = None) -> None:
        folder = Path(folder).expanduser().resolve()
        self.metadata = read_metadata(folder)
        check_usable(folder, self.metadata, force)
        self.folder = folder
        # A forced reranker that was never checked (or lost) is used alone, as the user asked.
        self.weight = self.metadata.check.blend_weight if self.metadata.check and self.metadata.check.helps else 1.0
        self.cross_encoder = CrossEncoder(folder, self.metadata.max_length, runtime)
        # Inference only: weights stored in the runtime's precision skip a cast per matmul.
        self.cross_encoder.network.to(self.cross_encoder.runtime.dtype)

    def release_gil(self) -> bool:
        """See `CrossEncoder.release_gil`."""
        return self.cross_encoder.release_gil()

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """`hits` (first-stage order) reordered; each keeps its first-stage scores and gains 'rerank' and 'blend'."""
        if not hits:
            return []
        ce = self.cross_encoder.score(query, [passage_text(h.title, h.passage) for h in hits])
        final = blend(ce, self.weight)
        reranked = []
        for hit, ce_score, score in zip(hits, ce, final):
            scores = {**hit.scores, "first_stage": hit.score, "rerank": float(ce_score), "blend": float(score)}
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


def use_reranker(index_dir: Path, folder: Path, force: bool = False, depth: int = DEFAULT_RERANK_DEPTH) -> RerankerMetadata:
    """Record `folder` as the index's reranker after checking it is usable; returns its metadata."""
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
    return metadata


def configured_reranker(index_dir: Path, path: Path | None = None, force: bool = False,
                        depth: int | None = None) -> tuple[Callable[[], Reranker] | None, int]:
    """The reranker for queries on `index_dir` and how many hits it reranks: `path` if given, else the one
    `bertsearch reranker use` recorded there (if any). Its check is enforced now, its weights load on first use."""
    if path is not None:
        return lazy_reranker(Path(path), force), depth or DEFAULT_RERANK_DEPTH
    recorded = read_index_reranker(index_dir)
    if recorded is None:
        return None, depth or DEFAULT_RERANK_DEPTH
    return lazy_reranker(Path(recorded.path), recorded.force or force), depth or recorded.depth


def lazy_reranker(folder: Path, force: bool = False) -> Callable[[], Reranker]:
    """A loader for the searcher: the reranker's metadata is checked now, its weights read on first use."""
    folder = Path(folder).expanduser().resolve()
    check_usable(folder, read_metadata(folder), force)
    return lambda: Reranker(folder, force=force)

