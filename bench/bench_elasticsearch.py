"""Elasticsearch dense retrieval: HNSW kNN latency against exact scans, and bulk indexing throughput.

Usage:
    python bench/bench_elasticsearch.py [--synthetic-sizes 100000] [--queries 200] [--no-scifact]

Starts its own node with scripts/elasticsearch (stopped at the end), prints one JSON object and writes
bench/results/elasticsearch.json. Every ratio compares numbers measured in the same run on the same node.

Two corpora: SciFact (../shared/datasets/scifact: its 5,183 abstracts chunked and encoded by the default model
as `bertsearch index` would, queried with its 300 test queries; the encoding is not timed), and synthetic
unit vectors around 1,000 random centres in 384 dimensions (the default model's), which cluster as sentence
embeddings do, queried with corpus vectors plus noise so each query has true near neighbours.

- `hnsw`, `int8_hnsw`: the kNN request ElasticsearchStore.dense_search sends (k=10, num_candidates=100), on
  indices the store built and filled through `ElasticsearchStore.write` in the indexer's batches (which is
  what the indexing throughput measures: bulk requests with text, metadata and vectors, stale-passage lookups,
  refreshes and the count check). Like every timed request here it fetches ids only, no _source.
- `script_score`: the original Elasticsearch+BERT demos' exact search, a `script_score` query computing
  `cosineSimilarity` for every document. It needs the painless module, which the integ-test distribution lacks
  (and which is not published on Maven Central): the benchmark tries it and records the error, and times it
  only where it works.
- `flat_exact`: the exact search that does work there, the same kNN request on a `flat` dense_vector index,
  which scans every vector in Lucene's vectorised code rather than running a script per document (so
  likely faster than script_score would be). Filled with the bare bulk helper (vectors only).
- `numpy_exact`: a matrix-vector product over all vectors in this process, the floor of an exact scan, and the
  truth for recall@10.

Every index is force-merged to one segment before timing, as a settled index would be.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from elasticsearch import ApiError, Elasticsearch, helpers

from bertsearch.beir import load_beir
from bertsearch.indexer.chunking import chunk_document
from bertsearch.indexer.pipeline import content_hash
from bertsearch.indexer.readers import iter_documents
from bertsearch.models.encoder import Encoder
from bertsearch.settings import WRITE_BATCH_PASSAGES, ChunkingSettings, IndexSettings
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from bertsearch.types import Document, Passage

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRIPT = ROOT / "scripts" / "elasticsearch"
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact"
STORE_VECTOR_INDICES = ("hnsw", "int8_hnsw")
DIMS = 384
K = 10
NUM_CANDIDATES = 100  # what ElasticsearchStore.dense_search asks for when k=10
PASSAGES_PER_DOCUMENT = 2
CENTRES = 1_000
WARM_UP = 20
COSINE_SCRIPT = "cosineSimilarity(params.query_vector, 'vector') + 1.0"


def clustered_unit_vectors(rng: np.random.Generator, count: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors each about 45° from a random centre, as a document sits near its topic."""
    noise = rng.normal(size=(count, DIMS)).astype(np.float32) / np.sqrt(DIMS)
    vectors = centres[rng.integers(len(centres), size=count)] + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def synthetic_corpus(rng: np.random.Generator, size: int, queries: int) -> tuple[list[EncodedDocument], np.ndarray]:
    """`size` passages of a few words, two to a document, with clustered vectors; and query vectors."""
    centres = rng.normal(size=(CENTRES, DIMS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered_unit_vectors(rng, size, centres)
    picked = vectors[rng.integers(size, size=queries + WARM_UP)]
    query_vectors = clustered_unit_vectors(rng, len(picked), picked)  # near a corpus vector, as a real query is
    documents = []
    for start in range(0, len(vectors), PASSAGES_PER_DOCUMENT):
        doc_id = f"d{start // PASSAGES_PER_DOCUMENT}"
        rows = vectors[start : start + PASSAGES_PER_DOCUMENT]
        passages = [Passage(doc_id, i, f"passage {i} of {doc_id}") for i in range(len(rows))]
        document = Document(doc_id, " ".join(p.text for p in passages), source=f"/bench/{doc_id}")
        documents.append(EncodedDocument(document, doc_id, passages, rows))
    return documents, query_vectors


def scifact_corpus(folder: Path, queries: int) -> tuple[list[EncodedDocument], np.ndarray]:
    """SciFact's abstracts chunked and encoded as the indexer does, and its test queries encoded as a search does
    (the first WARM_UP repeated to warm up, so every test query is timed when `queries` allows)."""
    dataset = load_beir(folder)
    encoder = Encoder()
    chunking = ChunkingSettings()
    documents = [d for d in iter_documents([dataset.corpus_path]) if isinstance(d, Document)]
    chunked = [chunk_document(d, encoder.tokenizer, chunking.max_tokens, chunking.overlap_tokens) for d in documents]
    vectors = encoder.encode([passage.encoder_input() for passages in chunked for passage in passages])
    encoded, offset = [], 0
    for document, passages in zip(documents, chunked):
        encoded.append(EncodedDocument(document, content_hash(document), passages, vectors[offset : offset + len(passages)]))
        offset += len(passages)
    texts = list(dataset.queries.values())[:queries]
    query_vectors = np.stack([encoder.encode_query(text) for text in texts[:WARM_UP] + texts])
    return encoded, query_vectors


def fill_store(store: ElasticsearchStore, documents: list[EncodedDocument]) -> float:
    """Passages per second stored as the indexer stores them: batches of its size, each written and then
    checked against the store's passage counts."""

    def write(batch: list[EncodedDocument]) -> None:
        store.write(batch)
        store.passage_counts([d.document.doc_id for d in batch])

    started = time.perf_counter()
    batch: list[EncodedDocument] = []
    for document in documents:
        batch.append(document)
        if sum(len(d.passages) for d in batch) >= WRITE_BATCH_PASSAGES:
            write(batch)
            batch = []
    write(batch)
    return sum(len(d.passages) for d in documents) / (time.perf_counter() - started)


def fill_flat_index(client: Elasticsearch, index: str, vectors: np.ndarray) -> float:
    """Passages per second into a bare `flat` index with the bulk helper (no bertsearch bookkeeping)."""
    client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={"properties": {"vector": {
            "type": "dense_vector", "dims": DIMS, "index": True, "similarity": "cosine",
            "index_options": {"type": "flat"},
        }}},
    )
    started = time.perf_counter()
    actions = ({"_index": index, "_id": str(i), "vector": vector.tolist()} for i, vector in enumerate(vectors))
    helpers.bulk(client, actions, chunk_size=500)
    client.indices.refresh(index=index)
    return len(vectors) / (time.perf_counter() - started)


def force_merge(client: Elasticsearch, index: str) -> float:
    started = time.perf_counter()
    client.options(request_timeout=1800).indices.forcemerge(index=index, max_num_segments=1)
    return time.perf_counter() - started


def knn_body(vector: np.ndarray) -> dict[str, Any]:
    knn = {"field": "vector", "query_vector": vector.tolist(), "k": K, "num_candidates": NUM_CANDIDATES}
    return {"knn": knn, "size": K, "source": False}


def script_score_body(vector: np.ndarray) -> dict[str, Any]:
    script = {"source": COSINE_SCRIPT, "params": {"query_vector": vector.tolist()}}
    return {"query": {"script_score": {"query": {"match_all": {}}, "script": script}}, "size": K, "source": False}


def timed(search: Callable[[np.ndarray], list[str]], queries: np.ndarray) -> tuple[dict[str, float], list[list[str]]]:
    """Latency p50/p95 (ms) of `search` over `queries` after the first WARM_UP, and the ids each timed one returned."""
    for vector in queries[:WARM_UP]:
        search(vector)
    samples, results = [], []
    for vector in queries[WARM_UP:]:
        started = time.perf_counter()
        results.append(search(vector))
        samples.append((time.perf_counter() - started) * 1000)
    percentiles = {f"p{q}_ms": round(float(np.percentile(samples, q)), 2) for q in (50, 95)}
    return percentiles, results


def es_search(client: Elasticsearch, index: str, body: Callable[[np.ndarray], dict[str, Any]],
              ids: Callable[[str], str] = str) -> Callable[[np.ndarray], list[str]]:
    def search(vector: np.ndarray) -> list[str]:
        return [ids(hit["_id"]) for hit in client.search(index=index, **body(vector))["hits"]["hits"]]

    return search


def numpy_search(vectors: np.ndarray) -> Callable[[np.ndarray], list[str]]:
    def search(vector: np.ndarray) -> list[str]:
        scores = vectors @ vector
        top = np.argpartition(-scores, K)[:K]
        return [str(i) for i in top[np.argsort(-scores[top])]]

    return search


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])), 4)


def bench_corpus(client: Elasticsearch, connection: ElasticsearchConnection, name: str,
                 documents: list[EncodedDocument], query_vectors: np.ndarray) -> dict[str, Any]:
    """Fill one index per method with `documents`, then time every method on the same queries."""
    vectors = np.concatenate([np.asarray(d.vectors, dtype=np.float32) for d in documents if len(d.passages)])
    # Passage ids `<doc_id>#<position>` to the row numbers the flat index and numpy use.
    rows = {p.passage_id: str(i) for i, p in enumerate(p for d in documents for p in d.passages)}
    stores: dict[str, ElasticsearchStore] = {}
    rates: dict[str, int] = {}
    for kind in STORE_VECTOR_INDICES:
        settings = IndexSettings(name, name, DIMS, ChunkingSettings(), backend="elasticsearch",
                                 backend_options={"vector_index_type": kind})
        stores[kind] = ElasticsearchStore.create(connection, f"bench-{name}-{kind.replace('_', '-')}", settings)
        rates[f"bertsearch_store_{kind}"] = round(fill_store(stores[kind], documents))
    flat_index = f"bench-{name}-flat"
    rates["bulk_flat_vectors_only"] = round(fill_flat_index(client, flat_index, vectors))
    indices = {kind: store.index for kind, store in stores.items()} | {"flat": flat_index}
    merge_seconds = {kind: round(force_merge(client, index), 1) for kind, index in indices.items()}

    latency: dict[str, dict[str, Any]] = {}
    found: dict[str, list[list[str]]] = {}
    latency["numpy_exact"], truth = timed(numpy_search(vectors), query_vectors)
    for kind, store in stores.items():
        latency[kind], found[kind] = timed(es_search(client, store.index, knn_body, rows.__getitem__), query_vectors)
    latency["flat_exact"], found["flat_exact"] = timed(es_search(client, flat_index, knn_body), query_vectors)
    try:
        latency["script_score"], found["script_score"] = timed(
            es_search(client, flat_index, script_score_body), query_vectors
        )
    except ApiError as exc:
        latency["script_score"] = {"unavailable": _reason(exc)}
    for store in stores.values():
        store.close()
    for index in indices.values():
        client.indices.delete(index=index)

    ratios = {
        f"{method}_over_hnsw_{stat}": round(latency[method][stat] / latency["hnsw"][stat], 2)
        for method in ("script_score", "flat_exact", "int8_hnsw", "numpy_exact")
        for stat in ("p50_ms", "p95_ms")
        if stat in latency[method]
    }
    return {
        "corpus": name,
        "documents": len(documents),
        "passages": len(vectors),
        "indexing_passages_per_s": rates,
        "force_merge_s": merge_seconds,
        "latency_ms": latency,
        "ratios": ratios,
        "recall_at_10": {method: recall(ids, truth) for method, ids in found.items()},
    }


def _reason(exc: ApiError) -> str:
    error = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    cause = (error.get("root_cause") or [error])[0] if isinstance(error, dict) else {}
    return f"{exc.meta.status}: {cause.get('reason') or exc.message}"


def start_node(directory: Path) -> dict[str, Any]:
    subprocess.run([str(SCRIPT), "start", "--dir", str(directory)], check=True, stdout=subprocess.DEVNULL)
    return json.loads((directory / "state.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-sizes", default="100000", help="comma-separated passage counts ('' for none)")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per method and corpus")
    parser.add_argument("--scifact", type=Path, default=SCIFACT, help="SciFact in BEIR format")
    parser.add_argument("--no-scifact", action="store_true", help="synthetic corpora only")
    args = parser.parse_args()
    sizes = [int(size) for size in args.synthetic_sizes.split(",") if size]
    rng = np.random.default_rng(0)
    corpora = [] if args.no_scifact else [("scifact", *scifact_corpus(args.scifact, args.queries))]
    corpora += [(f"synthetic{size}", *synthetic_corpus(rng, size, args.queries)) for size in sizes]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bertsearch-bench-es-") as scratch:
        node_dir = Path(scratch) / "node"
        try:
            node = start_node(node_dir)
            connection = ElasticsearchConnection(node["url"], username=node["username"], password=node["password"])
            client = connection.client().options(request_timeout=120)
            report: dict[str, Any] = {
                "elasticsearch": f"{node['version']} (integ-test distribution, heap 1 GB)",
                "cpu_threads": os.cpu_count(),
                "dims": DIMS,
                "k": K,
                "num_candidates": NUM_CANDIDATES,
                "queries": args.queries,
                "corpora": [bench_corpus(client, connection, name, documents, queries)
                            for name, documents, queries in corpora],
            }
        finally:
            subprocess.run([str(SCRIPT), "stop", "--dir", str(node_dir)], check=False, stdout=subprocess.DEVNULL)
    report["seconds"] = round(time.perf_counter() - started, 1)
    # Latency tails depend on what else the machine ran meanwhile.
    report["load_average_1_5_15m"] = [round(load, 2) for load in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "elasticsearch.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
