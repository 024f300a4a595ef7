"""The one small interface every store implements; the pipeline never asks which store it has."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from bertsearch.settings import IndexSettings
from bertsearch.types import Document, Passage, PassageHit


@dataclass(frozen=True)
class EncodedDocument:
    """A document ready to store: its passages and their vectors (one row per passage)."""

    document: Document
    content_hash: str
    passages: list[Passage]
    vectors: np.ndarray


@dataclass(frozen=True)
class StoredDocument:
    """What a store remembers about a document to decide whether to re-encode or prune it."""

    content_hash: str
    source: str


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search to documents whose source starts with `source_prefix` and whose metadata has these values."""

    source_prefix: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.source_prefix and not self.metadata


@dataclass(frozen=True)
class StoreStats:
    documents: int
    passages: int
    backend: str
    details: dict[str, Any] = field(default_factory=dict)


def vector_key(encoder_input: str) -> str:
    """The key a passage's vector is stashed under (see `Store.stash_vectors`): a digest of the text the encoder
    reads, which with the index's one model is all the vector depends on."""
    return hashlib.sha256(encoder_input.encode("utf-8")).hexdigest()


class Store(ABC):
    """Documents, passages, vectors and a keyword index, behind one interface.

    Writes are per document and atomic: after a crash a document has all its new passages or all its old ones.
    """

    settings: IndexSettings
    # True for an index this process can search but not write (a read-only folder or mount).
    read_only: bool = False
    # False for a store whose searches take one lock in turn (the embedded store's FAISS index): a server then
    # runs them on one thread, as more would only queue on the lock and contend for the GIL.
    concurrent_reads: ClassVar[bool] = True
    # True for a store that can build a new index beside the live one and swap it in, so a rebuild never
    # interrupts searches: its class has `stage` (see bertsearch.stores.backends) and its staged stores `publish`.
    rebuildable: ClassVar[bool] = False

    @abstractmethod
    def stored_documents(self) -> dict[str, StoredDocument]:
        """Every stored document id with its content hash and source."""

    @abstractmethod
    def write(self, batch: Sequence[EncodedDocument]) -> None:
        """Add or replace each document with its passages; durable when this returns.

        A store without transactions raises PartialWriteError naming the documents it could not write, after
        writing the others.
        """

    def acquire_write_lock(self) -> None:
        """Claim the index for this process's writes, before any work is spent on them: an index that cannot be
        written (ReadOnlyIndexError) or is being written by another process (BackendError) is refused here.
        A store without such a claim does nothing."""

    def stash_vectors(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Keep vectors encoded for passages not written yet (a long document's, batch by batch), under their
        `vector_key`s, durably: a run killed before the document is written does not encode them again.
        Searches never see them. A store that cannot keep vectors aside does nothing."""

    def stashed_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stashed vectors of those of `keys` that have one."""
        return {}

    def clear_stash(self, keys: Sequence[str] | None = None) -> None:
        """Forget the stashed vectors of `keys` (their documents are written), or with None every one (a run that
        went through the whole corpus has written all it needed)."""

    @abstractmethod
    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove documents and their passages; unknown ids are ignored. May raise PartialWriteError, as `write`."""

    @abstractmethod
    def passage_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """How many passages the store holds for each of `doc_ids` it holds; to check a run lost nothing."""

    @abstractmethod
    def dense_search(self, vector: np.ndarray, k: int, filter: SearchFilter | None = None,
                     texts: bool = True) -> list[PassageHit]:
        """The k passages nearest to `vector` (inner product on normalised vectors), best first.

        With `texts` False the hits carry their ids and scores only, no text, title or source: fusion ranks a
        few hundred passages of each retriever to show ten, and reads only those ten (`with_texts`).
        """

    @abstractmethod
    def keyword_search(self, query: str, k: int, filter: SearchFilter | None = None,
                       texts: bool = True) -> list[PassageHit]:
        """The k best passages for `query` by BM25, best first; `texts` as in `dense_search`."""

    @abstractmethod
    def with_texts(self, hits: Sequence[PassageHit]) -> list[PassageHit]:
        """`hits` in their order and with their scores, each with its passage's text, title and source; a passage
        deleted since it was found is left out."""

    @abstractmethod
    def get_document(self, doc_id: str) -> Document | None:
        """The stored document, or None."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Counts for summaries and the stats page."""

    def publish(self) -> list[str]:
        """Make this store, staged beside the live index, the live one in one atomic step, and drop the old one;
        returns what was dropped. Only a `rebuildable` store's staged stores have it."""
        raise NotImplementedError(f"{type(self).__name__} is not rebuildable: it cannot be staged or published")

    def close(self) -> None:
        """Release resources; stores that buffer must have flushed by the end of `write`."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
