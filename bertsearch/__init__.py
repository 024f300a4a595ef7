"""bertsearch: semantic search over your own documents (a BERT bi-encoder, BM25, hybrid fusion, a cross-encoder
reranker), on an embedded store or Elasticsearch.

The Python API is `Index` (see `bertsearch.index`); results are plain typed values (`SearchResult`, `Hit`,
`Document`); every failure a user can fix is a `BertsearchError`. Names are imported when first used, so that
`import bertsearch` stays instant.
"""

from __future__ import annotations

from typing import Any

from bertsearch.device import share_cores_when_idle

share_cores_when_idle()  # before anything loads torch, whose OpenMP runtime reads the policy once

__all__ = ["BertsearchError", "Document", "Hit", "Index", "SearchResult", "__version__", "elasticsearch"]

_HOMES = {"BertsearchError": "bertsearch.errors", "Document": "bertsearch.types", "Hit": "bertsearch.types",
          "Index": "bertsearch.index", "SearchResult": "bertsearch.search", "elasticsearch": "bertsearch.index"}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("bertsearch")
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'bertsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
