"""The schema of a bertsearch index on Elasticsearch: its strict mapping, its layout (vector index type, shards,
replicas), and the settings recorded in the mapping's `_meta`, by which an index built otherwise is refused."""

from __future__ import annotations

import dataclasses
from typing import Any

from bertsearch.errors import BackendError, IndexMismatchError
from bertsearch.settings import IndexSettings
from bertsearch.stores import VECTOR_INDEX_TYPES

# How a new index is laid out, recorded in its `_meta` with the model settings. One primary shard holds
# millions of passages; `replicas: None` auto-expands 0-1, so a single node stays green and a second one
# gets a copy. Changing the vector index type or the shard count takes a rebuild.
LAYOUT_DEFAULTS: dict[str, Any] = {"vector_index_type": "hnsw", "shards": 1, "replicas": None}


def with_layout_defaults(settings: IndexSettings) -> IndexSettings:
    """`settings` with every layout option of LAYOUT_DEFAULTS present, checked."""
    layout = {**LAYOUT_DEFAULTS, **settings.backend_options}
    vector_index_type(layout)
    shards, replicas = layout["shards"], layout["replicas"]
    if not isinstance(shards, int) or shards < 1:
        raise BackendError(f"the number of shards must be at least 1, got {shards!r}")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        raise BackendError(f"the number of replicas must be at least 0, got {replicas!r}")
    return dataclasses.replace(settings, backend_options=layout)


def recorded_settings(index: str, mapping: dict[str, Any]) -> IndexSettings:
    """The settings in an index mapping's `_meta` (with layout defaults for indices made before they were
    recorded); IndexMismatchError if bertsearch did not make it, or an older version without term fields did."""
    recorded = mapping.get("_meta", {}).get("bertsearch")
    if recorded is None:
        raise IndexMismatchError(f"Elasticsearch index {index!r} was not made by bertsearch (no settings in its _meta)")
    try:
        settings = with_layout_defaults(IndexSettings.from_json(recorded))
    except (TypeError, ValueError, BackendError) as exc:
        raise IndexMismatchError(f"unreadable bertsearch settings in the _meta of {index!r}: {exc}") from None
    if "text_terms" not in mapping.get("properties", {}):
        raise IndexMismatchError(
            f"Elasticsearch index {index!r} was built by an older bertsearch", differs="format"
        )
    return settings


def same_build(first: IndexSettings, second: IndexSettings) -> bool:
    """True if indices built with these settings hold the same vectors in the same layout."""
    return (first.model_fingerprint, first.dimensions, first.chunking) == (
        second.model_fingerprint,
        second.dimensions,
        second.chunking,
    ) and all(first.backend_options.get(key) == second.backend_options.get(key) for key in LAYOUT_DEFAULTS)


def index_mapping(settings: IndexSettings) -> dict[str, Any]:
    """Strict mapping (a misspelt field fails loudly) with the index's settings in `_meta`."""
    stored_only = {"type": "text", "index": False}
    return {
        "dynamic": "strict",
        "_meta": {"bertsearch": settings.to_json()},
        # Vectors are never read back and would double the index on disk; rebuilding re-encodes from text.
        # Terms are derived from title and text.
        "_source": {"excludes": ["vector", "title_terms", "text_terms"]},
        "properties": {
            "kind": {"type": "keyword"},
            "doc_id": {"type": "keyword"},
            "position": {"type": "integer"},
            "title": {"type": "text", "index": False},
            "text": {"type": "text", "index": False},
            # Already tokenized and stemmed (see porter_terms): `standard` only splits them at the spaces.
            "title_terms": {"type": "text", "analyzer": "standard"},
            "text_terms": {"type": "text", "analyzer": "standard"},
            "source": {"type": "keyword"},
            # Any keys, each filterable by exact value; long values stay in _source but are not indexed.
            "metadata": {"type": "flattened", "ignore_above": 1024},
            "content_hash": {"type": "keyword", "index": False},
            "document_title": stored_only,
            "document_text": stored_only,
            "vector": {
                "type": "dense_vector",
                "dims": settings.dimensions,
                "index": True,
                # Ranks like dot_product on the encoder's unit vectors, but a vector a rounding error off unit
                # length is scored instead of refused.
                "similarity": "cosine",
                "index_options": {"type": vector_index_type(settings.backend_options)},
            },
        },
    }


def vector_index_type(layout: dict[str, Any]) -> str:
    kind = layout.get("vector_index_type", LAYOUT_DEFAULTS["vector_index_type"])
    if kind not in VECTOR_INDEX_TYPES:
        raise BackendError(f"vector_index_type must be one of {', '.join(VECTOR_INDEX_TYPES)}, got {kind!r}")
    return kind
