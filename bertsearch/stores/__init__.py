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
    from bertsearch.stores.embedded import StoreRepair

BACKENDS = ("embedded", "elasticsearch")
DEFAULT_ES_INDEX = "bertsearch"
# Elasticsearch's vector index for a new index: "hnsw" is a graph of float32 vectors (approximate kNN, exact
# scores); "int8_hnsw" quantises its vectors to one byte (~4x less memory, scores off by ~1e-3); "flat" scans
# every vector (exact kNN, for up to ~100k passages or when results must match the embedded store's exactly).
VECTOR_INDEX_TYPES = ("hnsw", "int8_hnsw", "flat")

__all__ = [
    "BACKENDS",
    "VECTOR_INDEX_TYPES",
    "EncodedDocument",
    "SearchFilter",
    "Store",
    "StoreLocation",
    "StoreStats",
    "StoredDocument",
    "check_stageable",
    "create_store",
    "open_store",
    "publish_store",
    "repair_store",
    "resolve_location",
    "stage_store",
]


@dataclass(frozen=True)
class StoreLocation:
    """Where an index lives: the folder itself (embedded), or an Elasticsearch index that the folder's
    manifest points at, so later commands need only `--index-dir`."""

    index_dir: Path
    backend: str = "embedded"
    elasticsearch: ElasticsearchConnection | None = None
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
        raise BertsearchError("the elasticsearch backend needs an Elasticsearch URL", settings=("es_url",))
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
    """A new, empty store at `location`, recorded in its folder's manifest.

    For Elasticsearch, `settings.backend_options` may set the new index's layout (vector index type, shards,
    replicas); the manifest records only where the index is.
    """
    if isinstance(location, Path):
        location = StoreLocation(index_dir=location)
    if location.backend == "elasticsearch":
        from bertsearch.stores.elasticsearch import ElasticsearchStore

        assert location.elasticsearch is not None
        settings = dataclasses.replace(settings, backend="elasticsearch")
        store = ElasticsearchStore.create(location.elasticsearch, location.es_index, settings)
        _record_elasticsearch_location(location, store.settings)
        return store
    from bertsearch.stores.embedded import EmbeddedStore

    return EmbeddedStore.create(location.index_dir, settings)


def repair_store(location: StoreLocation) -> StoreRepair | None:
    """If the embedded index at `location` has a damaged database, set it aside and start an empty one that keeps
    every vector still readable for re-indexing to reuse (see `EmbeddedStore.repair`); None if it is sound."""
    if location.backend != "embedded":
        raise BertsearchError("only an embedded index is repaired this way; rebuild an Elasticsearch index instead")
    from bertsearch.stores.embedded import EmbeddedStore

    return EmbeddedStore.repair(location.index_dir)


def check_stageable(location: StoreLocation) -> None:
    """Refuse, before any work, a location whose backend cannot build a new index beside the live one."""
    if location.backend != "elasticsearch":
        raise BertsearchError(
            "a rebuild needs the elasticsearch backend; for the embedded store, index into a new folder",
            settings=("rebuild", "index_dir"),
        )


def stage_store(location: StoreLocation, settings: IndexSettings) -> Store:
    """A store for `location` that searches do not see until `publish_store`, to rebuild an index while the
    old one serves. An interrupted build with the same settings is resumed, one with other settings discarded."""
    check_stageable(location)
    from bertsearch.stores.elasticsearch import ElasticsearchStore

    assert location.elasticsearch is not None
    settings = dataclasses.replace(settings, backend="elasticsearch")
    return ElasticsearchStore.stage(location.elasticsearch, location.es_index, settings)


def publish_store(location: StoreLocation, staged: Store) -> None:
    """Make `staged` (from `stage_store`) the index at `location` in one atomic step, and drop the old one."""
    from bertsearch.stores.elasticsearch import ElasticsearchStore

    assert isinstance(staged, ElasticsearchStore)
    staged.publish()
    _record_elasticsearch_location(location, staged.settings)


def _record_elasticsearch_location(location: StoreLocation, settings: IndexSettings) -> None:
    """Write where the index is (and how it was built) into the folder's manifest, unless the folder holds
    another kind of index that must not be replaced."""
    assert location.elasticsearch is not None
    if settings_exist(location.index_dir) and read_settings(location.index_dir).backend != "elasticsearch":
        return
    where = {"url": location.elasticsearch.url, "index": location.es_index}
    write_settings(location.index_dir, dataclasses.replace(settings, backend_options=where))
