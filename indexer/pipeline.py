"""Indexing: files → documents → passages → vectors → a store, incrementally and crash-safely.

Documents are written in batches, each one transaction in the store, and a document counts as indexed only
once its batch is written. A killed run therefore loses at most the batch in flight, and the next run skips
every document whose content hash is already stored: it resumes where the last one stopped.

A document of more passages than a batch is encoded in batches of its own, each shown as progress and stashed
in the store (`Store.stash_vectors`) as it is encoded; the document is written whole when its last batch is
encoded. A killed run loses at most one batch of it: the next one finds the rest stashed. Every batch looks in
the stash first, so a repaired index (see `EmbeddedStore.repair`) re-encodes only what it lost.

A store that cannot write some documents of a batch (Elasticsearch rejecting a field, a write-blocked index)
names them, and the run goes on. After each batch the store's passage counts are checked against what was
sent. A document not stored as sent is reported, not counted as indexed, and left for the next run to retry:
never silently lost.

With a partition (see bertsearch.indexer.partition) a run indexes, and prunes, only its share of the documents,
so several runs can fill one index at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from bertsearch.errors import PartialWriteError
from bertsearch.models.base import TextEncoder
from bertsearch.settings import WRITE_BATCH_PASSAGES, ChunkingSettings
from bertsearch.stores import StoreLocation
from bertsearch.stores.base import EncodedDocument, Store, vector_key
from bertsearch.types import Document, Passage, SkippedFile
from bertsearch.indexer.chunking import chunk_document
from bertsearch.indexer.filenames import file_name_of
from bertsearch.indexer.open_index import check_index_options, new_index_settings, open_index_for_writing
from bertsearch.indexer.partition import Partition
from bertsearch.indexer.progress import IndexProgress, NullProgress
from bertsearch.indexer.readers import DEFAULT_MAX_FILE_BYTES, estimate_document_count, iter_documents

# Opening the index a run writes is `open_index`'s; its functions belong to the indexing API callers import from here.
__all__ = ["IndexSummary", "Indexer", "check_index_options", "content_hash", "index_paths", "is_under",
           "new_index_settings", "open_index_for_writing"]


@dataclass
class IndexSummary:
    """What one indexing run did; `--json` prints it."""

    documents_seen: int = 0
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    documents_skipped: int = 0
    documents_failed: int = 0
    # Left to the runs of the other partitions (with a partition only); not counted as seen.
    documents_in_other_partitions: int = 0
    passages_encoded: int = 0
    # Passages whose vectors were found stashed (a long document's before a kill, or salvaged by a repair).
    passages_reused: int = 0
    seconds: float = 0.0
    # True once a rebuild has swapped its new index in (see bertsearch.indexer.rebuild).
    rebuilt: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Documents not stored as sent, each {"doc_id", "reason"}; the next run retries them.
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def content_hash(document: Document) -> str:
    """Hash of everything stored about a document, so any change to it triggers re-encoding."""
    payload = json.dumps([document.title, document.text, document.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def is_under(source: str, roots: Sequence[Path]) -> bool:
    """True if `source` (as the readers write file names) is one of `roots` or inside one of them."""
    path = Path(file_name_of(source))
    return any(path == root or root in path.parents for root in roots)


@dataclass(frozen=True)
class _PendingDocument:
    """A new or changed document waiting for its batch to be encoded and written."""

    document: Document
    digest: str
    passages: list[Passage]
    replaces: bool


class Indexer:
    """Brings a store up to date with a set of files: encodes new and changed documents only."""

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder,
        chunking: ChunkingSettings,
        progress: IndexProgress | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        batch_passages: int = WRITE_BATCH_PASSAGES,
        exclude: Sequence[Path] = (),
        partition: Partition | None = None,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.chunking = chunking
        self.progress = progress or NullProgress()
        self.max_file_bytes = max_file_bytes
        self.batch_passages = batch_passages
        self.exclude = exclude
        self.partition = partition

    def index(self, paths: Sequence[Path], prune: bool = False) -> IndexSummary:
        """Index `paths` (files or folders, recursively); with `prune`, drop stored documents whose source vanished.

        With a partition, only the documents (and skipped files) it holds are indexed, pruned and reported.
        """
        started = time.perf_counter()
        summary = IndexSummary()
        roots = [Path(p).resolve() for p in paths]
        stored = {doc_id: doc for doc_id, doc in self.store.stored_documents().items() if self._holds(doc_id)}
        seen: dict[str, str] = {}

        def readable_documents() -> Iterator[Document]:
            for item in iter_documents(roots, max_file_bytes=self.max_file_bytes, exclude=self.exclude):
                if isinstance(item, SkippedFile):
                    if self._holds(item.path):
                        self._skip(summary, item.path, item.reason)
                elif not self._holds(item.doc_id):
                    summary.documents_in_other_partitions += 1
                    self.progress.advance(documents=1)
                elif item.doc_id in seen:
                    self._skip(summary, item.source,
                               f"duplicate id {item.doc_id!r} (first seen in {seen[item.doc_id]})")
                else:
                    seen[item.doc_id] = item.source
                    yield item

        self.progress.start(lambda: estimate_document_count(roots, self.exclude))
        previous = {doc_id: doc.content_hash for doc_id, doc in stored.items()}
        self._index_new_and_changed(readable_documents(), previous.get, summary)
        if prune:
            vanished = [doc_id for doc_id, doc in stored.items() if doc_id not in seen and is_under(doc.source, roots)]
            not_removed = self._delete(vanished)
            for doc_id, reason in not_removed.items():
                self._fail(summary, doc_id, f"not removed: {reason}")
            summary.documents_removed = len(vanished) - len(not_removed)
        if self.partition is None:  # the other partitions' runs may still need what is stashed
            self.store.clear_stash()
        self.progress.finish()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def index_documents(self, documents: Sequence[Document]) -> IndexSummary:
        """Add or replace `documents` (e.g. sent through the HTTP API) exactly as indexing files would: unchanged
        ones are skipped by content hash, the rest chunked, encoded and written in crash-safe batches.

        Only these documents' stored versions are read, so the cost does not grow with the index. A document id
        given twice is skipped the second time, as a duplicate file record is. If the store did not store some
        of them (the others are stored), PartialWriteError names them: a caller cannot miss it.
        """
        started = time.perf_counter()
        summary = IndexSummary()
        unique: dict[str, Document] = {}
        for document in documents:
            if document.doc_id in unique:
                self._skip(summary, document.source, f"duplicate id {document.doc_id!r}")
            else:
                unique[document.doc_id] = document
        previous: dict[str, str] = {}
        for doc_id in unique:
            stored = self.store.get_document(doc_id)
            if stored is not None:
                previous[doc_id] = content_hash(stored)
        self._index_new_and_changed(unique.values(), previous.get, summary)
        summary.seconds = round(time.perf_counter() - started, 3)
        if summary.failed:
            failures = {entry["doc_id"]: entry["reason"] for entry in summary.failed}
            first = summary.failed[0]
            raise PartialWriteError(
                f"{len(failures)} document(s) not stored, first {first['doc_id']!r}: {first['reason']}", failures
            )
        return summary

    def _index_new_and_changed(
        self, documents: Iterable[Document], stored_hash: Callable[[str], str | None], summary: IndexSummary
    ) -> None:
        """Chunk, encode and write every document whose content hash differs from `stored_hash(doc_id)`."""
        pending: list[_PendingDocument] = []
        pending_passages = 0
        for item in documents:
            summary.documents_seen += 1
            digest = content_hash(item)
            previous = stored_hash(item.doc_id)
            if previous == digest:
                summary.documents_unchanged += 1
                self.progress.advance(documents=1)
                continue
            passages = chunk_document(item, self.encoder.tokenizer, self.chunking.max_tokens,
                                      self.chunking.overlap_tokens)
            if len(passages) > self.batch_passages and pending:  # a long document gets batches of its own
                self._write(pending, summary)
                pending, pending_passages = [], 0
            pending.append(_PendingDocument(item, digest, passages, replaces=previous is not None))
            pending_passages += len(passages)
            if pending_passages >= self.batch_passages:
                self._write(pending, summary)
                pending, pending_passages = [], 0
        self._write(pending, summary)

    def _write(self, pending: list[_PendingDocument], summary: IndexSummary) -> None:
        if not pending:
            return
        self.store.acquire_write_lock()  # a read-only or busy index is refused before anything is encoded
        vectors, stash_used = self._vectors([passage for item in pending for passage in item.passages], summary)
        batch, offset = [], 0
        for item in pending:
            batch.append(EncodedDocument(item.document, item.digest, item.passages,
                                         vectors[offset : offset + len(item.passages)]))
            offset += len(item.passages)
        failures = self._unstored(batch)
        for item in pending:
            if item.document.doc_id in failures:
                self._fail(summary, item.document.doc_id, failures[item.document.doc_id])
            elif item.replaces:
                summary.documents_updated += 1
            else:
                summary.documents_added += 1
        if stash_used:  # what is written needs no stash; a refused document keeps its vectors for the retry
            self.store.clear_stash([vector_key(passage.encoder_input()) for item in pending
                                    if item.document.doc_id not in failures for passage in item.passages])
        self.progress.advance(documents=len(pending))

    def _vectors(self, passages: list[Passage], summary: IndexSummary) -> tuple[np.ndarray, bool]:
        """The passages' vectors: stashed ones as they are, the rest encoded in batches of `batch_passages`, each
        batch stashed when there is more than one (a long document), so a killed run loses at most one; and
        whether the stash held or now holds any of them."""
        keys = [vector_key(passage.encoder_input()) for passage in passages]
        stashed = self.store.stashed_vectors(keys)
        vectors = np.empty((len(passages), self.encoder.info.dimensions), dtype=np.float32)
        missing = []
        for position, key in enumerate(keys):
            if key in stashed:
                vectors[position] = stashed[key]
            else:
                missing.append(position)
        summary.passages_reused += len(passages) - len(missing)
        self.progress.advance(passages=len(passages) - len(missing))
        for start in range(0, len(missing), self.batch_passages):
            part = missing[start : start + self.batch_passages]
            vectors[part] = self.encoder.encode([passages[position].encoder_input() for position in part])
            if len(missing) > self.batch_passages:
                self.store.stash_vectors([keys[position] for position in part], vectors[part])
            summary.passages_encoded += len(part)
            self.progress.advance(passages=len(part))
        return vectors, len(missing) < len(passages) or len(missing) > self.batch_passages

    def _unstored(self, batch: list[EncodedDocument]) -> dict[str, str]:
        """Write `batch`; the documents the store refused or does not hold as sent, with why.

        A document acknowledged but not held as sent (its passages lost to a concurrent delete, say) is deleted,
        so the next run sees it as new and writes it again.
        """
        try:
            self.store.write(batch)
            failures: dict[str, str] = {}
        except PartialWriteError as exc:
            failures = dict(exc.failures)
        sent = {item.document.doc_id: len(item.passages) for item in batch if item.document.doc_id not in failures}
        held = self.store.passage_counts(list(sent))
        mismatched = [doc_id for doc_id, count in sent.items() if held.get(doc_id) != count]
        for doc_id in mismatched:
            found = f"{held[doc_id]} of its {sent[doc_id]} passages" if doc_id in held else "no record of it"
            failures[doc_id] = f"the store acknowledged it but holds {found}"
        self._delete(mismatched)
        return failures

    def _delete(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """Delete `doc_ids`; those the store could not delete, with why."""
        try:
            self.store.delete(doc_ids)
        except PartialWriteError as exc:
            return exc.failures
        return {}

    def _holds(self, key: str) -> bool:
        return self.partition is None or self.partition.holds(key)

    def _fail(self, summary: IndexSummary, doc_id: str, reason: str) -> None:
        summary.documents_failed += 1
        summary.failed.append({"doc_id": doc_id, "reason": reason})

    def _skip(self, summary: IndexSummary, path: str, reason: str) -> None:
        summary.documents_skipped += 1
        summary.skipped.append({"path": path, "reason": reason})
        self.progress.skipped(path, reason)


def index_paths(
    location: StoreLocation,
    paths: Sequence[Path],
    model_path: str | Path | None = None,
    chunking: ChunkingSettings | None = None,
    index_options: Mapping[str, Any] | None = None,
    progress: IndexProgress | None = None,
    batch_passages: int = WRITE_BATCH_PASSAGES,
    prune: bool = False,
    rebuild: bool = False,
    partition: Partition | None = None,
) -> IndexSummary:
    """`bertsearch index`: bring the index at `location` up to date with `paths` (created if new), or only with the
    documents of `partition`, or with `rebuild` build a new one from `paths` alone beside it (see
    `bertsearch.indexer.rebuild`); then write the ONNX form of its model that queries load
    (`prepare_query_encoder`), while torch is loaded anyway. Passages are encoded on the fastest faithful path
    (`bertsearch.models.fast_encoding`)."""
    from bertsearch.indexer.rebuild import rebuild_index
    from bertsearch.indexer.readers import check_paths_exist
    from bertsearch.models.fast_encoding import indexing_encoder
    from bertsearch.models.loading import prepare_query_encoder

    check_paths_exist(paths)
    if rebuild:
        summary, encoder = rebuild_index(location, list(paths), model_path, chunking, index_options, progress,
                                         batch_passages)
    else:
        store, encoder, chunking = open_index_for_writing(location, model_path, chunking, index_options)
        with store:
            indexer = Indexer(store, indexing_encoder(encoder, location.index_dir), chunking, progress,
                              batch_passages=batch_passages, exclude=[location.index_dir], partition=partition)
            summary = indexer.index(list(paths), prune=prune)
    prepare_query_encoder(encoder)
    return summary
