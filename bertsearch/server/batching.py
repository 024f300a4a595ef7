"""One inference worker for all model work, micro-batching concurrent queries.

Two CPU cores cannot run several forward passes at once without each slowing the others down (threads
spin-wait for cores), so one thread owns the models and the request threads hand it work:

- query encodings, batched: whatever queries are waiting when the worker is free are encoded together in one
  forward pass, laid end to end in rows rather than padded (`Encoder.encode_queries`);
- reranking, one query at a time (each is already a batch of passages);
- bulk encoding (document writes, the embeddings endpoint), cut into small chunks.

Each round the worker runs one query batch, then one rerank, then one bulk chunk, so a large write delays
queries by at most one chunk, and queries never starve writes. Everything else (store searches, fusion, JSON)
runs on other threads in parallel with the next forward pass; a search's coroutine awaits its vector
(`encode_query_async`) without holding a thread.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import numpy as np

from bertsearch.errors import BertsearchError
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.models.encoder import Encoder
from bertsearch.rerank import Reranker
from bertsearch.types import Hit

T = TypeVar("T")

# Queries per forward pass: more would lengthen every query's wait without making the pass cheaper per query.
MAX_QUERY_BATCH = 16
# Texts per bulk chunk: a query waits behind at most one chunk, ~0.3 s of encoding of full 256-token passages on
# the worker's one thread.
BULK_CHUNK_TEXTS = 8


class WorkerBusyError(BertsearchError):
    """The worker has too much waiting work, or a request waited longer than its timeout."""


class InferenceWorker:
    """The thread that runs every forward pass; request threads submit work and wait for its result."""

    def __init__(self, encoder: Encoder, max_pending: int = 256, max_batch: int = MAX_QUERY_BATCH) -> None:
        self.encoder = encoder
        # Request threads run Python beside every forward pass; an eager one would wait on them for the GIL.
        encoder.release_gil()
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.query_batches = 0
        self.queries_encoded = 0
        # Seconds spent running work (all lanes) since start: over a span of time, how busy the worker was.
        self.busy_seconds = 0.0
        self._condition = threading.Condition()
        self._queries: deque[tuple[str, Future]] = deque()
        self._reranks: deque[tuple[Callable[[], object], Future]] = deque()
        self._bulk: deque[tuple[Callable[[], object], Future]] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def encode_query(self, text: str, timeout: float) -> np.ndarray:
        """The query's vector, encoded in a batch with whatever other queries are waiting."""
        return self._wait(self.submit_query(text), timeout)

    async def encode_query_async(self, text: str, timeout: float) -> np.ndarray:
        """`encode_query` for a coroutine: the event loop waits for the vector, no thread does."""
        future = self.submit_query(text)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()  # dropped if still waiting; if running, its result is discarded
            raise WorkerBusyError(_timeout_message(timeout)) from None

    def submit_query(self, text: str) -> Future:
        """Queue `text` for the next query batch; the future's result is its vector."""
        future: Future = Future()
        self._submit(self._queries, (text, future), interactive=True)
        return future

    def rerank(self, rerank: Callable[[], list[Hit]], timeout: float) -> list[Hit]:
        """Run one query's reranking on the worker."""
        future: Future = Future()
        self._submit(self._reranks, (rerank, future), interactive=True)
        return self._wait(future, timeout)

    def encode_bulk(self, texts: Sequence[str], timeout: float) -> np.ndarray:
        """Vectors of `texts`, encoded in chunks interleaved with the queries that arrive meanwhile, all within
        `timeout` seconds (chunks not started by then are dropped)."""
        if not texts:
            return np.zeros((0, self.encoder.info.dimensions), dtype=np.float32)
        futures: list[Future] = []
        for start in range(0, len(texts), BULK_CHUNK_TEXTS):
            chunk = list(texts[start : start + BULK_CHUNK_TEXTS])
            future: Future = Future()
            self._submit(self._bulk, (lambda chunk=chunk: self.encoder.encode(chunk), future), interactive=False)
            futures.append(future)
        deadline = time.monotonic() + timeout
        try:
            return np.concatenate([self._wait(future, max(0.0, deadline - time.monotonic())) for future in futures])
        finally:
            for future in futures:
                future.cancel()

    def stop(self) -> None:
        """Finish the work in hand, cancel what waits, and end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout=60)

    def _submit(self, lane: deque, job: tuple, interactive: bool) -> None:
        with self._condition:
            if self._stopping:
                raise WorkerBusyError("the server is shutting down")
            if interactive and len(self._queries) + len(self._reranks) >= self.max_pending:
                raise WorkerBusyError(f"too many queries waiting ({self.max_pending}); retry shortly")
            lane.append(job)
            self._condition.notify()

    @staticmethod
    def _wait(future: Future, timeout: float):  # noqa: ANN205 - the job's result
        try:
            return future.result(timeout)
        except FutureTimeout:
            # A job still waiting is dropped; one already running finishes and its result is discarded.
            future.cancel()
            raise WorkerBusyError(_timeout_message(timeout)) from None

    def _run(self) -> None:
        import torch

        # One thread: more would spin-wait against the request threads for the same cores.
        torch.set_num_threads(1)
        while True:
            with self._condition:
                while not (self._queries or self._reranks or self._bulk or self._stopping):
                    self._condition.wait()
                if self._stopping:
                    for lane in (self._queries, self._reranks, self._bulk):
                        for _, future in lane:
                            future.cancel()
                        lane.clear()
                    return
                queries = [self._queries.popleft() for _ in range(min(self.max_batch, len(self._queries)))]
                rerank = self._reranks.popleft() if self._reranks else None
                bulk = self._bulk.popleft() if self._bulk else None
            started = time.perf_counter()
            self._encode_queries(queries)
            for job in (rerank, bulk):
                if job is not None:
                    _run_job(*job)
            self.busy_seconds += time.perf_counter() - started

    def _encode_queries(self, jobs: list[tuple[str, Future]]) -> None:
        live = [(text, future) for text, future in jobs if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            texts = [text for text, _ in live]
            vectors = self.encoder.encode_queries(texts)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
            for _, future in live:
                future.set_exception(exc)
            return
        self.query_batches += 1
        self.queries_encoded += len(live)
        for (_, future), vector in zip(live, vectors, strict=True):
            future.set_result(vector)


def _timeout_message(timeout: float) -> str:
    return f"the request waited more than {timeout:g} s for the model; retry shortly"


def _run_job(function: Callable[[], object], future: Future) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(function())
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, which reports it
        future.set_exception(exc)


class WorkerEncoder:
    """The encoder as the searcher and the indexer see it (a `TextEncoder`), with every forward pass run by
    the worker. Its tokenizer, used by the indexer to chunk documents in a request thread, is a copy: a fast
    tokenizer must not be used by two threads at once, and the worker's is busy encoding."""

    def __init__(self, worker: InferenceWorker, timeout: float) -> None:
        self.worker = worker
        self.timeout = timeout
        self.info = worker.encoder.info
        self._tokenizer = copy.deepcopy(worker.encoder.tokenizer)

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self._tokenizer

    def encode(self, texts: list[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        return self.worker.encode_bulk(texts, self.timeout)

    def encode_query(self, text: str) -> np.ndarray:
        return self.worker.encode_query(text, self.timeout)


class WorkerReranker(Reranker):
    """A loaded reranker whose scoring runs on the worker; shares the loaded one's weights (no second load)."""

    def __init__(self, worker: InferenceWorker, reranker: Reranker, timeout: float) -> None:
        # Like the encoder's: request threads run Python beside its forward passes.
        assert isinstance(reranker.scorer, CrossEncoder), "a server's reranker runs on torch"
        reranker.scorer.release_gil()
        self.worker = worker
        self.timeout = timeout
        self.loaded = reranker
        self.metadata = reranker.metadata
        self.folder = reranker.folder
        self.weight = reranker.weight
        self.scorer = reranker.scorer

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return self.worker.rerank(lambda: self.loaded.rerank(query, hits), self.timeout)
