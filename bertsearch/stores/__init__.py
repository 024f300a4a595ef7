"""Stores behind one interface (`base`), and the functions that open the one a location names, through the
registry of backends (`backends`): none of them asks which backend it has."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from bertsearch.errors import BertsearchError
from bertsearch.settings import (
    IndexSettings,
    read_settings,
    settings_exist,
    write_settings,
)
from bertsearch.stores.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_ES_INDEX,
    VECTOR_INDEX_TYPES,
    Backend,
    StoreLocation,
    backend_of,
    find_backend,
)
from bertsearch.stores.base import (
    EncodedDocument,
    SearchFilter,
    Store,
    StoredDocument,
    StoreStats,
)

if TYPE_CHECKING:
    from bertsearch.stores.embedded import StoreRepair

__all__ = [
    "BACKENDS",
    "DEFAULT_ES_INDEX",
    "VECTOR_INDEX_TYPES",
    "Backend",
    "EncodedDocument",
    "SearchFilter",
    "Store",
    "StoreLocation",
    "StoreStats",
    "StoredDocument",
    "backend_of",
    "check_stageable",
    "create_store",
    "find_backend",
    "open_store",
    "publish_store",
    "repair_store",
    "resolve_location",
    "stage_store",
]


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
    chosen = find_backend(backend or (recorded.backend if recorded else DEFAULT_BACKEND))
    where = recorded.backend_options if recorded and recorded.backend == chosen.name else {}
    options = {"url": es_url, "index": es_index, "username": es_username, "password": es_password,
               "api_key": es_api_key, "ca_certs": es_ca_certs, "verify_certs": es_verify_certs}
    return chosen.locate(index_dir, where, options)


def open_store(location: StoreLocation | Path) -> Store:
    """The existing store at `location`; IndexNotFoundError if there is none."""
    if isinstance(location, Path):
        location = resolve_location(location)
    backend = backend_of(location)
    return backend.store_class().open(*backend.where(location))


def create_store(location: StoreLocation | Path, settings: IndexSettings) -> Store:
    """A new, empty store at `location`, recorded in its folder's manifest.

    For Elasticsearch, `settings.backend_options` may set the new index's layout (vector index type, shards,
    replicas); the manifest records only where the index is.
    """
    if isinstance(location, Path):
        location = StoreLocation(index_dir=location)
    backend = backend_of(location)
    settings = dataclasses.replace(settings, backend=backend.name)
    store = backend.store_class().create(*backend.where(location), settings)
    _record_location(location, store.settings)
    return store


def repair_store(location: StoreLocation) -> StoreRepair | None:
    """If the embedded index at `location` has a damaged database, set it aside and start an empty one that keeps
    every vector still readable for re-indexing to reuse (see `EmbeddedStore.repair`); None if it is sound."""
    backend = backend_of(location)
    repair = getattr(backend.store_class(), "repair", None)  # only a store in the folder itself can be repaired
    if repair is None:
        raise BertsearchError("only an embedded index is repaired this way; rebuild an Elasticsearch index instead")
    return repair(*backend.where(location))


def check_stageable(location: StoreLocation) -> None:
    """Refuse, before any work, a location whose backend cannot build a new index beside the live one."""
    if not backend_of(location).store_class().rebuildable:
        raise BertsearchError(
            "a rebuild needs the elasticsearch backend; for the embedded store, index into a new folder",
            settings=("rebuild", "index_dir"),
        )


def stage_store(location: StoreLocation, settings: IndexSettings) -> Store:
    """A store for `location` that searches do not see until `publish_store`, to rebuild an index while the
    old one serves. An interrupted build with the same settings is resumed, one with other settings discarded."""
    check_stageable(location)
    backend = backend_of(location)
    settings = dataclasses.replace(settings, backend=backend.name)
    return backend.store_class().stage(*backend.where(location), settings)


def publish_store(location: StoreLocation, staged: Store) -> None:
    """Make `staged` (from `stage_store`) the index at `location` in one atomic step, and drop the old one."""
    staged.publish()
    _record_location(location, staged.settings)


def _record_location(location: StoreLocation, settings: IndexSettings) -> None:
    """Write where the index is (and how it was built) into the folder's manifest, for a backend whose store does
    not write one itself; unless the folder holds another kind of index that must not be replaced."""
    where = backend_of(location).recorded_location(location)
    if where is None:
        return
    if settings_exist(location.index_dir) and read_settings(location.index_dir).backend != location.backend:
        return
    write_settings(location.index_dir, dataclasses.replace(settings, backend_options=where))
