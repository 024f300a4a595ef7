"""The query event: what one query did, made from its `SearchResult`, and its form as stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from bertsearch.querylog.hashing import hash_query
from bertsearch.search import SearchResult
from bertsearch.stores import StoreLocation, StoreStats

# Stages of `SearchResult.timings_ms`, plus `retrieve` (dense + bm25, the time spent in the store).
LATENCY_STAGES = ("encode", "dense", "bm25", "retrieve", "fuse", "rerank", "total")
TOP_SCORES = 3


@dataclass(frozen=True)
class QueryEvent:
    """What one query did; stored flat, so each field is one column or one Elasticsearch field.

    `rerank_top_first_stage_rank` is the first-stage rank, among the returned hits, of the hit the reranker put
    first (1: reranking kept the top hit); None when the query was not reranked or found nothing.
    """

    timestamp: datetime
    query: str
    query_hashed: bool
    mode: str
    k: int
    reranked: bool
    hits: int
    zero_results: bool
    backend: str
    origin: str
    index: str
    latency_ms: dict[str, float]
    top_score: float | None = None
    top_scores: list[float] = field(default_factory=list)
    top_rerank_score: float | None = None
    rerank_top_first_stage_rank: int | None = None
    index_documents: int | None = None
    index_passages: int | None = None

    def to_document(self) -> dict[str, Any]:
        """The event as an Elasticsearch document (and the JSON the stats page reads)."""
        document = asdict(self)
        document["@timestamp"] = document.pop("timestamp").isoformat()
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> QueryEvent:
        values: dict[str, Any] = {f.name: document.get(f.name) for f in fields(cls) if f.name != "timestamp"}
        values["latency_ms"] = {k: float(v) for k, v in (values["latency_ms"] or {}).items() if v is not None}
        values["top_scores"] = list(values["top_scores"] or [])
        return cls(timestamp=_parse_time(document["@timestamp"]), **values)


# The mapping of the Elasticsearch data stream; the Kibana dashboards may reference only these fields.
QUERY_EVENT_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date"},
        "query": {"type": "keyword", "ignore_above": 1024},
        "query_hashed": {"type": "boolean"},
        "mode": {"type": "keyword"},
        "k": {"type": "integer"},
        "reranked": {"type": "boolean"},
        "hits": {"type": "integer"},
        "zero_results": {"type": "boolean"},
        "backend": {"type": "keyword"},
        "origin": {"type": "keyword"},
        "index": {"type": "keyword"},
        "latency_ms": {"properties": {stage: {"type": "float"} for stage in LATENCY_STAGES}},
        "top_score": {"type": "float"},
        "top_scores": {"type": "float"},
        "top_rerank_score": {"type": "float"},
        "rerank_top_first_stage_rank": {"type": "integer"},
        "index_documents": {"type": "long"},
        "index_passages": {"type": "long"},
    },
}


def query_event(
    result: SearchResult,
    k: int,
    location: StoreLocation,
    origin: str,
    hash_key: bytes | None = None,
    index_stats: StoreStats | None = None,
) -> QueryEvent:
    """The event describing `result`, a search for `k` hits in the index at `location`; with `hash_key` (the log's
    `QueryLog.hash_key`) the query is kept as its digest only."""
    hits = result.hits
    reranked = result.reranked
    timings = dict(result.timings_ms)
    if "dense" in timings or "bm25" in timings:
        timings["retrieve"] = timings.get("dense", 0.0) + timings.get("bm25", 0.0)
    first_stage_rank = None
    top_rerank = None
    if reranked and hits:
        top_rerank = hits[0].scores.rerank
        first = hits[0].first_stage_score
        first_stage_rank = 1 + sum(1 for hit in hits[1:] if hit.first_stage_score > first)
    return QueryEvent(
        timestamp=datetime.now(timezone.utc),
        query=hash_query(result.query, hash_key) if hash_key is not None else result.query,
        query_hashed=hash_key is not None,
        mode=result.mode,
        k=k,
        reranked=reranked,
        hits=len(hits),
        zero_results=not hits,
        backend=location.backend,
        origin=origin,
        index=location.index_name,
        latency_ms={stage: round(float(ms), 3) for stage, ms in timings.items() if stage in LATENCY_STAGES},
        top_score=hits[0].score if hits else None,
        top_scores=[hit.score for hit in hits[:TOP_SCORES]],
        top_rerank_score=top_rerank,
        rerank_top_first_stage_rank=first_stage_rank,
        index_documents=index_stats.documents if index_stats else None,
        index_passages=index_stats.passages if index_stats else None,
    )


def utc_iso(moment: datetime | None) -> str | None:
    """`moment` in UTC as ISO 8601, the form both logs store and compare timestamps in."""
    return moment.astimezone(timezone.utc).isoformat() if moment else None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
