"""The inference worker in-process: concurrent queries batched into shared forward passes, right vectors back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from bertsearch.models.base import TextEncoder
from bertsearch.models.encoder import Encoder
from bertsearch.server.batching import InferenceWorker, WorkerBusyError, WorkerEncoder

TOPICS = ["protein folding", "vitamin D", "tides", "stock markets", "jazz", "volcanoes", "sleep", "bridges"]
# 24 distinct queries of 1-4 topics: different lengths, so batches pad them to different widths.
QUERIES = [" and ".join(TOPICS[(n + i) % len(TOPICS)] for i in range(1 + n // 8 + n % 2)) + "?" for n in range(24)]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def test_concurrent_queries_share_forward_passes_and_get_their_own_vectors(encoder: Encoder) -> None:
    expected = {query: encoder.encode_query(query) for query in QUERIES}
    began = time.monotonic()
    worker = InferenceWorker(encoder)
    try:
        assert encoder.releases_gil  # forward passes must not wait on request threads for the GIL
        results: dict[str, np.ndarray] = {}
        start = threading.Barrier(len(QUERIES))

        def ask(query: str) -> None:
            start.wait()
            results[query] = worker.encode_query(query, timeout=60)

        threads = [threading.Thread(target=ask, args=(query,)) for query in QUERIES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(results) == set(QUERIES)
        for query in QUERIES:  # padded with others in bf16: the same vector up to rounding
            assert float(results[query] @ expected[query]) > 0.999, query
        assert worker.queries_encoded == len(QUERIES)
        assert worker.query_batches < len(QUERIES)  # 24 queries at once cannot all have gone one by one
        assert 0 < worker.busy_seconds < time.monotonic() - began
    finally:
        worker.stop()


def test_a_stopped_worker_refuses_work(encoder: Encoder) -> None:
    worker = InferenceWorker(encoder)
    worker.stop()
    with pytest.raises(WorkerBusyError, match="shutting down"):
        worker.encode_query("too late", timeout=5)


def test_the_worker_encoder_is_a_text_encoder_and_nothing_more(encoder: Encoder) -> None:
    """Searcher and Indexer see it through `TextEncoder`; it has none of `Encoder`'s model internals."""
    worker = InferenceWorker(encoder)
    try:
        seen = WorkerEncoder(worker, timeout=60)
        assert isinstance(seen, TextEncoder) and not isinstance(seen, Encoder)
        assert seen.info == encoder.info and seen.tokenizer is not encoder.tokenizer  # its own copy
        assert float(seen.encode_query("tides") @ encoder.encode_query("tides")) > 0.999
        assert seen.encode(["tides", "jazz"]).shape == (2, encoder.info.dimensions)
    finally:
        worker.stop()


def test_coroutines_await_their_vectors_in_shared_passes_and_time_out_cleanly(encoder: Encoder) -> None:
    """The server's search handler awaits `encode_query_async`: no thread waits, the batching is the same."""
    worker = InferenceWorker(encoder)
    try:
        async def ask_all() -> list[np.ndarray]:
            return await asyncio.gather(*(worker.encode_query_async(query, timeout=60) for query in QUERIES))

        vectors = asyncio.run(ask_all())
        for query, vector in zip(QUERIES, vectors):
            assert float(vector @ encoder.encode_query(query)) > 0.999, query
        assert worker.queries_encoded == len(QUERIES) and worker.query_batches < len(QUERIES)

        # The worker busy with a slow job: the query's wait ends at its timeout, and the query is dropped.
        slow = threading.Thread(target=worker.rerank, args=(lambda: time.sleep(1.0), 10))
        slow.start()
        time.sleep(0.1)
        began = time.monotonic()
        with pytest.raises(WorkerBusyError, match="waited more than 0.2 s"):
            asyncio.run(worker.encode_query_async("tides", timeout=0.2))
        assert time.monotonic() - began < 0.9
        slow.join()
        assert worker.queries_encoded == len(QUERIES)  # the dropped query was never encoded
    finally:
        worker.stop()
