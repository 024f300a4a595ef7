"""The embedded default store, in one folder and no server: `store` (SQLite: documents, passages, vectors, FTS5
BM25; the one writer, read-only use, repair), `database` (the SQLite file's schema, transactions, write claim and
damage reports), `vectors` (the FAISS index derived from SQLite: exact, IVF or IVF-SQ8 by size or choice) and
`salvage` (what is left of a damaged database)."""

from bertsearch.stores.embedded.database import DATABASE_NAME, LOCK_NAME
from bertsearch.stores.embedded.store import EmbeddedStore, StoreRepair
from bertsearch.stores.embedded.vectors import ANN_THRESHOLD, VECTOR_INDEX_CHOICES, VECTOR_INDEX_OPTION, VECTORS_NAME, \
    VECTORS_STATE_NAME

__all__ = ["ANN_THRESHOLD", "DATABASE_NAME", "LOCK_NAME", "VECTOR_INDEX_CHOICES", "VECTOR_INDEX_OPTION", "VECTORS_NAME",
           "VECTORS_STATE_NAME", "EmbeddedStore", "StoreRepair"]
