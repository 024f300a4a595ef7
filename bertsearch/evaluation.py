"""Relevance evaluation on BEIR-format datasets, measured with ir-measures (never hand-rolled)."""

from __future__ import annotations

import csv
import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import ir_measures
import numpy as np
from ir_measures import R, RR, nDCG

from bertsearch.errors import BertsearchError, DatasetError
from bertsearch.search import MODES, Searcher, ms_since

if TYPE_CHECKING:
    from bertsearch.indexer.pipeline import IndexSummary
    from bertsearch.indexer.progress import IndexProgress
    from bertsearch.stores import StoreLocation

MEASURES = (nDCG @ 10, RR @ 10, R @ 100)
RUN_DEPTH = 100
# A pipeline is a search mode, optionally followed by reranking ("hybrid+rerank").
RERANK_PIPELINES = ("hybrid+rerank", "dense+rerank")
PIPELINES = (*MODES, *RERANK_PIPELINES)


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR folder: the corpus file, the queries of one split, and their relevance judgments."""

    name: str
    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _open_text(path: Path):  # noqa: ANN202 - a text file handle
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder} is not a BEIR dataset: {stem}.jsonl or {stem}.jsonl.gz is missing")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query-id → {corpus-id: relevance} from a BEIR qrels TSV (with or without its header)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (line_number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(f"{path}:{line_number}: expected query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError:
                raise DatasetError(f"{path}:{line_number}: score {row[2]!r} is not an integer") from None
    return qrels


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """The dataset in `folder`, restricted to the queries judged in `split`."""
    if not folder.is_dir():
        raise DatasetError(f"dataset folder not found: {folder}")
    corpus = _find(folder, "corpus")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise DatasetError(f"no qrels for split {split!r} in {folder} (available: {', '.join(available) or 'none'})")
    qrels = read_qrels(qrels_path)
    queries: dict[str, str] = {}
    with _open_text(_find(folder, "queries")) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                query_id = str(record["_id"])
            except (ValueError, KeyError):
                raise DatasetError(f"queries line {line_number}: not a JSON record with an _id") from None
            if query_id in qrels:
                queries[query_id] = str(record.get("text", ""))
    missing = set(qrels) - set(queries)
    if missing:
        raise DatasetError(f"{len(missing)} judged queries are missing from the queries file (e.g. {sorted(missing)[0]})")
    return BeirDataset(name=folder.resolve().name, corpus_path=corpus, queries=queries, qrels=qrels)


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
    store, encoder, _ = open_index_for_writing(location)
    with store:
        summary = Indexer(store, encoder, store.settings.chunking, progress).index([dataset.corpus_path], prune=True)
        settings = store.settings
        query_encoder = load_query_encoder(settings.model_path, settings.model_fingerprint, loaded=encoder)
        searcher = Searcher(store, query_encoder, reranker, depth)
        return DatasetEvaluation(summary, evaluate(searcher, dataset, chosen, ignore_identical_ids))
