"""Rebuilding an index with a new model or settings beside the live one, swapped in only when complete.

Queries keep using the live index while the new one is filled from the files; once every document is stored
and checked, one atomic step replaces it (on Elasticsearch, an alias swap). If any document could not be
stored, nothing is swapped. A killed or failed rebuild leaves the live index serving and the new one staged:
the same rebuild run again resumes it, a rebuild with other settings discards it.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from bertsearch.errors import IndexMismatchError, IndexNotFoundError
from bertsearch.models.encoder import Encoder
from bertsearch.models.fast_encoding import indexing_encoder
from bertsearch.models.loading import load_index_encoder
from bertsearch.settings import WRITE_BATCH_PASSAGES, ChunkingSettings, IndexSettings
from bertsearch.stores import StoreLocation, check_stageable, open_store, publish_store, stage_store
from bertsearch.indexer.open_index import check_index_options, new_index_settings
from bertsearch.indexer.pipeline import Indexer, IndexSummary
from bertsearch.indexer.progress import IndexProgress


def rebuild_index(
    location: StoreLocation,
    paths: Sequence[Path],
    model_path: str | Path | None = None,
    chunking: ChunkingSettings | None = None,
    index_options: Mapping[str, Any] | None = None,
    progress: IndexProgress | None = None,
    batch_passages: int = WRITE_BATCH_PASSAGES,
) -> tuple[IndexSummary, Encoder]:
    """Build a new index at `location` from `paths` alone and swap it in if every document was stored; returns
    what the run did and the encoder of the new index.

    What the arguments leave out is kept from the live index (or defaults if there is none): `--rebuild`
    alone rebuilds with the same model and settings. `summary.rebuilt` says whether the swap happened.
    """
    check_index_options(location, index_options)
    check_stageable(location)
    encoder, settings = rebuild_settings(location, model_path, chunking, index_options)
    with stage_store(location, settings) as staged:
        indexer = Indexer(staged, indexing_encoder(encoder, location.index_dir), settings.chunking, progress,
                          batch_passages=batch_passages, exclude=[location.index_dir])
        summary = indexer.index(paths, prune=True)
        if summary.documents_failed == 0:
            publish_store(location, staged)
            summary.rebuilt = True
    return summary, encoder


def rebuild_settings(
    location: StoreLocation,
    model_path: str | Path | None,
    chunking: ChunkingSettings | None,
    index_options: Mapping[str, Any] | None,
) -> tuple[Encoder, IndexSettings]:
    """The encoder and settings of the new index: those given, the rest as the live index was built."""
    try:
        with open_store(location) as live:
            recorded: IndexSettings | None = live.settings
    except (IndexNotFoundError, IndexMismatchError):  # none yet, or one this version cannot read: what rebuilds fix
        recorded = None
    if recorded is None:
        encoder = Encoder(model_path)
        return encoder, new_index_settings(encoder, chunking, index_options)
    if model_path is None:
        encoder = load_index_encoder(recorded.model_path, recorded.model_fingerprint)
    else:
        encoder = Encoder(model_path)
    if chunking is None and recorded.chunking.max_tokens <= encoder.info.max_seq_length:
        chunking = recorded.chunking
    return encoder, new_index_settings(encoder, chunking, {**recorded.backend_options, **(index_options or {})})
