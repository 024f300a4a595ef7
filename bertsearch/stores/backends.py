"""The registry of backends: for each name, where an index of it lives (its location settings), its store class
and its query-log class.

Classes are named by import path and imported when first used, so naming a backend costs nothing: the
Elasticsearch client is slow to import, and `bertsearch query` on an embedded index never needs it. A new backend
is one more `Backend` here and its two classes; nothing else asks which backend it has.

Store classes follow one convention (`StoreClass`): `open(*where)`, `create(*where, settings)` and, if they are
`rebuildable`, `stage(*where, settings)`, where `where` is what `Backend.where` draws from a location.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast
from collections.abc import Callable, Mapping

from bertsearch.errors import BertsearchError

if TYPE_CHECKING:
    from bertsearch.querylog import QueryLog
    from bertsearch.stores.base import Store
    from bertsearch.stores.elasticsearch import ElasticsearchConnection

DEFAULT_ES_INDEX = "bertsearch"
# Elasticsearch's vector index for a new index: "hnsw" is a graph of float32 vectors (approximate kNN, exact
# scores); "int8_hnsw" quantises its vectors to one byte (~4x less memory, scores off by ~1e-3); "flat" scans
# every vector (exact kNN, for up to ~100k passages or when results must match the embedded store's exactly).
VECTOR_INDEX_TYPES = ("hnsw", "int8_hnsw", "flat")


@dataclass(frozen=True)
class StoreLocation:
    """Where an index lives: the folder itself (embedded), or an Elasticsearch index that the folder's
    manifest points at, so later commands need only `--index-dir`."""

    index_dir: Path
    backend: str = "embedded"
    elasticsearch: ElasticsearchConnection | None = None
    es_index: str = DEFAULT_ES_INDEX

    def describe(self) -> str:
        return backend_of(self).describe(self)

    @property
    def index_name(self) -> str:
        """The index's name in query events and on the stats page: its folder, or its name on the cluster."""
        return backend_of(self).index_name(self)


class StoreClass(Protocol):
    """What the registry asks of a store class (see the module's docstring)."""

    rebuildable: bool
    open: Callable[..., Store]
    create: Callable[..., Store]
    stage: Callable[..., Store]


class QueryLogClass(Protocol):
    open_at: Callable[[StoreLocation, bool], QueryLog]


class Backend(ABC):
    """One kind of store: its location settings, and its store and query-log classes."""

    name: ClassVar[str]
    store_class_path: ClassVar[str]
    query_log_class_path: ClassVar[str]
    # Options of a new index's layout that this backend takes (`index_options`); none for most.
    layout_options: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def locate(self, index_dir: Path, recorded: Mapping[str, Any], options: Mapping[str, Any]) -> StoreLocation:
        """The location of the index `index_dir` names: `recorded` is what its manifest records of where the index
        is (empty if it records another backend, or nothing), `options` what the caller gave (the es_* keyword
        arguments of `resolve_location`), which win."""

    @abstractmethod
    def where(self, location: StoreLocation) -> tuple[Any, ...]:
        """The leading arguments of the store class's `open`, `create` and `stage` for `location`."""

    def recorded_location(self, location: StoreLocation) -> dict[str, Any] | None:
        """What the folder's manifest records of where the index is, written after a create or publish; None for
        a store that writes its own manifest."""
        return None

    def describe(self, location: StoreLocation) -> str:
        return str(location.index_dir)

    def index_name(self, location: StoreLocation) -> str:
        return str(location.index_dir)

    def store_class(self) -> StoreClass:
        return cast(StoreClass, _imported(self.store_class_path))

    def query_log_class(self) -> QueryLogClass:
        return cast(QueryLogClass, _imported(self.query_log_class_path))


class EmbeddedBackend(Backend):
    """FAISS + SQLite in the index folder itself."""

    name = "embedded"
    store_class_path = "bertsearch.stores.embedded:EmbeddedStore"
    query_log_class_path = "bertsearch.querylog.sqlite:SqliteQueryLog"
    layout_options = ("vector_index",)  # the FAISS index's kind (stores/embedded/vectors.py: VECTOR_INDEX_OPTION)

    def locate(self, index_dir: Path, recorded: Mapping[str, Any], options: Mapping[str, Any]) -> StoreLocation:
        return StoreLocation(index_dir=index_dir)

    def where(self, location: StoreLocation) -> tuple[Any, ...]:
        return (location.index_dir,)


class ElasticsearchBackend(Backend):
    """An index (an alias) on an Elasticsearch cluster; the folder's manifest records its URL and name, never
    credentials, which come from options or the environment each time."""

    name = "elasticsearch"
    store_class_path = "bertsearch.stores.elasticsearch:ElasticsearchStore"
    query_log_class_path = "bertsearch.querylog.elasticsearch:ElasticsearchQueryLog"
    layout_options = ("vector_index_type", "shards", "replicas")

    def locate(self, index_dir: Path, recorded: Mapping[str, Any], options: Mapping[str, Any]) -> StoreLocation:
        url = options.get("url") or recorded.get("url")
        if not url:
            raise BertsearchError("the elasticsearch backend needs an Elasticsearch URL", settings=("es_url",))
        from bertsearch.stores.elasticsearch import ElasticsearchConnection

        connection = ElasticsearchConnection(
            url=url,
            username=options.get("username"),
            password=options.get("password"),
            api_key=options.get("api_key"),
            ca_certs=options.get("ca_certs"),
            verify_certs=options.get("verify_certs", True),
        )
        return StoreLocation(
            index_dir=index_dir,
            backend=self.name,
            elasticsearch=connection,
            es_index=options.get("index") or recorded.get("index") or DEFAULT_ES_INDEX,
        )

    def where(self, location: StoreLocation) -> tuple[Any, ...]:
        return (self._connection(location), location.es_index)

    def recorded_location(self, location: StoreLocation) -> dict[str, Any] | None:
        return {"url": self._connection(location).url, "index": location.es_index}

    def describe(self, location: StoreLocation) -> str:
        if location.elasticsearch is None:
            return str(location.index_dir)
        return f"Elasticsearch index {location.es_index!r} at {location.elasticsearch.url}"

    def index_name(self, location: StoreLocation) -> str:
        return location.es_index

    def _connection(self, location: StoreLocation) -> ElasticsearchConnection:
        assert location.elasticsearch is not None, "an Elasticsearch location comes with its connection"
        return location.elasticsearch


REGISTRY: dict[str, Backend] = {backend.name: backend for backend in (EmbeddedBackend(), ElasticsearchBackend())}
BACKENDS = tuple(REGISTRY)
DEFAULT_BACKEND = EmbeddedBackend.name


def find_backend(name: str) -> Backend:
    """The backend called `name`; BertsearchError naming the known ones if there is none."""
    if name not in REGISTRY:
        raise BertsearchError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return REGISTRY[name]


def backend_of(location: StoreLocation) -> Backend:
    return find_backend(location.backend)


def _imported(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
