"""Stores behind one interface, and the factory that opens the one an index directory records."""

from __future__ import annotations

from pathlib import Path

from bertsearch.settings import IndexSettings, read_settings
from bertsearch.stores.base import EncodedDocument, SearchFilter, Store, StoredDocument, StoreStats

BACKENDS = ("embedded", "elasticsearch")

__all__ = [
    "BACKENDS",
    "EncodedDocument",
    "SearchFilter",
    "Store",
    "StoreStats",
    "StoredDocument",
    "create_store",
    "open_store",
]


def open_store(index_dir: Path) -> Store:
    """The store recorded in `index_dir`'s manifest; IndexNotFoundError if there is none."""
    settings = read_settings(index_dir)
    if settings.backend == "embedded":
        from bertsearch.stores.embedded import EmbeddedStore

        return EmbeddedStore.open(index_dir)
    raise NotImplementedError(settings.backend)


def create_store(index_dir: Path, settings: IndexSettings) -> Store:
    """A new, empty store of `settings.backend`, recorded in `index_dir`."""
    if settings.backend == "embedded":
        from bertsearch.stores.embedded import EmbeddedStore

        return EmbeddedStore.create(index_dir, settings)
    raise NotImplementedError(settings.backend)
