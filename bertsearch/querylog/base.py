"""The one small interface every query log implements, and how logging is configured."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from datetime import datetime
from collections.abc import Sequence

from bertsearch.errors import BertsearchError
from bertsearch.querylog.event import QueryEvent
from bertsearch.stores import StoreLocation

QUERY_LOG_ENV = "BERTSEARCH_QUERY_LOG"
QUERY_LOG_MODES = ("on", "hashed", "off")
DEFAULT_QUERY_LOG_MODE = "on"
# Events read back for `bertsearch stats` and the stats page; older or further ones are left out.
MAX_EVENTS_READ = 100_000


def query_log_mode(value: str | None = None) -> str:
    """`value`, else $BERTSEARCH_QUERY_LOG, else `on`; a BertsearchError for anything else."""
    mode = (value or os.environ.get(QUERY_LOG_ENV) or DEFAULT_QUERY_LOG_MODE).strip().lower()
    if mode not in QUERY_LOG_MODES:
        raise BertsearchError(f"query log mode must be one of {', '.join(QUERY_LOG_MODES)}, got {mode!r}")
    return mode


class QueryLog(ABC):
    """Where query events go, and where `bertsearch stats` reads them back."""

    @classmethod
    @abstractmethod
    def open_at(cls, location: StoreLocation, read_only: bool = False) -> QueryLog:
        """The log of the index at `location`, opened to write unless `read_only`; BackendError if it cannot be
        written, so that the caller can go on without logging."""

    @abstractmethod
    def write(self, events: Sequence[QueryEvent]) -> None:
        """Store `events`; BackendError if they could not be stored."""

    @abstractmethod
    def read(self, since: datetime | None = None, limit: int = MAX_EVENTS_READ) -> list[QueryEvent]:
        """Up to `limit` events from `since` on (the newest ones if there are more), oldest first."""

    @abstractmethod
    def count(self, since: datetime | None = None) -> int:
        """How many events there are from `since` on: more than `read` returns when it had to leave some out."""

    @abstractmethod
    def hash_key(self) -> bytes:
        """The secret hashed queries are keyed with, made once per index (BackendError if it cannot be)."""

    def close(self) -> None:
        """Release connections."""
