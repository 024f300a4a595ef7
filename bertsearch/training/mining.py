"""Hard negatives: what the first stage ranks high for a query without being relevant to it."""

from __future__ import annotations

from bertsearch.search import Searcher
from bertsearch.types import Hit

# Hard negatives come from this deep in the first stage: deep enough for variety, shallow enough to be hard.
MINING_DEPTH = 30


def first_stage_candidates(searcher: Searcher, query: str, depth: int) -> list[Hit]:
    """The first stage's top `depth` for `query` (hybrid, never reranked): what a reranker is given to reorder."""
    return searcher.search(query, k=depth, mode="hybrid", rerank=False).hits
