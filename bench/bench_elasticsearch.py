"""Elasticsearch dense retrieval: HNSW kNN latency against exact scans, and bulk indexing throughput.

Usage:
    python bench/bench_elasticsearch.py [--sizes 5000,100000] [--queries 200]

Starts its own node with scripts/elasticsearch (stopped at the end), prints one JSON object and writes
bench/results/elasticsearch.json. Every ratio compares numbers measured in the same run on the same node.

- `hnsw`: the kNN request ElasticsearchStore.dense_search sends (k=10, num_candidates=100), on an index the
  store built and filled through `ElasticsearchStore.write` in the indexer's batches. Like every timed
  request here it fetches ids only, no _source.
- `script_score`: the original Elasticsearch+BERT demos' exact search, a `script_score` query computing
  `cosineSimilarity` for every document. It needs the painless module, which the integ-test distribution lacks:
  the benchmark tries it and records the error, and times it only where it works.
- `flat_exact`: the exact search that does work there, the same kNN request on a `flat` dense_vector index,
  which scans every vector in Lucene's vectorised code rather than running a script per document (so
  likely faster than script_score would be).
- `numpy_exact`: a matrix-vector product over all vectors in this process, the floor of an exact scan.

Vectors are synthetic: unit vectors around 1,000 random centres in 384 dimensions (the default model's), which
cluster as sentence embeddings do; queries are corpus vectors plus noise, so each has true near neighbours.
Passage text is a few words, so throughput measures vectors, not text analysis. Both indices are
force-merged to one segment before timing, as a settled index would be.
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

from bertsearch.indexer.pipeline import WRITE_BATCH_PASSAGES
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore
from bertsearch.types import Document, Passage

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRIPT = ROOT / "scripts" / "elasticsearch"
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


def encoded_documents(vectors: np.ndarray) -> list[EncodedDocument]:
    documents = []
    for start in range(0, len(vectors), PASSAGES_PER_DOCUMENT):
        doc_id = f"d{start // PASSAGES_PER_DOCUMENT}"
        rows = vectors[start : start + PASSAGES_PER_DOCUMENT]
        passages = [Passage(doc_id, i, f"passage {i} of {doc_id}") for i in range(len(rows))]
        document = Document(doc_id, " ".join(p.text for p in passages), source=f"/bench/{doc_id}")
        documents.append(EncodedDocument(document, doc_id, passages, rows))
    return documents


def fill_store(store: ElasticsearchStore, documents: list[EncodedDocument]) -> float:
    """Passages per second through `ElasticsearchStore.write`, in the indexer's batch size."""
    started = time.perf_counter()
    batch: list[EncodedDocument] = []
    for document in documents:
        batch.append(document)
        if len(batch) * PASSAGES_PER_DOCUMENT >= WRITE_BATCH_PASSAGES:
            store.write(batch)
            batch = []
    store.write(batch)
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


def bench_size(client: Elasticsearch, connection: ElasticsearchConnection, size: int, queries: int,
               rng: np.random.Generator) -> dict[str, Any]:
    centres = rng.normal(size=(CENTRES, DIMS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered_unit_vectors(rng, size, centres)
    picked = vectors[rng.integers(size, size=queries + WARM_UP)]
    query_vectors = clustered_unit_vectors(rng, len(picked), picked)  # near a corpus vector, as a real query is

    settings = IndexSettings("synthetic", "synthetic", DIMS, ChunkingSettings(), backend="elasticsearch")
    store = ElasticsearchStore.create(connection, f"bench-hnsw-{size}", settings)
    store_rate = fill_store(store, encoded_documents(vectors))
    flat_index = f"bench-flat-{size}"
    flat_rate = fill_flat_index(client, flat_index, vectors)
    indices = {"hnsw": store.index, "flat": flat_index}
    merge_seconds = {name: round(force_merge(client, index), 1) for name, index in indices.items()}

    # Passage ids `d<doc>#<position>` back to the row number the other indices use.
    def row(passage_id: str) -> str:
        doc, _, position = passage_id.partition("#")
        return str(int(doc[1:]) * PASSAGES_PER_DOCUMENT + int(position))

    latency: dict[str, dict[str, Any]] = {}
    found: dict[str, list[list[str]]] = {}
    latency["numpy_exact"], truth = timed(numpy_search(vectors), query_vectors)
    latency["hnsw"], found["hnsw"] = timed(es_search(client, store.index, knn_body, row), query_vectors)
    latency["flat_exact"], found["flat_exact"] = timed(es_search(client, flat_index, knn_body), query_vectors)
    try:
        latency["script_score"], found["script_score"] = timed(
            es_search(client, flat_index, script_score_body), query_vectors
        )
    except ApiError as exc:
        latency["script_score"] = {"unavailable": _reason(exc)}
    store.close()
    for index in indices.values():
        client.indices.delete(index=index)

    ratios = {
        f"{name}_over_hnsw_{stat}": round(latency[name][stat] / latency["hnsw"][stat], 2)
        for name in ("flat_exact", "script_score", "numpy_exact")
        for stat in ("p50_ms", "p95_ms")
        if stat in latency[name]
    }
    return {
        "passages": size,
        "indexing_passages_per_s": {"bertsearch_store_hnsw": round(store_rate), "bulk_flat": round(flat_rate)},
        "force_merge_s": merge_seconds,
        "latency_ms": latency,
        "ratios": ratios,
        "recall_at_10": {name: recall(ids, truth) for name, ids in found.items()},
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
    parser.add_argument("--sizes", default="5000,100000", help="comma-separated passage counts")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per method and size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bertsearch-bench-es-") as scratch:
        node_dir = Path(scratch) / "node"
        try:
            node = start_node(node_dir)
            connection = ElasticsearchConnection(node["url"], username=node["username"], password=node["password"])
            client = connection.client().options(request_timeout=120)
            rng = np.random.default_rng(0)
            report: dict[str, Any] = {
                "elasticsearch": f"{node['version']} (integ-test distribution, heap 1 GB)",
                "cpu_threads": os.cpu_count(),
                "dims": DIMS,
                "k": K,
                "num_candidates": NUM_CANDIDATES,
                "queries": args.queries,
                "sizes": [bench_size(client, connection, size, args.queries, rng) for size in sizes],
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
