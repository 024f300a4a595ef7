"""Running the real CLI against a real Elasticsearch node or cluster, its credentials passed as users are told to.

Every run gets the username and password from the environment and no URL or index unless a test passes one,
so commands given only `--index-dir` prove the folder's manifest says where the index is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from tests import helpers


class Reachable(Protocol):
    """A running node or cluster (tests.conftest)."""

    username: str
    password: str


def credentials(target: Reachable) -> dict[str, str]:
    """The username and password as users are told to pass them, and nothing else from the environment."""
    return {
        "BERTSEARCH_ES_URL": "",
        "BERTSEARCH_ES_INDEX": "",
        "BERTSEARCH_ES_API_KEY": "",
        "BERTSEARCH_ES_CA_CERTS": "",
        "BERTSEARCH_ES_USERNAME": target.username,
        "BERTSEARCH_ES_PASSWORD": target.password,
    }


def run(target: Reachable, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI with the credentials in the environment; whatever happens, it never prints the password."""
    result = helpers.run_bertsearch(*args, env={**credentials(target), **(env or {})})
    assert target.password not in result.stdout + result.stderr
    return result


def ok_json(target: Reachable, *args: str | Path, env: dict[str, str] | None = None) -> dict:
    return helpers.ok_json(*args, env={**credentials(target), **(env or {})}, secret=target.password)


def fails_with(target: Reachable, expected: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    return helpers.fails_with(expected, *args, env={**credentials(target), **(env or {})}, secret=target.password)


class Connectable(Reachable, Protocol):
    url: str


def connection(target: Connectable) -> ElasticsearchConnection:
    return ElasticsearchConnection(target.url, username=target.username, password=target.password)


def index_contents(target: Connectable, es_index: str) -> tuple[dict[str, tuple[str, str]], list[tuple], tuple[int, int]]:
    """tests.helpers.store_contents of the index `es_index`, read through the store, which retries while a
    cluster recovers."""
    with ElasticsearchStore.open(connection(target), es_index) as store:
        return helpers.store_contents(store)


def settle(target: Connectable, es_index: str) -> None:
    """Merge every copy of `es_index` to one segment. A run that retried a bulk write, or resumed after a kill,
    overwrote some passages with themselves; Lucene counts the old copies in its BM25 statistics until it
    merges them away, and only then do two indices holding the same passages score them identically."""
    client = connection(target).client()
    client.options(request_timeout=300).indices.forcemerge(index=es_index, max_num_segments=1)
    client.indices.refresh(index=es_index)
