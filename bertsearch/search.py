"""The query pipeline: retrieve (dense, BM25) → fuse → one hit per document → rerank (if configured)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from bertsearch.errors import InvalidQueryError, NoRerankerError
from bertsearch.fusion import reciprocal_rank_fusion
from bertsearch.models.base import QueryEncoder
from bertsearch.models.faithfulness import check_index_encodings
from bertsearch.models.loading import load_query_encoder
from bertsearch.rerank import DEFAULT_RERANK_DEPTH, Reranker, configured_reranker
from bertsearch.settings import read_encodings
from bertsearch.stores import SearchFilter, Store, StoreLocation, open_store
from bertsearch.text import has_lone_surrogate
from bertsearch.types import Hit, HitScores, Mode, PassageHit

MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
MAX_K = 1000
# Each retriever contributes this many documents to hybrid fusion: deep enough that a document ranked
# well by one retriever and poorly by the other still survives fusion.
FUSION_DEPTH = 100
MAX_QUERY_CHARS = 10_000


@dataclass
class SearchResult:
    """Ranked hits, whether the cross-encoder reranked them, and how long each stage took (milliseconds)."""

    query: str
    mode: Mode
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranked: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "mode": self.mode,
            "reranked": self.reranked,
            "hits": [hit.to_dict() for hit in self.hits],
            "timings_ms": self.timings_ms,
        }


@dataclass
class PendingSearch:
    """A search that `Searcher.start` validated and began, waiting for its query's vector if `needs_vector`."""

    text: str
    mode: Mode
    k: int
    retrieve_k: int  # k, or the rerank depth if deeper
    depth: int  # documents asked of each retriever
    filter: SearchFilter | None
    reranking: bool
    began: float
    timings: dict[str, float] = field(default_factory=dict)
    keyword: Future | None = None  # hybrid's BM25, running meanwhile

    @property
    def needs_vector(self) -> bool:
        return self.mode in ("dense", "hybrid")

    @property
    def fuses(self) -> bool:
        """Hybrid: each retriever returns ids and scores only, and the text of the fused ranking's final hits is read
        after fusion (`Store.with_texts`). One retriever's hits are the ones shown, so it reads their text itself:
        a second request would cost Elasticsearch a round trip (measured: +9% on a dense query)."""
        return self.mode == "hybrid"


def best_passage_per_document(hits: Sequence[PassageHit]) -> list[PassageHit]:
    """Keep each document's first (best) passage, in rank order."""
    seen: set[str] = set()
    best = []
    for hit in hits:
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            best.append(hit)
    return best


def validate_query(query: str, k: int, mode: str) -> str:
    """The stripped query, or InvalidQueryError naming what is wrong."""
    text = query.strip()
    if not text:
        raise InvalidQueryError("the query is empty")
    if has_lone_surrogate(text):  # bytes that are not UTF-8 (a command line's arguments) or a "\ud800" escape
        raise InvalidQueryError("the query is not valid UTF-8 text")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQueryError(f"the query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if mode not in MODES:
        raise InvalidQueryError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not 1 <= k <= MAX_K:
        raise InvalidQueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return text


class Searcher:
    """Runs queries against a store; the encoder is loaded only when a dense retriever needs it, the reranker
    only when a query reranks. With a reranker, queries rerank the top `rerank_depth` hits unless told not to."""

    def __init__(
        self,
        store: Store,
        encoder: QueryEncoder | Callable[[], QueryEncoder],
        reranker: Reranker | Callable[[], Reranker] | None = None,
        rerank_depth: int = DEFAULT_RERANK_DEPTH,
    ) -> None:
        self.store = store
        self._encoder = encoder
        self._reranker = reranker
        self.rerank_depth = rerank_depth
        self._keyword_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bm25")

    @property
    def reranker(self) -> Reranker | None:
        if self._reranker is not None and not isinstance(self._reranker, Reranker):
            self._reranker = self._reranker()
        return self._reranker

    @property
    def has_reranker(self) -> bool:
        return self._reranker is not None

    @property
    def encoder(self) -> QueryEncoder:
        if not isinstance(self._encoder, QueryEncoder):
            self._encoder = self._encoder()
        return self._encoder

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filter: SearchFilter | None = None,
        rerank: bool | None = None,
    ) -> SearchResult:
        """The top `k` documents for `query`, each represented by its best passage.

        `rerank` None reranks if the searcher has a reranker; True without one is an InvalidQueryError.
        """
        pending = self.start(query, k, mode, filter, rerank)
        vector = None
        if pending.needs_vector:
            started = time.perf_counter()
            vector = self.encoder.encode_query(pending.text)
            pending.timings["encode"] = ms_since(started)
        return self.finish(pending, vector)

    def start(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filter: SearchFilter | None = None,
        rerank: bool | None = None,
    ) -> PendingSearch:
        """`search` up to the query's vector: the query validated and, for hybrid, BM25 started on its own
        thread. A server then awaits the vector without holding a thread, and calls `finish`."""
        began = time.perf_counter()
        text = validate_query(query, k, mode)
        if rerank and not self.has_reranker:
            raise NoRerankerError("no reranker configured for this index")
        reranking = self.has_reranker if rerank is None else rerank
        retrieve_k = max(k, self.rerank_depth) if reranking else k
        depth = max(retrieve_k, FUSION_DEPTH) if mode == "hybrid" else retrieve_k
        pending = PendingSearch(text, cast(Mode, mode), k, retrieve_k, depth, filter, reranking, began)
        # Hybrid runs BM25 on another thread while the query is encoded: both release the GIL (SQLite,
        # torch), so the keyword search costs no wall time when a core is free.
        if mode == "hybrid":
            pending.keyword = self._keyword_pool.submit(self._keyword_documents, pending)
        return pending

    def finish(self, pending: PendingSearch, vector: np.ndarray | None) -> SearchResult:
        """The rest of `search` once the query's vector (None for BM25) is known: retrieval, fusion, reranking."""
        timings = pending.timings
        dense = bm25 = None
        if pending.needs_vector:
            if vector is None:
                raise ValueError(f"a {pending.mode} search needs the query's vector")
            start = time.perf_counter()
            dense = self._documents(
                lambda n: self.store.dense_search(vector, n, pending.filter, texts=not pending.fuses), pending.depth
            )
            timings["dense"] = ms_since(start)
        if pending.keyword is not None:
            bm25 = pending.keyword.result()
        elif pending.mode == "bm25":
            bm25 = self._keyword_documents(pending)
        k = pending.retrieve_k
        if dense is not None and bm25 is not None:
            start = time.perf_counter()
            ranked = _fuse(dense, bm25)[:k]
            timings["fuse"] = ms_since(start)
        else:
            single = dense if dense is not None else bm25
            assert single is not None
            ranked = [(p, p.score, HitScores(**{pending.mode: p.score})) for p in single[:k]]
        if pending.fuses:  # the text of the passages that are shown (or reranked) is read now
            passages = {(p.doc_id, p.position): p for p in self.store.with_texts([p for p, _, _ in ranked])}
            ranked = [(passages[key], score, scores) for p, score, scores in ranked
                      if (key := (p.doc_id, p.position)) in passages]
        hits = [_hit(p, score, scores) for p, score, scores in ranked]
        if pending.reranking:
            start = time.perf_counter()
            reranker = self.reranker
            assert reranker is not None
            depth = self.rerank_depth
            hits = (reranker.rerank(pending.text, hits[:depth]) + hits[depth:])[: pending.k]
            timings["rerank"] = ms_since(start)
        timings["total"] = ms_since(pending.began)
        return SearchResult(query=pending.text, mode=pending.mode, hits=hits, timings_ms=timings,
                            reranked=pending.reranking)

    def _keyword_documents(self, pending: PendingSearch) -> list[PassageHit]:
        start = time.perf_counter()
        found = self._documents(
            lambda n: self.store.keyword_search(pending.text, n, pending.filter, texts=not pending.fuses), pending.depth
        )
        pending.timings["bm25"] = ms_since(start)
        return found

    @staticmethod
    def _documents(retrieve: Callable[[int], list[PassageHit]], count: int) -> list[PassageHit]:
        """At least `count` distinct documents (if the index has them), asking for more passages as needed."""
        want = count * 3
        while True:
            passages = retrieve(want)
            documents = best_passage_per_document(passages)
            if len(documents) >= count or len(passages) < want or want >= 50 * count:
                return documents[:count]
            want *= 4


def _fuse(dense: list[PassageHit], bm25: list[PassageHit]) -> list[tuple[PassageHit, float, HitScores]]:
    """Reciprocal rank fusion of the two document rankings: each document's passage (the one its better retriever
    chose), fused score and per-retriever scores, best first."""
    dense_by_doc = {p.doc_id: (rank, p) for rank, p in enumerate(dense)}
    bm25_by_doc = {p.doc_id: (rank, p) for rank, p in enumerate(bm25)}
    ranking = reciprocal_rank_fusion([[p.doc_id for p in dense], [p.doc_id for p in bm25]])
    fused = []
    for doc_id, score in ranking:
        in_dense, in_bm25 = dense_by_doc.get(doc_id), bm25_by_doc.get(doc_id)
        candidates = [c for c in (in_dense, in_bm25) if c is not None]
        best = min(candidates, key=lambda c: c[0])[1]
        scores = HitScores(dense=in_dense[1].score if in_dense else None, bm25=in_bm25[1].score if in_bm25 else None,
                           fused=score)
        fused.append((best, score, scores))
    return fused


def _hit(passage: PassageHit, score: float, scores: HitScores) -> Hit:
    return Hit(
        doc_id=passage.doc_id,
        score=score,
        title=passage.title,
        passage=passage.text,
        passage_position=passage.position,
        source=passage.source,
        scores=scores,
    )


def ms_since(start: float) -> float:
    """Milliseconds since `start`, a `time.perf_counter()` reading: how every stage and latency is timed."""
    return (time.perf_counter() - start) * 1000.0


def open_searcher(
    location: StoreLocation | Path,
    model_path: str | Path | None = None,
    reranker_path: str | Path | None = None,
    force_reranker: bool = False,
    rerank_depth: int | None = None,
    engine: str | None = None,
) -> Searcher:
    """A searcher over the index at `location`; the model is loaded (and checked) on the first dense query.

    The reranker is `reranker_path` if given, else the one recorded in the index folder (if any); its check
    is read now (a reranker that loses to the first stage is refused unless `force_reranker`), its weights
    on the first reranked query. `engine` ("torch" or "onnx") runs both models there; by default
    `bertsearch.device.query_engine` chooses.
    """
    index_dir = location.index_dir if isinstance(location, StoreLocation) else Path(location)
    store = open_store(location)
    settings = store.settings
    try:
        check_index_encodings(read_encodings(index_dir), engine)
        path = Path(reranker_path) if reranker_path is not None else None
        reranker, depth = configured_reranker(index_dir, path, force_reranker, rerank_depth, engine)
    except BaseException:
        store.close()
        raise
    return Searcher(
        store,
        lambda: load_query_encoder(settings.model_path, settings.model_fingerprint, model_path, engine),
        reranker,
        depth,
    )
