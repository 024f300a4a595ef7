"""The application object behind the HTTP routes: models loaded once, the store, the worker, the query log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from bertsearch.errors import BertsearchError
from bertsearch.indexer.pipeline import Indexer, IndexSummary
from bertsearch.models.encoder import Encoder
from bertsearch.querylog import BackgroundQueryLog, open_query_log, query_event
from bertsearch.querystats import QueryStats, compute_query_stats, read_query_stats
from bertsearch.search import PendingSearch, SearchResult, Searcher, ms_since, open_searcher
from bertsearch.server.batching import InferenceWorker, WorkerEncoder, WorkerReranker
from bertsearch.stores import SearchFilter, StoreLocation, StoreStats
from bertsearch.types import Document

T = TypeVar("T")

# Searches in progress past their encoding, at most, on a store whose reads run in parallel, or reranking.
SEARCH_POOL_THREADS = 8
# Index figures attached to query events are at most this old (seconds); writes refresh them at once.
STATS_MAX_AGE = 30.0


@dataclass(frozen=True)
class ServiceSettings:
    """What `bertsearch serve` configures beyond host and port."""

    location: StoreLocation
    reranker_path: Path | None = None
    rerank_depth: int | None = None
    force_reranker: bool = False
    query_log: str = "on"
    search_timeout: float = 10.0
    # Seconds a request's whole body may take to arrive (408 and the connection closed after that).
    body_timeout: float = 10.0
    write_timeout: float = 600.0
    max_pending_queries: int = 256
    api_key: str | None = field(default=None, repr=False)
    protect_reads: bool = False


class SearchService:
    """Search, documents, embeddings and statistics over one index, safe to call from many threads.

    Searches run concurrently (their model work batched by the worker); writes run one at a time, each
    durable (committed by the store) before it returns. The embedded store serialises its own reads and
    writes, so a reader sees a document with all its old passages or all its new ones.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.location = settings.location
        # torch, not ONNX Runtime: the worker batches queries and holds no GIL in its traced passes.
        loaded = open_searcher(settings.location, reranker_path=settings.reranker_path,
                               force_reranker=settings.force_reranker, rerank_depth=settings.rerank_depth,
                               engine="torch")
        self.store = loaded.store
        try:
            encoder = loaded.encoder  # loads and checks the model now, not on the first request
            if not isinstance(encoder, Encoder):
                raise TypeError(f"the worker batches queries on a torch Encoder, not a {type(encoder).__name__}")
            reranker = loaded.reranker
            self.worker = InferenceWorker(encoder, max_pending=settings.max_pending_queries)
        except BaseException:
            self.store.close()
            raise
        self.model_path = encoder.info.path
        self.dimensions = encoder.info.dimensions
        self.reranker_path = str(reranker.folder) if reranker is not None else None
        self.searcher = Searcher(
            self.store,
            WorkerEncoder(self.worker, settings.search_timeout),
            WorkerReranker(self.worker, reranker, settings.search_timeout) if reranker is not None else None,
            loaded.rerank_depth,
        )
        self.indexer = Indexer(self.store, WorkerEncoder(self.worker, settings.write_timeout),
                               self.store.settings.chunking)
        # One thread runs the searches of a store whose vector search takes a lock: more only queue on it and
        # contend for the GIL, which makes dense and hybrid searches slower, not faster.
        self._search_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="search") if not self.store.concurrent_reads else None
        )
        self._pool = ThreadPoolExecutor(SEARCH_POOL_THREADS, thread_name_prefix="search-pool")
        self._write_lock = threading.Lock()
        self._stats: tuple[float, StoreStats] | None = None
        self._stats_lock = threading.Lock()
        # A log that cannot be written (a read-only index folder) leaves the server answering, unlogged.
        self.query_log: BackgroundQueryLog | None = None
        self.query_log_problem: str | None = None
        self._hash_key: bytes | None = None
        if settings.query_log != "off":
            try:
                log = open_query_log(settings.location)
                try:
                    self._hash_key = log.hash_key() if settings.query_log == "hashed" else None
                except BertsearchError:
                    log.close()
                    raise
                self.query_log = BackgroundQueryLog(log)
            except BertsearchError as exc:
                self.query_log_problem = str(exc)
        self.searcher.search("warm up the caches", k=1, mode="hybrid" if self.store.stats().passages else "bm25")

    async def search(self, query: str, k: int, mode: str, filter: SearchFilter, rerank: bool | None,
                     respond: Callable[[SearchResult], T]) -> T:
        """`respond` to the search's result, computed without a thread waiting while the query is encoded.

        The event loop awaits the vector; the rest (retrieval, fusion, reranking, the query log, `respond`)
        runs on the search thread, or on the pool for a store whose reads run in parallel and for reranking
        (which waits ~100 ms for the worker)."""
        pending = self.searcher.start(query, k, mode, filter, rerank)
        vector = None
        if pending.needs_vector:
            started = time.perf_counter()
            vector = await self.worker.encode_query_async(pending.text, self.settings.search_timeout)
            pending.timings["encode"] = ms_since(started)
        executor = self._search_thread if self._search_thread is not None and not pending.reranking else self._pool
        return await asyncio.get_running_loop().run_in_executor(executor, self._finish, pending, vector, respond)

    def _finish(self, pending: PendingSearch, vector: np.ndarray | None, respond: Callable[[SearchResult], T]) -> T:
        result = self.searcher.finish(pending, vector)
        if self.query_log is not None:
            self.query_log.record(query_event(result, pending.k, self.location, origin="server",
                                              hash_key=self._hash_key, index_stats=self.index_stats()))
        return respond(result)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.worker.encode_bulk(texts, self.settings.search_timeout)

    def get_document(self, doc_id: str) -> Document | None:
        return self.store.get_document(doc_id)

    def put_documents(self, documents: list[Document]) -> IndexSummary:
        """Add or replace `documents`; they are committed (durable, searchable) when this returns."""
        with self._write_lock:
            summary = self.indexer.index_documents(documents)
        self._stats = None
        return summary

    def delete_document(self, doc_id: str) -> bool:
        """Delete one document; False if there was none. Committed when this returns."""
        with self._write_lock:
            if self.store.get_document(doc_id) is None:
                return False
            self.store.delete([doc_id])
        self._stats = None
        return True

    def index_stats(self, fresh: bool = False) -> StoreStats:
        with self._stats_lock:
            cached = self._stats
            if fresh or cached is None or time.monotonic() - cached[0] > STATS_MAX_AGE:
                cached = (time.monotonic(), self.store.stats())
                self._stats = cached
            return cached[1]

    def query_stats(self, since: datetime | None) -> QueryStats:
        """The dashboard figures from this index's query log (events still queued are written first)."""
        if self.query_log is None:
            return compute_query_stats([], self.index_stats(fresh=True), since)
        self.query_log.flush()
        return read_query_stats(self.query_log.log, self.index_stats(fresh=True), since)

    def close(self) -> None:
        """Stop the worker, write the queued query events, and close the store (which saves its vectors)."""
        self.worker.stop()
        for executor in (self._search_thread, self._pool):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        if self.query_log is not None:
            self.query_log.close()
        self.store.close()
