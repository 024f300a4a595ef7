"""What the rest of bertsearch needs of a model, whatever runs it (torch, ONNX Runtime, a server's worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What an index records about the model that built it."""

    path: str
    fingerprint: str
    dimensions: int
    max_seq_length: int


@dataclass(frozen=True)
class CrossEncoderSpec:
    """A cross-encoder to load: the BERT weights and tokenizer in `folder`, its score head (scale, bias), how many
    word pieces of query and passage it reads, and `key`, which tells its ONNX form from other models'."""

    folder: Path
    max_length: int
    scale: float
    bias: float
    key: str


@runtime_checkable
class QueryEncoder(Protocol):
    """What searching needs: one query's L2-normalised float32 vector."""

    info: ModelInfo

    def encode_query(self, text: str) -> np.ndarray:
        ...


@runtime_checkable
class TextEncoder(QueryEncoder, Protocol):
    """What indexing needs as well: a tokenizer to chunk documents with, and batches of passages encoded."""

    @property
    def tokenizer(self) -> Any:  # a transformers fast tokenizer (offsets and word ids are needed)
        ...

    def encode(self, texts: list[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        ...


@runtime_checkable
class PairScorer(Protocol):
    """A cross-encoder: one relevance score per (query, passage) pair, higher is better."""

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        ...
