"""Training data from relevance judgments: positives from the qrels, hard negatives mined from the index."""

from __future__ import annotations

from pathlib import Path

from bertsearch.beir import read_qrels, read_queries
from bertsearch.rerank import DEFAULT_RERANK_DEPTH
from bertsearch.search import Searcher
from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import (
    TrainingData,
    TrainingDataError,
    TrainingGroup,
    ValidationQuery,
    split_held_out,
)
from bertsearch.training.mining import MINING_DEPTH, first_stage_candidates
from bertsearch.types import passage_text


def judged_validation(searcher: Searcher, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                      depth: int = DEFAULT_RERANK_DEPTH) -> list[ValidationQuery]:
    """Validation queries from judgments: the first stage's top `depth` for each judged query."""
    validation = []
    for query_id, relevant in qrels.items():
        text = queries.get(query_id, "").strip()
        if not text or not any(score > 0 for score in relevant.values()):
            continue
        hits = first_stage_candidates(searcher, text, depth)
        validation.append(ValidationQuery(text, tuple((h.doc_id, passage_text(h.title, h.passage)) for h in hits),
                                          dict(relevant)))
    return validation


def read_judgments(queries_path: Path, qrels_path: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Queries and the judgments of those queries (BEIR qrels TSV)."""
    queries = read_queries(queries_path)
    qrels = {q: docs for q, docs in read_qrels(Path(qrels_path)).items() if q in queries}
    if not qrels:
        raise TrainingDataError(f"no judged query in {qrels_path} is in {queries_path}")
    return queries, qrels


def judgments_data(searcher: Searcher, queries_path: Path, qrels_path: Path, config: TrainingConfig) -> TrainingData:
    """Positives from qrels, hard negatives from the index (first-stage hits not judged relevant)."""
    queries, qrels = read_judgments(queries_path, qrels_path)
    train_ids, held_ids = split_held_out(sorted(qrels), config.validation_queries, config.seed)
    groups = []
    for query_id in train_ids:
        text = queries[query_id].strip()
        judged = qrels[query_id]
        if not text:
            continue
        hits = first_stage_candidates(searcher, text, MINING_DEPTH)
        by_id = {h.doc_id: passage_text(h.title, h.passage) for h in hits}
        positives = []
        for doc_id, score in judged.items():
            if score <= 0:
                continue
            if doc_id in by_id:
                positives.append(by_id[doc_id])
            elif (document := searcher.store.get_document(doc_id)) is not None:
                positives.append(passage_text(document.title, document.text))
        negatives = tuple(t for d, t in by_id.items() if d not in judged)
        if positives:
            groups.append(TrainingGroup(text, tuple(positives), negatives))
    if not groups:
        raise TrainingDataError(f"none of the documents judged relevant in {qrels_path} is in the index")
    validation = judged_validation(searcher, queries, {q: qrels[q] for q in held_ids})
    return TrainingData(source=f"qrels:{Path(qrels_path).resolve()}", groups=groups, validation_queries=validation)
