"""Elasticsearch failures as bertsearch sees them: which are transient (worth a retry), and one line for each of
the others, naming the cluster and what to fix, never credentials."""

from __future__ import annotations

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    ConnectionTimeout,
    SSLError,
    helpers,
)

from bertsearch.errors import BackendError, BertsearchError, IndexNotFoundError
from bertsearch.stores.elasticsearch.connection import ElasticsearchConnection

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class IncompleteAnswer(Exception):
    """A response reporting that some shards or items failed: transient on a cluster that is losing a node."""


def is_transient(exc: Exception) -> bool:
    if isinstance(exc, (IncompleteAnswer, helpers.ScanError)):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in TRANSIENT_STATUSES
    return isinstance(exc, (ConnectionError, ConnectionTimeout)) and not isinstance(exc, SSLError)


def backend_error(exc: Exception, connection: ElasticsearchConnection, name: str) -> BertsearchError:
    """`exc`, met while working on the index, alias or data stream `name`, as one line naming the cluster and
    what to fix; never credentials, which the URL no longer holds."""
    url = connection.url
    if isinstance(exc, AuthenticationException):
        return BackendError(
            f"Elasticsearch at {url} rejected the credentials (401): check the username and password or API key"
        )
    if isinstance(exc, AuthorizationException):
        return BackendError(f"Elasticsearch at {url} denied access to {name!r} (403): {reason(exc.body)}")
    if isinstance(exc, ApiError):
        if exc.meta.status == 404 and error_type(exc.body) == "index_not_found_exception":
            return index_not_found(connection, name)
        if exc.meta.status == 503 and error_type(exc.body) == "search_phase_execution_exception":
            # Elasticsearch's own reason goes on to suggest allowing partial results, which bertsearch never does.
            cause = reason(exc.body).split(". Consider using")[0]
            return BackendError(
                f"Elasticsearch at {url} cannot search every shard of {name!r}, and an answer from the "
                f"others would be incomplete: are the nodes holding its copies down? (503: {cause})"
            )
        return BackendError(f"Elasticsearch at {url} failed ({exc.meta.status}): {reason(exc.body)}")
    if isinstance(exc, SSLError):
        return BackendError(
            f"TLS failure talking to Elasticsearch at {url}: check the CA certificate or "
            f"turn verification off ({exc.message})", settings=("es_ca_certs", "es_verify_certs")
        )
    if isinstance(exc, ConnectionTimeout):
        return BackendError(f"Elasticsearch at {url} did not answer within {connection.request_timeout:g} s")
    if isinstance(exc, ConnectionError):
        return BackendError(f"cannot reach Elasticsearch at {url}: is it running, and is the URL right?")
    if isinstance(exc, (IncompleteAnswer, helpers.ScanError)):
        return BackendError(f"Elasticsearch at {url} answered only in part, even after retries: {exc}")
    return BackendError(f"Elasticsearch at {url} failed: {exc}")


def index_not_found(connection: ElasticsearchConnection, name: str) -> IndexNotFoundError:
    return IndexNotFoundError(f"no Elasticsearch index {name!r} at {connection.url} (index documents into it first)")


def error_type(body: object) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def reason(body: object) -> str:
    """The most specific reason in an Elasticsearch error body."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        cause = causes[0] if causes and isinstance(causes[0], dict) else error
        caused_by = error.get("caused_by")
        if isinstance(caused_by, dict) and caused_by.get("reason") and cause is error:
            cause = caused_by
        # A JSON parser's reason ends with a preview of the document's source: not worth printing.
        text = str(cause.get("reason", "")).split("\n at [Source:")[0]
        return one_line(f"{cause.get('type', 'error')}: {text}")
    return one_line(str(error))


def one_line(text: str, limit: int = 300) -> str:
    """Error reasons can span lines (parser messages) and run long; the CLI prints them on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
