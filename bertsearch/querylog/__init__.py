"""Query logs: one event per query (from the CLI or the server), stored beside the index it searched.

One small interface, `QueryLog` (`base`), with one implementation per backend, which the registry of backends
names (`bertsearch.stores.backends`):

- embedded index → `SqliteQueryLog` (`sqlite`): a SQLite file in the index folder;
- Elasticsearch index → `ElasticsearchQueryLog` (`elasticsearch`): a data stream on its cluster.

`event` holds what is logged, `hashing` the keyed digest that replaces the query text in hashed logs, and
`background` the writer thread the server logs through.

Logging is configured by `BERTSEARCH_QUERY_LOG` (`on`, the default; `hashed`: the query text is replaced by a
keyed digest, see `hashing`; `off`) or `bertsearch serve --query-log`. It is best effort: a log that cannot be
written (a read-only index folder) never fails the query it describes.

`ElasticsearchQueryLog` and `QUERY_LOG_STREAM` are imported on first use: the Elasticsearch client is heavy,
and `bertsearch serve --help` or a query of an embedded index must not load it.
"""

from __future__ import annotations

from typing import Any

from bertsearch.querylog.background import BackgroundQueryLog
from bertsearch.querylog.base import (DEFAULT_QUERY_LOG_MODE, MAX_EVENTS_READ, QUERY_LOG_ENV, QUERY_LOG_MODES,
                                      QueryLog, query_log_mode)
from bertsearch.querylog.event import LATENCY_STAGES, QUERY_EVENT_MAPPING, TOP_SCORES, QueryEvent, query_event
from bertsearch.querylog.hashing import HASH_KEY_BYTES, QUERY_HASH_KEY_FILE, QUERY_HASH_KEY_INDEX, hash_query
from bertsearch.querylog.sqlite import QUERY_LOG_DATABASE, SqliteQueryLog
from bertsearch.stores import StoreLocation, backend_of

__all__ = [
    "DEFAULT_QUERY_LOG_MODE",
    "HASH_KEY_BYTES",
    "LATENCY_STAGES",
    "MAX_EVENTS_READ",
    "QUERY_EVENT_MAPPING",
    "QUERY_HASH_KEY_FILE",
    "QUERY_HASH_KEY_INDEX",
    "QUERY_LOG_DATABASE",
    "QUERY_LOG_ENV",
    "QUERY_LOG_MODES",
    "TOP_SCORES",
    "BackgroundQueryLog",
    "QueryEvent",
    "QueryLog",
    "SqliteQueryLog",
    "hash_query",
    "open_query_log",
    "query_event",
    "query_log_mode",
]

_IMPORTED_ON_FIRST_USE = {"ElasticsearchQueryLog", "QUERY_LOG_STREAM"}


def open_query_log(location: StoreLocation, read_only: bool = False) -> QueryLog:
    """The query log of the index at `location`: a data stream on its cluster, or a file in its folder.

    Opened to write unless `read_only`; BackendError if an index folder's log cannot be written (the folder is
    read-only), so that the caller can go on without logging.
    """
    return backend_of(location).query_log_class().open_at(location, read_only)


def __getattr__(name: str) -> Any:
    if name in _IMPORTED_ON_FIRST_USE:
        from bertsearch.querylog import elasticsearch

        return getattr(elasticsearch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
