"""Rank fusion: combine rankings from retrievers whose scores are not comparable."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)

# k=60 is the constant of Cormack et al. (2009); it damps the head of each list and is robust across collections.
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Key]], k: int = RRF_K) -> list[tuple[Key, float]]:
    """Fuse ranked lists of keys by summing 1 / (k + rank); best first, ties broken by first appearance.

    Args:
        rankings: each a list of keys, best first (keys need not appear in every list).
        k: the RRF constant.
    Returns:
        (key, fused score) pairs sorted by score, descending.
    """
    scores: dict[Key, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))
