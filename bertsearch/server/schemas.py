"""Request and response bodies of the HTTP API, with the limits that keep one request from starving the rest."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bertsearch.text import has_lone_surrogate

# Limits: a search asks for at most MAX_K hits; a document holds at most MAX_DOCUMENT_CHARS characters
# (~250 passages, which holds the encoder for seconds, not minutes); a write carries at most MAX_DOCUMENTS_PER_REQUEST
# documents; an embeddings request at most MAX_EMBEDDING_TEXTS texts of MAX_EMBEDDING_CHARS characters.
MAX_K = 100
MAX_QUERY_CHARS = 2_000
MAX_DOCUMENT_CHARS = 200_000
MAX_DOCUMENTS_PER_REQUEST = 100
MAX_EMBEDDING_TEXTS = 64
MAX_EMBEDDING_CHARS = 10_000
MAX_ID_CHARS = 512
MAX_METADATA_KEYS = 32
# Bodies larger than this are refused (413) before they are read whole.
MAX_BODY_BYTES = 8 * 1024 * 1024


def _valid_text(value: str) -> str:
    if has_lone_surrogate(value):
        raise ValueError("not valid Unicode (it holds a lone surrogate)")
    return value


def _valid_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    return _valid_text(value) if isinstance(value, str) else value


# Every string of every request body, dictionary keys included, is one of these: pydantic's own check of a plain
# `str` misses lone surrogates in keys and in unions, and the store cannot hold them.
Text = Annotated[str, AfterValidator(_valid_text)]
# Metadata is stored as given and read back the same, so a value JSON cannot hold is refused, not changed.
MetadataValue = Annotated[str | int | float | bool | None, AfterValidator(_valid_value)]
FilterValue = Annotated[str | int | float | bool, AfterValidator(_valid_value)]


class Strict(BaseModel):
    """Unknown fields are an error, so a misspelt option is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SearchFilters(Strict):
    source_prefix: Text | None = Field(None, max_length=4096,
                                          description="Only documents whose source starts with this.")
    metadata: dict[Text, FilterValue] = Field(
        default_factory=dict, max_length=MAX_METADATA_KEYS, description="Only documents with these metadata values."
    )


class SearchRequest(Strict):
    query: Text = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K, description="Number of documents to return.")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    rerank: bool | None = Field(None, description="Rerank with the cross-encoder [default: if the index has one].")
    filters: SearchFilters = Field(default_factory=SearchFilters)


class SearchHit(BaseModel):
    rank: int
    doc_id: str
    title: str
    source: str
    passage: str
    passage_position: int
    snippet: str = Field(description="The best window of the passage for the query.")
    highlights: list[tuple[int, int]] = Field(description="Character spans of query words in `snippet`.")
    score: float = Field(description="The score the hits are ranked by.")
    retrieval_score: float = Field(description="The first-stage score (RRF for hybrid, cosine for dense, BM25).")
    rerank_score: float | None = Field(None, description="The cross-encoder's score, when reranked.")
    scores: dict[str, float]


class SearchResponse(BaseModel):
    query: str
    mode: str
    k: int
    reranked: bool
    hits: list[SearchHit]
    timings_ms: dict[str, float]


class DocumentBody(Strict):
    title: Text = Field("", max_length=4096)
    text: Text = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    source: Text = Field("", max_length=4096)
    metadata: dict[Text, MetadataValue] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)


class DocumentIn(DocumentBody):
    doc_id: Text = Field(min_length=1, max_length=MAX_ID_CHARS)


class DocumentsRequest(Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    text: str
    source: str
    metadata: dict[str, str | int | float | bool | None]


class WriteResponse(BaseModel):
    added: int
    updated: int
    unchanged: int
    skipped: int
    passages_encoded: int
    seconds: float
    durable: bool = Field(description="True: committed to the store and searchable; it survives a crash.")


class DeleteResponse(BaseModel):
    doc_id: str
    deleted: bool
    durable: bool


class EmbeddingsRequest(Strict):
    texts: list[Annotated[Text, Field(min_length=1, max_length=MAX_EMBEDDING_CHARS)]] = Field(
        min_length=1, max_length=MAX_EMBEDDING_TEXTS
    )


class EmbeddingsResponse(BaseModel):
    model: str
    dimensions: int
    vectors: list[list[float]] = Field(description="One L2-normalised vector per text, in order.")


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    ready: bool
    backend: str
    documents: int
    passages: int
    model: str
    reranker: str | None
    query_log: str
    query_log_failures: int
    queries_encoded: int
    query_batches: int
    worker_busy_seconds: float


class ErrorResponse(BaseModel):
    error: str
    field: str | None = Field(None, description="The request field to change, when one can fix the error.")
    detail: list[dict] | None = None
    request_id: str | None = None
