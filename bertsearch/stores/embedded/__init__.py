"""The embedded default store, in one folder and no server: `store` (SQLite: documents, passages, vectors, FTS5
BM25; the one writer, read-only use, repair), `vectors` (the FAISS index derived from SQLite) and `salvage` (what
is left of a damaged database)."""

from bertsearch.stores.embedded.store import DATABASE_NAME, LOCK_NAME, EmbeddedStore, StoreRepair
from bertsearch.stores.embedded.vectors import ANN_THRESHOLD, VECTORS_NAME, VECTORS_STATE_NAME

__all__ = ["ANN_THRESHOLD", "DATABASE_NAME", "LOCK_NAME", "VECTORS_NAME", "VECTORS_STATE_NAME", "EmbeddedStore",
           "StoreRepair"]
