"""Elasticsearch on three nodes beside one: bulk indexing throughput and kNN latency with three shards.

Usage:
    python bench/bench_cluster.py [--passages 100000] [--queries 300]

Starts one node (1 GB heap), then, once it is stopped, a three-node cluster (512 MB heap each) with
scripts/elasticsearch, all on this machine, so the three nodes share its cores: the figures show what sharding
and replication cost and give on one machine, not what three machines would do. Prints one JSON object and
writes bench/results/cluster.json.

The corpus is bench_elasticsearch.py's synthetic one: unit vectors clustered around 1,000 centres in 384
dimensions, two short passages per document, queried near corpus vectors. For each layout (nodes, shards,
replicas) a new index is filled through `ElasticsearchStore.write` in the indexer's batches (bulk requests with
text, terms and vectors, stale-passage lookups, refreshes and the count check: what `bertsearch index` pays
besides encoding), force-merged to one segment per shard, then queried with `ElasticsearchStore.dense_search`
(k = 10, ids only), the request `bertsearch query --mode dense` sends, through every node's URL. Recall@10 is
against an exact numpy scan.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_elasticsearch import K, fill_store, force_merge, numpy_search, recall, synthetic_corpus, timed
from bertsearch.settings import ChunkingSettings, IndexSettings
from bertsearch.stores.base import EncodedDocument
from bertsearch.stores.elasticsearch import ElasticsearchConnection, ElasticsearchStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRIPT = ROOT / "scripts" / "elasticsearch"
DIMS = 384
# (nodes, shards, replicas): one node as bertsearch lays out an index by default, the same node with three
# shards, and three nodes with three shards, without and with a replica of each.
LAYOUTS = [(1, 1, 0), (1, 3, 0), (3, 3, 0), (3, 3, 1)]


def bench_layout(connection: ElasticsearchConnection, shards: int, replicas: int, documents: list[EncodedDocument],
                 query_vectors: np.ndarray, truth: list[list[str]], rows: dict[str, str]) -> dict[str, Any]:
    settings = IndexSettings("synthetic", "synthetic", DIMS, ChunkingSettings(), backend="elasticsearch",
                             backend_options={"shards": shards, "replicas": replicas})
    store = ElasticsearchStore.create(connection, f"bench-cluster-{shards}-{replicas}", settings)
    client = connection.client().options(request_timeout=120)
    try:
        rate = fill_store(store, documents)
        client.cluster.health(index=store.index, wait_for_status="green", timeout="120s")
        merge_seconds = force_merge(client, store.index)

        def search(vector: np.ndarray) -> list[str]:
            return [rows[f"{hit.doc_id}#{hit.position}"] for hit in store.dense_search(vector, K, texts=False)]

        latency, found = timed(search, query_vectors)
    finally:
        client.indices.delete(index=store.index)
        store.close()
    return {"shards": shards, "replicas": replicas, "indexing_passages_per_s": round(rate),
            "force_merge_s": round(merge_seconds, 1), "knn_latency_ms": latency, "recall_at_10": recall(found, truth)}


def bench_cluster(nodes: int, layouts: list[tuple[int, int]], documents: list[EncodedDocument],
                  query_vectors: np.ndarray, truth: list[list[str]], rows: dict[str, str]) -> list[dict[str, Any]]:
    """Start `nodes` nodes, measure each (shards, replicas) layout on them, stop them."""
    with tempfile.TemporaryDirectory(prefix="bertsearch-bench-cluster-") as scratch:
        directory = Path(scratch) / "cluster"
        try:
            subprocess.run([str(SCRIPT), "start", "--dir", str(directory), "--nodes", str(nodes)], check=True,
                           stdout=subprocess.DEVNULL)
            state = json.loads((directory / "state.json").read_text())
            connection = ElasticsearchConnection(state["url"], username=state["username"], password=state["password"],
                                                 request_timeout=120)
            return [{"nodes": nodes, **bench_layout(connection, shards, replicas, documents, query_vectors, truth, rows)}
                    for shards, replicas in layouts]
        finally:
            subprocess.run([str(SCRIPT), "stop", "--dir", str(directory)], check=False, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=100_000, help="synthetic passages per index")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per layout")
    args = parser.parse_args()
    documents, query_vectors = synthetic_corpus(np.random.default_rng(0), args.passages, args.queries)
    vectors = np.concatenate([np.asarray(d.vectors, dtype=np.float32) for d in documents])
    rows = {p.passage_id: str(i) for i, p in enumerate(p for d in documents for p in d.passages)}
    _, truth = timed(numpy_search(vectors), query_vectors)
    started = time.perf_counter()
    results = []
    for nodes in sorted({nodes for nodes, _, _ in LAYOUTS}):
        layouts = [(shards, replicas) for n, shards, replicas in LAYOUTS if n == nodes]
        results += bench_cluster(nodes, layouts, documents, query_vectors, truth, rows)
    report = {
        "elasticsearch": "8.19.4 integ-test distribution; 1 node: 1 GB heap; 3 nodes: 512 MB heap each, same machine",
        "cpu_threads": os.cpu_count(),
        "passages": len(vectors),
        "queries": args.queries,
        "k": K,
        "layouts": results,
        "seconds": round(time.perf_counter() - started, 1),
        # Latency tails depend on what else the machine ran meanwhile.
        "load_average_1_5_15m": [round(load, 2) for load in os.getloadavg()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
