"""The embedded and Elasticsearch stores, given the same encoded SciFact slice, rank and score alike.

What must agree, and how closely (measured on this slice with the integ-test node; see each bound):

- Dense: FAISS scans exactly. Elasticsearch's `flat` vector index scans exactly too, so both return the same
  ids in the same order with the same scores; its default HNSW graph approximates, so rankings may differ in
  the tail: top-10 overlap must be at least 0.9 and nDCG@10, RR@10 and R@100 within 0.01.
- BM25: both stores score title and text as one field with k1=1.2, b=0.75, on the same terms: the
  Elasticsearch store indexes and queries the terms SQLite's own FTS5 porter tokenizer makes (the integ-test
  node has no stemmer at all; on its `standard` analyzer alone top-10 overlap was ~0.6, as "proteins" and
  "protein" were two terms). Not identical ids, because Lucene's IDF is log(1 + (N - n + 0.5) / (n + 0.5))
  where FTS5's is log((N - n + 0.5) / (n + 0.5)) (floored near 0 for terms in over half the passages), and
  Lucene keeps document lengths in one lossy byte: top-10 overlap must be at least 0.9.
- Hybrid: fusion inherits the small BM25 difference, damped by the identical dense ranking.
- `bertsearch eval`: every measure (nDCG@10, RR@10, R@100) of every pipeline within 0.01.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from bertsearch.beir import BeirDataset, load_beir
from bertsearch.evaluation import evaluate
from bertsearch.indexer.pipeline import Indexer
from bertsearch.models.encoder import Encoder
from bertsearch.search import MODES, Searcher
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores import Store, create_store
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from bertsearch.types import Document, Passage
from tests.helpers import write_scifact_slice

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]

DOCUMENTS = 150
QUERIES = 20
K = 10
# Bounds with some margin under what this slice measured: mean top-10 overlap, share of identical top-1.
DENSE_MIN_OVERLAP, DENSE_MIN_SAME_TOP1 = 0.9, 0.9  # measured 1.0 and 20/20
BM25_MIN_OVERLAP, BM25_MIN_SAME_TOP1 = 0.9, 0.9  # measured 0.96 and 20/20
HYBRID_MIN_OVERLAP, HYBRID_MIN_SAME_TOP1 = 0.9, 0.9  # measured 0.99 and 20/20
UNSTEMMED_MIN_OVERLAP, UNSTEMMED_MIN_SAME_TOP1 = 0.9, 0.8  # measured 0.95 and 87/100
# The bound for eval; measured 0.000 for dense and hybrid, at most 0.0025 for bm25.
MAX_METRIC_GAP = 0.01


class RememberingEncoder(Encoder):
    """The real encoder, encoding each text once: both stores get the same vectors, and at half the cost."""

    def __init__(self) -> None:
        super().__init__()
        self._vectors: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, super().encode(missing, batch_size, length_step)))
        if not texts:
            return super().encode([])
        return np.stack([self._vectors[text] for text in texts])


@dataclass(frozen=True)
class StorePair:
    embedded: Store
    elasticsearch: ElasticsearchStore
    elasticsearch_flat: ElasticsearchStore | None = None


@dataclass(frozen=True)
class Rankings:
    """Top-K document ids per query, for each mode and store."""

    embedded: dict[str, dict[str, list[str]]]
    elasticsearch: dict[str, dict[str, list[str]]]


@pytest.fixture(scope="module")
def connection(elasticsearch_node: ElasticsearchNode) -> ElasticsearchConnection:
    return ElasticsearchConnection(
        elasticsearch_node.url, username=elasticsearch_node.username, password=elasticsearch_node.password
    )


@pytest.fixture(scope="module")
def encoder() -> RememberingEncoder:
    return RememberingEncoder()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> BeirDataset:
    return load_beir(write_scifact_slice(tmp_path_factory.mktemp("scifact"), queries=QUERIES, documents=DOCUMENTS))


def open_pair(
    connection: ElasticsearchConnection, index_dir: Path, settings: IndexSettings, with_flat: bool = False
) -> StorePair:
    def elasticsearch(**layout: str) -> ElasticsearchStore:
        layout_settings = dataclasses.replace(settings, backend_options=layout)
        return ElasticsearchStore.create(connection, f"parity-{uuid.uuid4().hex[:12]}", layout_settings)

    return StorePair(
        embedded=create_store(index_dir, settings),
        elasticsearch=elasticsearch(),
        elasticsearch_flat=elasticsearch(vector_index_type="flat") if with_flat else None,
    )


@pytest.fixture(scope="module")
def stores(
    connection: ElasticsearchConnection,
    encoder: RememberingEncoder,
    dataset: BeirDataset,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StorePair]:
    """Both stores filled by the real Indexer from the slice's corpus file."""
    chunking = ChunkingSettings()
    settings = IndexSettings(encoder.info.path, encoder.info.fingerprint, encoder.info.dimensions, chunking)
    pair = open_pair(connection, tmp_path_factory.mktemp("parity") / "idx", settings, with_flat=True)
    assert pair.elasticsearch_flat is not None
    for store in (pair.embedded, pair.elasticsearch, pair.elasticsearch_flat):
        Indexer(store, encoder, chunking).index([dataset.corpus_path])
    yield pair
    for store in (pair.embedded, pair.elasticsearch, pair.elasticsearch_flat):
        store.close()


@pytest.fixture(scope="module")
def rankings(stores: StorePair, encoder: RememberingEncoder, dataset: BeirDataset) -> Rankings:
    def top(store: Store) -> dict[str, dict[str, list[str]]]:
        searcher = Searcher(store, encoder)
        return {
            mode: {qid: [hit.doc_id for hit in searcher.search(text, K, mode).hits]
                   for qid, text in dataset.queries.items()}
            for mode in MODES
        }

    return Rankings(embedded=top(stores.embedded), elasticsearch=top(stores.elasticsearch))


def agreement(first: dict[str, list[str]], second: dict[str, list[str]]) -> tuple[float, float]:
    """Mean top-K overlap and the share of queries with the same top-1, over the queries in `first`."""
    overlaps = [len(set(first[q]) & set(second[q])) / max(len(first[q]), 1) for q in first]
    same_top1 = [first[q][:1] == second[q][:1] for q in first]
    return float(np.mean(overlaps)), float(np.mean(same_top1))


def test_both_stores_hold_the_same_documents(stores: StorePair, dataset: BeirDataset) -> None:
    embedded, elasticsearch = stores.embedded.stats(), stores.elasticsearch.stats()
    assert embedded.documents == elasticsearch.documents == len(dataset.corpus_path.read_text().splitlines())
    assert embedded.passages == elasticsearch.passages > embedded.documents
    stored = stores.embedded.stored_documents()
    assert stored == stores.elasticsearch.stored_documents()
    assert stores.embedded.passage_counts(list(stored)) == stores.elasticsearch.passage_counts(list(stored))
    for doc_id in sorted(stored)[:: len(stored) // 10]:
        assert stores.embedded.get_document(doc_id) == stores.elasticsearch.get_document(doc_id)


def test_dense_rankings_and_scores_agree(stores: StorePair, rankings: Rankings, encoder: Encoder,
                                         dataset: BeirDataset) -> None:
    overlap, same_top1 = agreement(rankings.embedded["dense"], rankings.elasticsearch["dense"])
    assert overlap >= DENSE_MIN_OVERLAP and same_top1 >= DENSE_MIN_SAME_TOP1, (overlap, same_top1)
    # Elasticsearch's cosine _score is mapped back to the inner product, so shared passages score the same.
    vector = encoder.encode_query(next(iter(dataset.queries.values())))
    embedded = {(h.doc_id, h.position): h.score for h in stores.embedded.dense_search(vector, K)}
    elasticsearch = {(h.doc_id, h.position): h.score for h in stores.elasticsearch.dense_search(vector, K)}
    shared = sorted(embedded.keys() & elasticsearch.keys())
    assert len(shared) >= 0.9 * K
    assert [elasticsearch[p] for p in shared] == pytest.approx([embedded[p] for p in shared], abs=1e-4)


def test_exact_dense_search_returns_the_same_ids_and_scores(
    stores: StorePair, encoder: Encoder, dataset: BeirDataset
) -> None:
    """FAISS's flat index and Elasticsearch's `flat` vector index both scan every vector: same passages, same
    order, same scores, and so the same documents for every query."""
    assert stores.elasticsearch_flat is not None
    for text in dataset.queries.values():
        vector = encoder.encode_query(text)
        embedded = stores.embedded.dense_search(vector, K)
        flat = stores.elasticsearch_flat.dense_search(vector, K)
        assert [(h.doc_id, h.position) for h in flat] == [(h.doc_id, h.position) for h in embedded], text
        assert [h.score for h in flat] == pytest.approx([h.score for h in embedded], abs=1e-4)
        ids = [[hit.doc_id for hit in Searcher(store, encoder).search(text, K, "dense").hits]
               for store in (stores.embedded, stores.elasticsearch_flat)]
        assert ids[0] == ids[1], text


def test_bm25_rankings_agree(stores: StorePair, rankings: Rankings) -> None:
    overlap, same_top1 = agreement(rankings.embedded["bm25"], rankings.elasticsearch["bm25"])
    assert overlap >= BM25_MIN_OVERLAP and same_top1 >= BM25_MIN_SAME_TOP1, (overlap, same_top1)


def test_hybrid_rankings_agree(stores: StorePair, rankings: Rankings) -> None:
    overlap, same_top1 = agreement(rankings.embedded["hybrid"], rankings.elasticsearch["hybrid"])
    assert overlap >= HYBRID_MIN_OVERLAP and same_top1 >= HYBRID_MIN_SAME_TOP1, (overlap, same_top1)


def test_evaluation_gives_the_same_metrics(stores: StorePair, encoder: Encoder, dataset: BeirDataset) -> None:
    """`bertsearch eval` on this slice: every measure of every pipeline within 0.01 on both stores."""
    embedded = evaluate(Searcher(stores.embedded, encoder), dataset, MODES)
    elasticsearch = evaluate(Searcher(stores.elasticsearch, encoder), dataset, MODES)
    gaps = {(mode, measure): round(abs(elasticsearch[mode][measure] - embedded[mode][measure]), 4)
            for mode in MODES for measure in ("nDCG@10", "RR@10", "R@100")}
    assert max(gaps.values()) <= MAX_METRIC_GAP, gaps


def unstemmable_corpus(rng: np.random.Generator, dims: int) -> tuple[list[EncodedDocument], list[str]]:
    """Documents and queries of Zipf-distributed tokens like `w17`, which stemming cannot change."""
    vocabulary = np.array([f"w{i}" for i in range(3000)])
    frequency = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.05

    def words(count: int, weights: np.ndarray) -> str:
        return " ".join(rng.choice(vocabulary, size=count, p=weights / weights.sum()))

    batch = []
    for d in range(400):
        title = words(int(rng.integers(2, 8)), frequency)
        passages = [Passage(f"d{d}", i, words(int(rng.integers(20, 120)), frequency), title)
                    for i in range(int(rng.integers(1, 4)))]
        vectors = rng.normal(size=(len(passages), dims)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        document = Document(f"d{d}", " ".join(p.text for p in passages), title, f"/corpus/{d}.txt")
        batch.append(EncodedDocument(document, f"hash-{d}", passages, vectors))
    # Queries lean less towards the commonest tokens than documents do, as real queries do.
    queries = [words(int(rng.integers(2, 6)), np.sqrt(frequency)) for _ in range(100)]
    return batch, queries


def test_bm25_scoring_agrees_where_no_stemming_applies(connection: ElasticsearchConnection, tmp_path: Path) -> None:
    """The scoring model alone: Elasticsearch summing a BM25 per field (multi_match most_fields) instead of
    scoring one combined field as FTS5 does measured 0.75 overlap here."""
    dims = 16
    batch, queries = unstemmable_corpus(np.random.default_rng(7), dims)
    pair = open_pair(connection, tmp_path / "idx", IndexSettings("/m", "f" * 16, dims, ChunkingSettings()))
    try:
        for store in (pair.embedded, pair.elasticsearch):
            store.write(batch)
        embedded, elasticsearch = (
            {query: [f"{h.doc_id}#{h.position}" for h in store.keyword_search(query, K)] for query in queries}
            for store in (pair.embedded, pair.elasticsearch)
        )
    finally:
        pair.embedded.close()
        pair.elasticsearch.close()
    overlap, same_top1 = agreement(embedded, elasticsearch)
    assert overlap >= UNSTEMMED_MIN_OVERLAP and same_top1 >= UNSTEMMED_MIN_SAME_TOP1, (overlap, same_top1)
