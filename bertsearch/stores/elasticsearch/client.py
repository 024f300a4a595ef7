"""Calls to a cluster retried with exponential backoff on transient failures, other failures mapped to one-line
BackendErrors: what the store and the query log both talk to Elasticsearch through."""

from __future__ import annotations

import time
from typing import Any, TypeVar
from collections.abc import Callable

from elasticsearch import ApiError, TransportError, helpers

from bertsearch.stores.elasticsearch.connection import ElasticsearchConnection
from bertsearch.stores.elasticsearch.errors import IncompleteAnswer, backend_error, is_transient

T = TypeVar("T")

MAX_BACKOFF = 30.0


class RetryingClient:
    """A client of the cluster at `connection`, for work on the index, alias or data stream `name` (which
    errors name). Requests failing with 429, 5xx or a connection error are retried `max_retries` times,
    waiting `initial_backoff` seconds and doubling."""

    def __init__(
        self, connection: ElasticsearchConnection, name: str, max_retries: int = 3, initial_backoff: float = 0.5
    ) -> None:
        self.connection = connection
        self.name = name
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.client = connection.client()

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(...)`, retried with exponential backoff on transient failures, other failures mapped."""
        attempt = 0
        while True:
            try:
                return function(*args, **kwargs)
            except (ApiError, TransportError, helpers.ScanError, IncompleteAnswer) as exc:
                if attempt >= self.max_retries or not is_transient(exc):
                    raise backend_error(exc, self.connection, self.name) from exc
            time.sleep(min(self.initial_backoff * 2**attempt, MAX_BACKOFF))
            attempt += 1

    def close(self) -> None:
        self.client.close()
