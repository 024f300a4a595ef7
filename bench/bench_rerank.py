"""Reranking on SciFact: nDCG@10 of the first stage vs. with a reranker at several depths, and latency.

Usage:
    bertsearch train-reranker --index-dir /tmp/scifact-idx --queries ../shared/datasets/scifact/queries.jsonl.gz \\
        --qrels ../shared/datasets/scifact/qrels/train.tsv --output /tmp/reranker-scifact --max-length 192
    python bench/bench_rerank.py --index-dir /tmp/scifact-idx --reranker /tmp/reranker-scifact \\
        --dataset ../shared/datasets/scifact --split test

The cross-encoder scores each query's top max(depths) hybrid hits once; shallower depths reuse those scores
(reranking the top N only reads the first N). Prints one JSON object (and writes bench/results/rerank.json):
per depth nDCG@10 with the reranker's own blend weight and alone, p50/p95 rerank latency per query, and the
training time per 1,000 pairs recorded in the model folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bertsearch.device import ENGINES, Runtime
from bertsearch.beir import load_beir
from bertsearch.evaluation import score_run
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.rerank import Reranker, blend
from bertsearch.search import open_searcher
from bertsearch.types import passage_text

RESULTS = Path(__file__).resolve().parent / "results"


def ranked_run(candidates: dict[str, list[str]], scores: dict[str, np.ndarray], depth: int,
               weight: float | None) -> dict[str, dict[str, float]]:
    """The run with each query's top `depth` reordered (weight None: first stage only)."""
    run = {}
    for query_id, doc_ids in candidates.items():
        head = list(range(min(depth, len(doc_ids))))
        if weight is not None:
            final = blend(scores[query_id][: len(head)], weight)
            head.sort(key=lambda i: (-final[i], i))
        order = head + list(range(len(head), len(doc_ids)))
        run[query_id] = {doc_ids[i]: float(len(order) - rank) for rank, i in enumerate(order)}
    return run


def precision_faithfulness(reranker: Reranker, queries: dict[str, str], texts: dict[str, list[str]],
                           candidates: dict[str, list[str]], scores: dict[str, np.ndarray], qrels: dict, depth: int,
                           weight: float) -> dict[str, float]:
    """The runtime-precision scores against fp32 ones on the queries in `texts` (their candidates' texts):
    Spearman correlation per query (mean, min) and nDCG@10 of the blend with each."""
    from scipy.stats import spearmanr

    metadata = reranker.metadata
    reference = CrossEncoder(reranker.folder, metadata.max_length, Runtime("cpu", "fp32"), metadata.scale,
                             metadata.bias)
    chosen = list(texts)
    fp32 = {q: reference.score(queries[q], texts[q]) for q in chosen}
    correlations = [spearmanr(scores[q][: len(fp32[q])], fp32[q]).statistic for q in chosen if len(fp32[q]) > 1]
    subset = {q: candidates[q] for q in chosen}
    judged = {q: qrels[q] for q in chosen}
    return {
        "queries": len(chosen),
        "spearman_mean": round(float(np.mean(correlations)), 4),
        "spearman_min": round(float(np.min(correlations)), 4),
        "ndcg@10_runtime_precision": round(score_run(judged, ranked_run(subset, scores, depth, weight))["nDCG@10"], 4),
        "ndcg@10_fp32": round(score_run(judged, ranked_run(subset, fp32, depth, weight))["nDCG@10"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--reranker", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--depths", default="10,20,50")
    parser.add_argument("--limit", type=int, default=0, help="Only the first N queries (0: all).")
    parser.add_argument("--latency-queries", type=int, default=50,
                        help="Time the shallower depths on this many queries (the deepest is timed on all).")
    parser.add_argument("--force", action="store_true", help="Measure a reranker its check refuses.")
    parser.add_argument("--engine", choices=ENGINES, default="torch",
                        help="Run the reranker on torch (as the server does) or its ONNX form (as `query` does).")
    parser.add_argument("--faithfulness-queries", type=int, default=50,
                        help="Score this many queries' candidates in fp32 too, to check the runtime's precision.")
    args = parser.parse_args()

    depths = sorted(int(d) for d in args.depths.split(","))
    dataset = load_beir(args.dataset, args.split)
    queries = dict(list(dataset.queries.items())[: args.limit or None])
    qrels = {q: dataset.qrels[q] for q in queries}
    searcher = open_searcher(args.index_dir)
    reranker = Reranker(args.reranker, force=args.force, engine=args.engine)
    scorer = reranker.scorer
    candidates, scores, latency = {}, {}, {depth: [] for depth in depths}
    faithfulness_texts: dict[str, list[str]] = {}
    scorer.score("warm up", ["warm up"])
    with searcher.store:
        for number, (query_id, text) in enumerate(queries.items()):
            hits = searcher.search(text, k=100, mode="hybrid", rerank=False).hits
            candidates[query_id] = [h.doc_id for h in hits]
            texts = [passage_text(h.title, h.passage) for h in hits[: depths[-1]]]
            if number < args.faithfulness_queries:
                faithfulness_texts[query_id] = texts
            for depth in depths[:-1] if number < args.latency_queries else ():
                started = time.perf_counter()
                scorer.score(text, texts[:depth])
                latency[depth].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            scores[query_id] = scorer.score(text, texts)
            latency[depths[-1]].append((time.perf_counter() - started) * 1000)

    faithfulness = precision_faithfulness(reranker, queries, faithfulness_texts, candidates, scores, qrels, depths[-1],
                                          reranker.weight)
    metadata = reranker.metadata
    training = metadata.training
    pairs = training.get("total_steps", 0) * training.get("groups_per_step", 0) * (1 + training.get("negatives", 0))
    first_stage = score_run(qrels, ranked_run(candidates, scores, depths[-1], None))
    report = {
        "queries": len(queries),
        "split": args.split,
        "reranker": str(args.reranker),
        "blend_weight": reranker.weight,
        "check": metadata.check.__dict__ if metadata.check else None,
        "hybrid": first_stage,
        "rerank": {
            str(depth): {
                "blend": score_run(qrels, ranked_run(candidates, scores, depth, reranker.weight)),
                "rerank_only": score_run(qrels, ranked_run(candidates, scores, depth, 1.0)),
                "latency_p50_ms": round(float(np.percentile(latency[depth], 50)), 1),
                "latency_p95_ms": round(float(np.percentile(latency[depth], 95)), 1),
            }
            for depth in depths
        },
        # Training steps only: the periodic validation passes are timed apart.
        "training_seconds_per_1000_pairs": round(
            (training["seconds"] - training.get("validation_seconds", 0.0)) / pairs * 1000, 1) if pairs else None,
        "training_device": f"{training.get('device')} {training.get('precision')}",
        "engine": args.engine,
        "precision": scorer.runtime.precision if isinstance(scorer, CrossEncoder) else "fp32",
        "faithfulness_to_fp32": faithfulness,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rerank.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
