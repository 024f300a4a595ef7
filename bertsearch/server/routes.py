"""The HTTP API: thin handlers that validate, call the `SearchService`, and shape the answer.

Handlers are plain functions, which FastAPI runs on its thread pool, except search: a coroutine, so that no
thread is held while its query waits for the inference worker.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from bertsearch.search import SearchResult
from bertsearch.server.schemas import (
    MAX_ID_CHARS,
    DeleteResponse,
    DocumentBody,
    DocumentIn,
    DocumentOut,
    DocumentsRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorResponse,
    HealthResponse,
    ReadyResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    WriteResponse,
)
from bertsearch.server.service import SearchService
from bertsearch.stores import SearchFilter
from bertsearch.text import query_terms, snippet
from bertsearch.types import Document

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 500, 503)
}
DocumentId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


# Dependencies are coroutines: they never block, and a plain function would cost each request a thread hop.
async def service(request: Request) -> SearchService:
    return request.app.state.service


def _require_key(request: Request, needed: bool) -> None:
    """401 unless the request carries the configured key (as `Authorization: Bearer KEY` or `X-API-Key`)."""
    key = request.app.state.service.settings.api_key
    if not needed or key is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPException(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})


async def reader(request: Request) -> None:
    _require_key(request, request.app.state.service.settings.protect_reads)


async def writer(request: Request) -> None:
    _require_key(request, True)


router = APIRouter(prefix="/api", responses=ERRORS)


@router.get("/health", response_model=HealthResponse, tags=["status"])
def health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse(status="ok")


@router.get("/ready", response_model=ReadyResponse, tags=["status"], dependencies=[Depends(reader)])
def ready(svc: SearchService = Depends(service)) -> ReadyResponse:
    """Readiness: models loaded and the store reachable (a store error answers 503)."""
    stats = svc.index_stats(fresh=True)
    log = svc.query_log
    return ReadyResponse(
        ready=True,
        backend=stats.backend,
        documents=stats.documents,
        passages=stats.passages,
        model=svc.model_path,
        reranker=svc.reranker_path,
        query_log=svc.settings.query_log if log else "off",
        query_log_failures=log.failures if log else 0,
        queries_encoded=svc.worker.queries_encoded,
        query_batches=svc.worker.query_batches,
        worker_busy_seconds=round(svc.worker.busy_seconds, 6),
    )


@router.post("/search", response_model=SearchResponse, tags=["search"], dependencies=[Depends(reader)])
async def search(body: SearchRequest, svc: SearchService = Depends(service)) -> Response:
    """The top `k` documents for `query`, each with its best passage, highlighted."""
    search_filter = SearchFilter(source_prefix=body.filters.source_prefix, metadata=dict(body.filters.metadata))
    return await svc.search(body.query, body.k, body.mode, search_filter, body.rerank,
                            respond=lambda result: _json(_search_response(result, body.k)))


@router.get("/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"],
            dependencies=[Depends(reader)])
def get_document(doc_id: DocumentId, svc: SearchService = Depends(service)) -> DocumentOut:
    """The whole stored document."""
    document = svc.get_document(doc_id)
    if document is None:
        raise HTTPException(404, f"no document {doc_id!r}")
    return DocumentOut(doc_id=document.doc_id, title=document.title, text=document.text, source=document.source,
                       metadata=document.metadata)


@router.put("/documents/{doc_id:path}", response_model=WriteResponse, tags=["documents"],
            dependencies=[Depends(writer)])
def put_document(body: DocumentBody, doc_id: DocumentId, svc: SearchService = Depends(service)) -> WriteResponse:
    """Add or replace one document: chunked, encoded and written as `bertsearch index` would."""
    return _write(svc, [DocumentIn(doc_id=doc_id, **body.model_dump())])


@router.post("/documents", response_model=WriteResponse, tags=["documents"], dependencies=[Depends(writer)])
def put_documents(body: DocumentsRequest, svc: SearchService = Depends(service)) -> WriteResponse:
    """Add or replace several documents in one request (unchanged ones are skipped by content hash)."""
    return _write(svc, body.documents)


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"],
               dependencies=[Depends(writer)])
def delete_document(doc_id: DocumentId, svc: SearchService = Depends(service)) -> DeleteResponse:
    """Remove a document and its passages."""
    if not svc.delete_document(doc_id):
        raise HTTPException(404, f"no document {doc_id!r}")
    return DeleteResponse(doc_id=doc_id, deleted=True, durable=True)


@router.post("/embeddings", response_model=EmbeddingsResponse, tags=["embeddings"], dependencies=[Depends(reader)])
def embeddings(body: EmbeddingsRequest, svc: SearchService = Depends(service)) -> EmbeddingsResponse:
    """The index's model applied to `texts`: one normalised vector each (what bert-as-service offered)."""
    vectors = svc.embed(body.texts)
    return EmbeddingsResponse(model=svc.model_path, dimensions=svc.dimensions, vectors=vectors.tolist())


@router.get("/stats", tags=["status"], dependencies=[Depends(reader)])
def stats(
    days: float = Query(30.0, gt=0, le=3660, description="Only queries of the last `days` days."),
    svc: SearchService = Depends(service),
) -> dict[str, Any]:
    """The dashboard figures: queries over time, latency per stage, zero results, rerank impact, index size."""
    since = datetime.now(timezone.utc) - timedelta(days=days)
    return svc.query_stats(since).to_dict()


def _write(svc: SearchService, documents: list[DocumentIn]) -> WriteResponse:
    summary = svc.put_documents([
        Document(doc_id=d.doc_id, text=d.text, title=d.title, source=d.source, metadata=d.metadata) for d in documents
    ])
    accounted = (summary.documents_added + summary.documents_updated + summary.documents_unchanged
                 + summary.documents_skipped)
    if accounted < len(documents):  # the store refused some: never answer "durable" for them
        raise HTTPException(503, f"{len(documents) - accounted} of {len(documents)} documents were not stored; "
                                 "retry the request")
    return WriteResponse(
        added=summary.documents_added,
        updated=summary.documents_updated,
        unchanged=summary.documents_unchanged,
        skipped=summary.documents_skipped,
        passages_encoded=summary.passages_encoded,
        seconds=summary.seconds,
        durable=True,
    )


def _json(model: BaseModel) -> Response:
    """`model` serialised by the calling thread; returned from a coroutine, FastAPI would serialise it (and
    validate it again) on the event loop."""
    return Response(model.model_dump_json(), media_type="application/json")


def _search_response(result: SearchResult, k: int) -> SearchResponse:
    terms = query_terms(result.query)
    hits = []
    for rank, hit in enumerate(result.hits, start=1):
        excerpt = snippet(hit.passage, terms)
        hits.append(SearchHit(
            rank=rank,
            doc_id=hit.doc_id,
            title=hit.title,
            source=hit.source,
            passage=hit.passage,
            passage_position=hit.passage_position,
            snippet=excerpt.text,
            highlights=excerpt.highlights,
            score=hit.score,
            retrieval_score=hit.first_stage_score,
            rerank_score=hit.scores.rerank,
            scores=hit.scores.to_dict(),
        ))
    return SearchResponse(query=result.query, mode=result.mode, k=k, reranked=result.reranked,
                          hits=hits, timings_ms=result.timings_ms)
