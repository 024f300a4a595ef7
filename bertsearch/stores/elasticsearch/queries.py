"""The searches bertsearch sends: a kNN search over passage vectors, and BM25F over passage terms, each with the
clauses of a `SearchFilter`."""

from __future__ import annotations

from typing import Any

import numpy as np

from bertsearch.stores.base import SearchFilter

# Elasticsearch caps both `k`/`num_candidates` of a kNN search and `size` of a query at 10,000.
MAX_RESULTS = 10_000
MIN_CANDIDATES = 100


def knn_search(vector: np.ndarray, k: int, filter: SearchFilter | None) -> dict[str, Any]:
    """The `knn` of a search for the `k` (at most MAX_RESULTS) passages nearest to `vector`."""
    knn: dict[str, Any] = {
        "field": "vector",
        "query_vector": np.asarray(vector, dtype=np.float32).ravel().tolist(),
        "k": k,
        # More candidates per shard than k raise HNSW recall; 2k (at least 100) is cheap at this scale.
        "num_candidates": min(MAX_RESULTS, max(MIN_CANDIDATES, 2 * k)),
    }
    clauses = filter_clauses(filter)
    if clauses:
        # A kNN filter is applied during the graph search, so k matching passages still come back.
        knn["filter"] = clauses
    return knn


def keyword_query(terms: str, filter: SearchFilter | None) -> dict[str, Any]:
    """The `query` of a BM25 search for `terms` (stemmed, see `bertsearch.text.porter_terms`) among passages."""
    # combined_fields (BM25F) scores title and text as one field, adding up term counts and lengths, as
    # the embedded store's FTS5 bm25() does over its two columns; summing two per-field BM25s would not.
    match = {"combined_fields": {"query": terms, "fields": ["title_terms", "text_terms"]}}
    return {"bool": {"must": [match], "filter": [{"term": {"kind": "passage"}}, *filter_clauses(filter)]}}


def filter_clauses(filter: SearchFilter | None) -> list[dict[str, Any]]:
    if filter is None or filter.is_empty():
        return []
    clauses: list[dict[str, Any]] = []
    if filter.source_prefix:
        clauses.append({"prefix": {"source": filter.source_prefix}})
    for key, value in filter.metadata.items():
        clauses.append({"term": {f"metadata.{key}": value}})
    return clauses
