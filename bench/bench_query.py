"""Query latency on a built index, in-process after warm-up (whole `bertsearch` processes: bench/bench_cli.py).

Usage:
    bertsearch index ../shared/datasets/scifact/corpus.jsonl.gz --index-dir /tmp/scifact-idx
    python bench/bench_query.py --index-dir /tmp/scifact-idx --queries ../shared/datasets/scifact/queries.jsonl.gz

Prints one JSON object (and writes bench/results/query.json): per mode p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

from bertsearch.search import MODES, open_searcher

RESULTS = Path(__file__).resolve().parent / "results"


def read_queries(path: Path, limit: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(limit))]


def percentiles(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(samples, 50)), 2), "p95_ms": round(float(np.percentile(samples, 95)), 2)}


def in_process(index_dir: Path, queries: list[str], k: int) -> dict[str, dict[str, float]]:
    searcher = open_searcher(index_dir)
    results = {}
    for mode in MODES:
        for text in queries[:5]:
            searcher.search(text, k=k, mode=mode)  # warm-up: model load, FAISS load, SQLite page cache
        samples = []
        for text in queries:
            started = time.perf_counter()
            searcher.search(text, k=k, mode=mode)
            samples.append((time.perf_counter() - started) * 1000)
        results[mode] = percentiles(samples)
    searcher.store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl[.gz]")
    parser.add_argument("--limit", type=int, default=300, help="queries timed in-process")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    queries = read_queries(args.queries, args.limit)
    report = {
        "index_dir": str(args.index_dir),
        "queries": len(queries),
        "k": args.k,
        "cpu_threads": os.cpu_count(),
        "in_process": in_process(args.index_dir, queries, args.k),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "query.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
