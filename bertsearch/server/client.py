"""A client for a running `bertsearch serve`: the query goes to the server, which has its models loaded already.

Standard library only (urllib), so a query sent this way imports nothing heavy. The API key comes from
$BERTSEARCH_API_KEY, as it does for the server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bertsearch.errors import BackendError, BertsearchError, InvalidQueryError
from bertsearch.search import SearchResult
from bertsearch.stores.base import SearchFilter
from bertsearch.types import Hit, HitScores

API_KEY_ENV = "BERTSEARCH_API_KEY"
# A search answers in milliseconds, or within the server's own --search-timeout (10 s by default).
TIMEOUT_SECONDS = 30.0


def search_server(url: str, query: str, k: int = 10, mode: str = "hybrid", filter: SearchFilter | None = None,
                  rerank: bool | None = None, api_key: str | None = None,
                  timeout: float = TIMEOUT_SECONDS) -> SearchResult:
    """The server's answer to `query` (POST /api/search) as the `SearchResult` a local search gives.

    Raises InvalidQueryError for a query the server refuses (4xx), BackendError if it cannot be reached, answers
    with an error (5xx), or does not speak bertsearch's API.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BertsearchError(f"not a server URL: {url!r} (expected http://HOST:PORT or https://HOST:PORT)")
    filter = filter or SearchFilter()
    body = {"query": query, "k": k, "mode": mode, "rerank": rerank,
            "filters": {"source_prefix": filter.source_prefix, "metadata": dict(filter.metadata)}}
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    endpoint = url.rstrip("/") + "/api/search"
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = _json_body(response.read(), endpoint)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc, endpoint) from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendError(f"cannot reach the bertsearch server at {url}: {reason}") from None
    try:
        hits = [Hit(doc_id=hit["doc_id"], score=float(hit["score"]), title=hit["title"], passage=hit["passage"],
                    passage_position=int(hit["passage_position"]), source=hit.get("source", ""),
                    scores=HitScores.from_dict(hit.get("scores", {})))
                for hit in answer["hits"]]
        return SearchResult(query=answer["query"], mode=answer["mode"], hits=hits,
                            timings_ms={name: float(value) for name, value in answer.get("timings_ms", {}).items()},
                            reranked=bool(answer.get("reranked", False)))
    except (KeyError, TypeError, ValueError):
        raise BackendError(f"{endpoint} did not answer as a bertsearch server does") from None


def _json_body(data: bytes, endpoint: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise BackendError(f"{endpoint} did not answer as a bertsearch server does (not JSON)") from None


def _refusal(error: urllib.error.HTTPError, endpoint: str) -> BertsearchError:
    """The server's own one-line reason for a 4xx or 5xx, as the error the caller raises."""
    try:
        answer = json.loads(error.read())
        reason = str(answer.get("error") or answer)
        detail = answer.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and detail[0].get("msg"):
            field = ".".join(str(part) for part in detail[0].get("loc", [])[1:])
            reason = f"{reason}: {field + ': ' if field else ''}{detail[0]['msg']}"
        if answer.get("request_id"):
            reason += f" (request id {answer['request_id']})"
    except (ValueError, AttributeError, OSError):
        reason = error.reason
    if error.code == 401:
        return BertsearchError(f"the server at {endpoint} needs an API key: set ${API_KEY_ENV} ({reason})")
    if 400 <= error.code < 500:
        return InvalidQueryError(f"the server refused the query ({error.code}): {reason}")
    return BackendError(f"the server answered {error.code}: {reason}")
