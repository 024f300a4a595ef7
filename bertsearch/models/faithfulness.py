"""Whether a fast way of encoding stays faithful to the model: its vectors of a fixed sample against fp32 torch's.

A path is taken only if every vector of the sample (`samples`: queries and passages of several kinds and lengths)
has cosine >= MIN_INT8_COSINE with the fp32 model's. The bound comes from bench/bench_precision.py: on SciFact,
document vectors whose worst cosine on this sample stays above it keep nDCG@10 of every pipeline within 0.005
of an fp32 index (queries are encoded in fp32 by the ONNX form either way).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bertsearch.models import samples
from bertsearch.models.base import TextEncoder

# The worst cosine to fp32 a path may have on the sample (see the module's docstring for where it comes from).
MIN_INT8_COSINE = 0.99


@dataclass(frozen=True)
class PathCheck:
    """How a path's vectors of the sample compare with fp32 torch's, and whether that is faithful enough."""

    path: str
    texts: int
    min_cosine: float
    mean_cosine: float
    bound: float

    @property
    def passed(self) -> bool:
        return self.min_cosine >= self.bound

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two arrays of unit vectors."""
    return np.sum(np.asarray(vectors, dtype=np.float64) * np.asarray(reference, dtype=np.float64), axis=1)


def check_path(fast: TextEncoder, reference: TextEncoder, path: str) -> PathCheck:
    """`fast`'s vectors of the fixed sample against `reference`'s (the fp32 torch model)."""
    texts = [*samples.QUERIES, *samples.PASSAGES]
    found = cosines(fast.encode(texts), reference.encode(texts))
    return PathCheck(path=path, texts=len(texts), min_cosine=round(float(found.min()), 6),
                     mean_cosine=round(float(found.mean()), 6), bound=MIN_INT8_COSINE)
