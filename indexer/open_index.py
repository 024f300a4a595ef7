"""The index a run writes to: the existing one, checked against the model, chunking and layout options asked for,
or a new one with settings made from the model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from bertsearch.errors import BertsearchError, IndexMismatchError, IndexNotFoundError
from bertsearch.models.base import TextEncoder
from bertsearch.models.loading import load_index_encoder
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores import StoreLocation, backend_of, create_store, open_store
from bertsearch.stores.base import Store
from bertsearch.stores.embedded.vectors import VECTOR_INDEX_OPTION

if TYPE_CHECKING:
    from bertsearch.models.encoder import Encoder


def open_index_for_writing(
    location: StoreLocation,
    model_path: str | Path | None = None,
    chunking: ChunkingSettings | None = None,
    index_options: Mapping[str, Any] | None = None,
    claim: bool = True,
) -> tuple[Store, Encoder, ChunkingSettings]:
    """The existing index at `location` (refusing another model, chunking or index options), or a new one.

    `index_options` set the layout of a new Elasticsearch index (`vector_index_type`, `shards`, `replicas`).
    The index is claimed for writing (`Store.acquire_write_lock`) before the model loads, so a read-only or busy
    one is refused at once; with `claim` false, only at its first write (an evaluation of a read-only index that
    holds its whole corpus already writes nothing).
    """
    check_index_options(location, index_options)
    try:
        store = open_store(location)
    except IndexNotFoundError:
        store = None
    if store is not None:
        settings = store.settings
        try:
            if claim:
                store.acquire_write_lock()
            differing = {k: v for k, v in (index_options or {}).items() if settings.backend_options.get(k) != v}
            if differing:
                recorded = ", ".join(f"{k} {settings.backend_options.get(k)}" for k in differing)
                wanted = ", ".join(f"{k} {v}" for k, v in differing.items())
                raise IndexMismatchError(f"this index was built with {recorded}, not {wanted}", differs="layout")
            encoder = load_index_encoder(settings.model_path, settings.model_fingerprint, model_path)
            settings.check_compatible(encoder.info.fingerprint, chunking)
        except BertsearchError:
            store.close()
            raise
        return store, encoder, settings.chunking
    from bertsearch.models.encoder import Encoder

    encoder = Encoder(model_path)
    settings = new_index_settings(encoder, chunking, index_options)
    return create_store(location, settings), encoder, settings.chunking


def check_index_options(location: StoreLocation, index_options: Mapping[str, Any] | None) -> None:
    """Each layout option belongs to one backend (`Backend.layout_options`); refuse it elsewhere rather than ignore
    it."""
    given = {name for name, value in (index_options or {}).items() if value is not None}
    foreign = given - set(backend_of(location).layout_options)
    if VECTOR_INDEX_OPTION in foreign:
        raise BertsearchError("the embedded store's vector index kind does not apply to Elasticsearch, whose index "
                              "options set its vector index", settings=("es_vector_index",))
    if foreign:
        raise BertsearchError("index options (vector index type, shards, replicas) need the elasticsearch backend",
                              settings=("index_options", "backend"))


def new_index_settings(
    encoder: TextEncoder, chunking: ChunkingSettings | None, index_options: Mapping[str, Any] | None = None
) -> IndexSettings:
    """Settings for a new index of `encoder`'s vectors; `chunking` is checked against the model's limit."""
    chunking = chunking or ChunkingSettings(max_tokens=min(ChunkingSettings().max_tokens, encoder.info.max_seq_length))
    if chunking.max_tokens > encoder.info.max_seq_length:
        raise BertsearchError(
            f"chunking max_tokens {chunking.max_tokens} exceeds the model's maximum of {encoder.info.max_seq_length} "
            "tokens", settings=("max_tokens",)
        )
    if not 0 <= chunking.overlap_tokens < chunking.max_tokens // 2:
        raise BertsearchError("chunking overlap_tokens must be at least 0 and less than half of max_tokens",
                              settings=("overlap_tokens", "max_tokens"))
    return IndexSettings(
        model_path=encoder.info.path,
        model_fingerprint=encoder.info.fingerprint,
        dimensions=encoder.info.dimensions,
        chunking=chunking,
        backend_options=dict(index_options or {}),
    )
