"""The Python API: an index to create or open, add documents to, search, and evaluate.

    from bertsearch import Index

    with Index.create("my-index") as index:      # the default model, on the embedded store
        index.add(["examples/corpus"])
        for hit in index.search("how do plants make oxygen", k=3).hits:
            print(f"{hit.score:.3f}  {hit.title}")

It is what the `bertsearch` command does, as calls: adding goes through the indexer (content hashes, chunking,
torch encoding, crash-safe batches), searching through the query pipeline (the model's ONNX form: no torch).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertsearch.beir import BeirDataset, load_beir
from bertsearch.errors import BertsearchError
from bertsearch.search import MODES, SearchResult, Searcher, open_searcher
from bertsearch.settings import ChunkingSettings, settings_exist
from bertsearch.stores import SearchFilter, StoreLocation, StoreStats, resolve_location
from bertsearch.types import Document

if TYPE_CHECKING:
    from bertsearch.indexer.pipeline import IndexSummary
    from bertsearch.models.encoder import Encoder

Location = str | os.PathLike | StoreLocation


def elasticsearch(url: str, index: str = "bertsearch", index_dir: str | os.PathLike = ".bertsearch",
                  username: str | None = None, password: str | None = None, api_key: str | None = None,
                  ca_certs: str | None = None, verify_certs: bool = True) -> StoreLocation:
    """Where an index on Elasticsearch lives: the cluster at `url` (several, comma-separated), the index (alias)
    `index`, and `index_dir`, the folder that records which cluster and index it is (never the credentials)."""
    return resolve_location(Path(index_dir), backend="elasticsearch", es_url=url, es_index=index,
                            es_username=username, es_password=password, es_api_key=api_key, es_ca_certs=ca_certs,
                            es_verify_certs=verify_certs)


class Index:
    """One index: its store, and the models, loaded when first needed (torch to add, ONNX Runtime to search)."""

    def __init__(self, location: StoreLocation) -> None:
        """Use `Index.open` or `Index.create`."""
        self.location = location
        self._searcher: Searcher = open_searcher(location)
        self._encoder: Encoder | None = None

    @classmethod
    def open(cls, location: Location) -> Index:
        """The index at `location`: a folder (an embedded index, or one that points at Elasticsearch), or a
        location from `elasticsearch()`. IndexNotFoundError if there is none."""
        return cls(_location(location))

    @classmethod
    def create(cls, location: Location, model: str | os.PathLike | None = None,
               chunking: ChunkingSettings | None = None) -> Index:
        """A new, empty index at `location`, of `model` (a sentence-transformers folder; the default model if None)
        and `chunking`. BertsearchError if an index is there already: open it instead."""
        from bertsearch.indexer.pipeline import open_index_for_writing

        where = _location(location)
        if settings_exist(where.index_dir):
            raise BertsearchError(f"an index exists at {where.describe()} already: open it")
        store, encoder, _ = open_index_for_writing(where, model, chunking)
        store.close()
        index = cls(where)
        index._encoder = encoder
        return index

    @property
    def store(self) -> Any:
        """The store behind the index (`bertsearch.stores.base.Store`)."""
        return self._searcher.store

    def add(self, items: str | os.PathLike | Iterable[str | os.PathLike] | Iterable[Document],
            prune: bool = False) -> IndexSummary:
        """Add or update files and folders (recursively), or `Document`s; unchanged ones are skipped by content hash.
        With `prune`, documents whose source file is gone from the folders given are removed."""
        from bertsearch.indexer.pipeline import Indexer
        from bertsearch.indexer.readers import check_paths_exist
        from bertsearch.models.fast_encoding import indexing_encoder
        from bertsearch.models.loading import load_index_encoder, prepare_query_encoder

        listed = [items] if isinstance(items, (str, os.PathLike)) else list(items)
        documents = [item for item in listed if isinstance(item, Document)]
        if documents and len(documents) != len(listed):
            raise TypeError("add either paths or Documents, not both in one call")
        settings = self.store.settings
        if self._encoder is None:
            self._encoder = load_index_encoder(settings.model_path, settings.model_fingerprint)
        indexer = Indexer(self.store, indexing_encoder(self._encoder, self.location.index_dir), settings.chunking,
                          exclude=[self.location.index_dir])
        if documents:
            summary = indexer.index_documents(documents)
        else:
            paths = [Path(item) for item in listed if not isinstance(item, Document)]
            check_paths_exist(paths)
            summary = indexer.index(paths, prune=prune)
        prepare_query_encoder(self._encoder)
        return summary

    def search(self, text: str, k: int = 10, mode: str = "hybrid", source_prefix: str | None = None,
               metadata: dict[str, Any] | None = None, rerank: bool | None = None) -> SearchResult:
        """The top `k` documents for `text` ("dense", "bm25" or "hybrid"), each by its best passage, reranked if the
        index uses a reranker (unless `rerank` is False); only documents whose source starts with `source_prefix`
        and whose metadata has the values in `metadata`."""
        return self._searcher.search(text, k=k, mode=mode, rerank=rerank,
                                     filter=SearchFilter(source_prefix=source_prefix, metadata=dict(metadata or {})))

    def evaluate(self, dataset: str | os.PathLike | BeirDataset, split: str = "test",
                 pipelines: Iterable[str] = MODES) -> dict[str, dict[str, float]]:
        """nDCG@10, RR@10, R@100 and latency of each pipeline on a BEIR dataset (a folder, or one loaded) whose
        corpus this index holds (`add` its corpus file first)."""
        from bertsearch.evaluation import evaluate

        loaded = dataset if isinstance(dataset, BeirDataset) else load_beir(Path(dataset), split)
        return evaluate(self._searcher, loaded, tuple(pipelines))

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Remove documents and their passages; unknown ids are ignored."""
        self.store.delete(list(doc_ids))

    def stats(self) -> StoreStats:
        return self.store.stats()

    def close(self) -> None:
        """Close the store (an embedded one saves its vector index)."""
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _location(location: Location) -> StoreLocation:
    return location if isinstance(location, StoreLocation) else resolve_location(Path(location))
