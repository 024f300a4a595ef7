"""The FastAPI application: the API routes, the search and stats pages, and errors that say what to fix.

Client mistakes answer 4xx with a one-line `error` (and pydantic's `detail` for invalid bodies); failures of the
server answer 5xx with a generic message and a request id, the details going only to the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bertsearch.errors import (
    BackendError,
    BertsearchError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidQueryError,
    NoRerankerError,
    ReadOnlyIndexError,
)
from bertsearch.server.batching import WorkerBusyError
from bertsearch.server.routes import router
from bertsearch.server.schemas import MAX_BODY_BYTES
from bertsearch.server.service import SearchService

STATIC = Path(__file__).resolve().parent / "static"
logger = logging.getLogger("bertsearch.server")


def create_app(service: SearchService) -> FastAPI:
    """The HTTP application over `service`, which it closes on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="bertsearch",
        summary="Semantic search over your own documents: dense, BM25, hybrid, reranked.",
        version="0.1.0",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN, which an offline server cannot promise.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestBodyLimits, max_bytes=MAX_BODY_BYTES, timeout=service.settings.body_timeout)

    @app.get("/", include_in_schema=False)
    def search_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/stats", include_in_schema=False)
    def stats_page() -> FileResponse:
        return FileResponse(STATIC / "stats.html")

    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's messages and locations, without echoing the (possibly huge) input back; a location may be a
        # key that is not valid text, which the JSON answer could not carry as it is.
        detail = [{"loc": [_printable(part) for part in e.get("loc", ())], "msg": _printable(e.get("msg", "")),
                   "type": e.get("type", "")} for e in exc.errors()]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        message = str(first["msg"])
        return _error(422, f"{where}: {message}" if where else message, detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(InvalidQueryError)
    async def invalid_query(request: Request, exc: InvalidQueryError) -> JSONResponse:
        if isinstance(exc, NoRerankerError):
            return _error(400, f'{exc}: send "rerank": false, or leave it out', field="rerank")
        return _error(400, str(exc))

    @app.exception_handler(WorkerBusyError)
    async def busy(request: Request, exc: WorkerBusyError) -> JSONResponse:
        return _error(503, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(BertsearchError)
    async def backend_failure(request: Request, exc: BertsearchError) -> JSONResponse:
        if isinstance(exc, ReadOnlyIndexError):
            return _error(409, "the index is read-only: it can be searched, not written")
        if isinstance(exc, IndexNotFoundError):
            return _error(503, "the index is not available", request_id=_log_failure(request, exc))
        if isinstance(exc, BackendError):
            return _error(503, "the search backend is unavailable", request_id=_log_failure(request, exc))
        if isinstance(exc, IndexMismatchError):  # the index changed under the running server: not the client's fault
            return _error(503, str(exc), request_id=_log_failure(request, exc))
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal error", request_id=_log_failure(request, exc))


def _log_failure(request: Request, exc: BaseException) -> str:
    """Log the failure with its traceback under a new request id, which the client gets instead of internals."""
    request_id = uuid.uuid4().hex[:12]
    logger.error("request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    return request_id


def _printable(part: object) -> object:
    """`part` of an error location, a string with any lone surrogate written as an escape."""
    return part.encode("utf-8", errors="backslashreplace").decode("utf-8") if isinstance(part, str) else part


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


class RequestBodyLimits:
    """Refuses a request body over `max_bytes` with 413, by its Content-Length or while it streams in, and one
    still incomplete `timeout` seconds after the request began with 408, closing the connection: a client that
    declares a longer body than it sends would otherwise hold its connection open for as long as it likes.
    (The HTTPExceptions raised from `receive` reach the handlers like any other.)"""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _error(413, self._message())(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        received = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # later calls only wait for the client to disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise StarletteHTTPException(408, f"the request body did not arrive within {self.timeout:g} s",
                                             headers={"Connection": "close"}) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"
