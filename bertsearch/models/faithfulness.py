"""Whether a fast way of encoding stays faithful to the model: its vectors of a fixed sample against fp32 torch's.

A path is taken only if every vector of the sample (`samples`: queries and passages of several kinds and lengths)
has cosine >= MIN_PATH_COSINE with the fp32 model's. The bound comes from bench/bench_faithfulness.py (figures in
docs/encoding.md): on SciFact, turning every passage vector to cosine 0.98-0.99 with its fp32 one moved nDCG@10 by
at most 0.005 in all but one of seven random draws (0.0057), and by more at 0.97; a real path's vectors are mostly
far closer than its worst (int8: mean 0.996, worst 0.990), and the sample's worst is as far as the corpus's worst.
The int8 path that passes moved no pipeline by more than 0.0033.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bertsearch.device import query_path
from bertsearch.errors import IndexMismatchError
from bertsearch.models import samples
from bertsearch.models.base import TextEncoder
from bertsearch.settings import EncodingRecord

# The worst cosine to fp32 a path may have on the sample (see the module's docstring for where it comes from).
MIN_PATH_COSINE = 0.99


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

    @property
    def shortfall(self) -> str:
        """Why a check that did not pass failed, in the words of the warning or error that reports it."""
        return f"its vectors differ from fp32 (cosine {self.min_cosine:.5f} < {self.bound})"

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
                     mean_cosine=round(float(found.mean()), 6), bound=MIN_PATH_COSINE)


def check_index_encodings(records: list[EncodingRecord], engine: str | None = None) -> None:
    """Queries encoded as one-off commands encode them (`device.query_path(engine)`) may search an index whose vectors
    other paths wrote only if each of those paths was found faithful to fp32 by today's bound (`records`: the index's
    `settings.read_encodings`; fp32 paths and indexes from before paths were recorded carry no figures and pass).
    IndexMismatchError otherwise, naming both paths."""
    for record in records:
        if record.min_cosine is not None and record.min_cosine < MIN_PATH_COSINE:
            raise IndexMismatchError(
                f"this index holds vectors encoded by {record.path} (cosine {record.min_cosine:.5f} to fp32 on the "
                f"check's sample, below {MIN_PATH_COSINE}), which queries encoded by {query_path(engine).describe()} "
                "would not search faithfully: rebuild the index in fp32 (BERTSEARCH_PRECISION=fp32)")
