"""Relevance evaluation on BEIR-format datasets, measured with ir-measures (never hand-rolled)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ir_measures
import numpy as np
from ir_measures import R, RR, nDCG

from bertsearch.beir import BeirDataset
from bertsearch.errors import BertsearchError
from bertsearch.search import MODES, Searcher, ms_since
from bertsearch.settings import default_index_dir

if TYPE_CHECKING:
    from bertsearch.indexer.pipeline import IndexSummary
    from bertsearch.indexer.progress import IndexProgress
    from bertsearch.stores import StoreLocation

MEASURES = (nDCG @ 10, RR @ 10, R @ 100)
RUN_DEPTH = 100
# A pipeline is a search mode, optionally followed by reranking ("hybrid+rerank").
RERANK_PIPELINES = ("hybrid+rerank", "dense+rerank")
PIPELINES = (*MODES, *RERANK_PIPELINES)


def run_pipeline(
    search: Callable[[str], list[str]],
    queries: dict[str, str],
    ignore_identical_ids: bool = False,
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Run every query; returns the run (query → doc → score, by rank) and per-query latencies in ms."""
    run: dict[str, dict[str, float]] = {}
    latencies = []
    first = next(iter(queries.values()), None)
    if first:
        search(first)  # warm-up: model and index loading are start-up costs, not query latency
    for query_id, text in queries.items():
        started = time.perf_counter()
        doc_ids = search(text)
        latencies.append(ms_since(started))
        if ignore_identical_ids:
            doc_ids = [d for d in doc_ids if d != query_id]
        # Scores from ranks keep our exact order; trec_eval would otherwise break score ties by doc id.
        run[query_id] = {doc_id: float(len(doc_ids) - rank) for rank, doc_id in enumerate(doc_ids)}
    return run, latencies


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, RR@10 and R@100 averaged over the judged queries, named as ir-measures names them."""
    aggregate = ir_measures.calc_aggregate(MEASURES, qrels, run)
    return {str(measure): float(aggregate.get(measure, 0.0)) for measure in MEASURES}


def evaluate(
    searcher: Searcher,
    dataset: BeirDataset,
    pipelines: tuple[str, ...] = MODES,
    ignore_identical_ids: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics and latency p50/p95 (ms) for each pipeline; queries with no text are skipped, counting as misses."""
    queries = {qid: text for qid, text in dataset.queries.items() if text.strip()}
    results = {}
    for pipeline in pipelines:
        mode, _, rerank = pipeline.partition("+")

        def search(text: str, mode: str = mode, rerank: bool = bool(rerank)) -> list[str]:
            return [hit.doc_id for hit in searcher.search(text, k=RUN_DEPTH, mode=mode, rerank=rerank).hits]

        run, latencies = run_pipeline(search, queries, ignore_identical_ids)
        metrics = score_run(dataset.qrels, run)
        metrics["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 2) if latencies else 0.0
        metrics["latency_p95_ms"] = round(float(np.percentile(latencies, 95)), 2) if latencies else 0.0
        results[pipeline] = metrics
    return results



def parse_pipelines(text: str) -> list[str]:
    """The pipelines a comma-separated list names, blanks dropped; `evaluate_dataset` refuses unknown ones."""
    return [name.strip() for name in text.split(",") if name.strip()]


def eval_index_dir(dataset: BeirDataset, root: Path | None = None) -> Path:
    """Where an evaluation of `dataset` indexes its corpus by default: `eval/NAME` under `root` (by default the
    default index folder), beside, never in, the index a user searches."""
    return (root or default_index_dir()) / "eval" / dataset.name


def eval_index_name(dataset: BeirDataset) -> str:
    """The Elasticsearch index an evaluation of `dataset` uses by default, for the same reason."""
    return f"bertsearch-eval-{dataset.name.lower()}"


@dataclass(frozen=True)
class DatasetEvaluation:
    """What `evaluate_dataset` did: the indexing run over the corpus, and each pipeline's metrics."""

    index: IndexSummary
    results: dict[str, dict[str, float]]


def evaluate_dataset(
    location: StoreLocation,
    dataset: BeirDataset,
    pipelines: Sequence[str] = MODES,
    reranker_path: Path | None = None,
    force_reranker: bool = False,
    rerank_depth: int | None = None,
    ignore_identical_ids: bool = False,
    progress: IndexProgress | None = None,
) -> DatasetEvaluation:
    """`bertsearch eval`: index the dataset's corpus at `location` (only what changed since the last run), then run
    its queries through each pipeline, queries encoded as `bertsearch query` encodes them. With a reranker (given, or
    the one the index uses) the +rerank pipelines are added; asked for without one, they are an error."""
    from bertsearch.indexer.pipeline import Indexer, open_index_for_writing
    from bertsearch.models.fast_encoding import indexing_encoder
    from bertsearch.models.loading import load_query_encoder
    from bertsearch.rerank import configured_reranker

    chosen = tuple(dict.fromkeys(pipelines))
    unknown = [p for p in chosen if p not in PIPELINES]
    if unknown or not chosen:
        raise BertsearchError(f"unknown pipeline {', '.join(unknown) or '(none)'}; choose from {', '.join(PIPELINES)}")
    reranker, depth = configured_reranker(location.index_dir, reranker_path, force_reranker, rerank_depth)
    if reranker is not None:
        chosen += tuple(p for p in RERANK_PIPELINES if p not in chosen)
    elif any(p in RERANK_PIPELINES for p in chosen):
        raise BertsearchError("the +rerank pipelines need a reranker: give one, or have the index use one")
    store, encoder, _ = open_index_for_writing(location, claim=False)  # a read-only index may hold it all
    with store:
        passages_encoder = indexing_encoder(encoder, location.index_dir)
        summary = Indexer(store, passages_encoder, store.settings.chunking, progress).index([dataset.corpus_path],
                                                                                             prune=True)
        settings = store.settings
        query_encoder = load_query_encoder(settings.model_path, settings.model_fingerprint, loaded=encoder)
        searcher = Searcher(store, query_encoder, reranker, depth)
        return DatasetEvaluation(summary, evaluate(searcher, dataset, chosen, ignore_identical_ids))
