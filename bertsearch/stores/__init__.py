"""Stores behind one interface, and the factory that opens the one a location names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bertsearch.errors import BertsearchError
from bertsearch.settings import IndexSettings, read_settings, settings_exist, write_settings
from bertsearch.stores.base import EncodedDocument, SearchFilter, Store, StoredDocument, StoreStats

if TYPE_CHECKING:
    from bertsearch.stores.elasticsearch import ElasticsearchConnection

BACKENDS = ("embedded", "elasticsearch")
DEFAULT_ES_INDEX = "bertsearch"

__all__ = [
    "BACKENDS",
    "EncodedDocument",
    "SearchFilter",
    "Store",
    "StoreLocation",
    "StoreStats",
    "StoredDocument",
    "create_store",
    "open_store",
    "resolve_location",
]


@dataclass(frozen=True)
class StoreLocation:
    """Where an index lives: the folder itself (embedded), or an Elasticsearch index that the folder's
    manifest points at, so later commands need only `--index-dir`."""

    index_dir: Path
    backend: str = "embedded"
    elasticsearch: "ElasticsearchConnection | None" = None
    es_index: str = DEFAULT_ES_INDEX

    def describe(self) -> str:
        if self.backend == "elasticsearch" and self.elasticsearch is not None:
            return f"Elasticsearch index {self.es_index!r} at {self.elasticsearch.url}"
        return str(self.index_dir)


def resolve_location(
    index_dir: Path,
    backend: str | None = None,
    es_url: str | None = None,
    es_index: str | None = None,
    es_username: str | None = None,
    es_password: str | None = None,
    es_api_key: str | None = None,
    es_ca_certs: str | None = None,
    es_verify_certs: bool = True,
) -> StoreLocation:
    """The location the options name; what they leave out comes from `index_dir`'s manifest if it records a backend.

    Credentials are never recorded: they come from options or the environment each time.
    """
    recorded = read_settings(index_dir) if settings_exist(index_dir) else None
    chosen = backend or (recorded.backend if recorded else "embedded")
    if chosen not in BACKENDS:
        raise BertsearchError(f"unknown backend {chosen!r}; choose one of {', '.join(BACKENDS)}")
    if chosen == "embedded":
        return StoreLocation(index_dir=index_dir)
    options = recorded.backend_options if recorded and recorded.backend == "elasticsearch" else {}
    url = es_url or options.get("url")
    if not url:
        raise BertsearchError("the elasticsearch backend needs --es-url or BERTSEARCH_ES_URL")
    from bertsearch.stores.elasticsearch import ElasticsearchConnection

    connection = ElasticsearchConnection(
        url=url,
        username=es_username,
        password=es_password,
        api_key=es_api_key,
        ca_certs=es_ca_certs,
        verify_certs=es_verify_certs,
    )
    return StoreLocation(
        index_dir=index_dir,
        backend="elasticsearch",
        elasticsearch=connection,
        es_index=es_index or options.get("index") or DEFAULT_ES_INDEX,
    )


def open_store(location: StoreLocation | Path) -> Store:
    """The existing store at `location`; IndexNotFoundError if there is none."""
    if isinstance(location, Path):
        location = resolve_location(location)
    if location.backend == "elasticsearch":
        from bertsearch.stores.elasticsearch import ElasticsearchStore

        assert location.elasticsearch is not None
        return ElasticsearchStore.open(location.elasticsearch, location.es_index)
    from bertsearch.stores.embedded import EmbeddedStore

    return EmbeddedStore.open(location.index_dir)


def create_store(location: StoreLocation | Path, settings: IndexSettings) -> Store:
    """A new, empty store at `location`, recorded in its folder's manifest."""
    if isinstance(location, Path):
        location = StoreLocation(index_dir=location)
    if location.backend == "elasticsearch":
        from bertsearch.stores.elasticsearch import ElasticsearchStore

        assert location.elasticsearch is not None
        settings = dataclasses.replace(
            settings,
            backend="elasticsearch",
            backend_options={"url": location.elasticsearch.url, "index": location.es_index},
        )
        store = ElasticsearchStore.create(location.elasticsearch, location.es_index, settings)
        # Record where the index is, unless the folder already holds another index that must not be replaced.
        if not settings_exist(location.index_dir) or read_settings(location.index_dir).backend == "elasticsearch":
            write_settings(location.index_dir, settings)
        return store
    from bertsearch.stores.embedded import EmbeddedStore

    return EmbeddedStore.create(location.index_dir, settings)
