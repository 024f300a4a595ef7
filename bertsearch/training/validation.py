"""Validation: how a reranker compares with the first stage on held-out queries, and which blend to use."""

from __future__ import annotations

from collections.abc import Sequence

from bertsearch.evaluation import score_run
from bertsearch.models.base import PairScorer
from bertsearch.rerank import RerankCheck, blend
from bertsearch.training.data import TrainingData, TrainingGroup, ValidationQuery

BLEND_WEIGHTS = tuple(round(w * 0.05, 2) for w in range(21))


def rerank_check(cross_encoder: PairScorer, queries: Sequence[ValidationQuery]) -> RerankCheck:
    """nDCG@10 of the first stage, the reranker alone, and the best blend of the two (weight chosen here)."""
    qrels = {str(i): q.relevant for i, q in enumerate(queries)}
    ce_scores = [cross_encoder.score(q.query, [text for _, text in q.candidates]) for q in queries]

    def ndcg(weight: float) -> float:
        run = {}
        for i, (query, scores) in enumerate(zip(queries, ce_scores, strict=True)):
            final = blend(scores, weight)
            order = sorted(range(len(final)), key=lambda j: (-final[j], j))
            run[str(i)] = {query.candidates[j][0]: float(len(order) - rank) for rank, j in enumerate(order)}
        return score_run(qrels, run)["nDCG@10"]

    by_weight = {w: ndcg(w) for w in BLEND_WEIGHTS}
    best = max(BLEND_WEIGHTS, key=lambda w: (by_weight[w], -w))
    depth = max((len(q.candidates) for q in queries), default=0)
    return RerankCheck(queries=len(queries), depth=depth, first_stage=round(by_weight[0.0], 4),
                       rerank_only=round(by_weight[1.0], 4), blend=round(by_weight[best], 4), blend_weight=best)


def pairwise_accuracy(cross_encoder: PairScorer, groups: Sequence[TrainingGroup]) -> float:
    """How often a held-out positive scores above a negative of the same query."""
    wins = total = 0
    for group in groups:
        if not group.negatives:
            continue
        scores = cross_encoder.score(group.query, [*group.positives, *group.negatives])
        pos, neg = scores[: len(group.positives)], scores[len(group.positives):]
        wins += int((pos[:, None] > neg[None, :]).sum())
        total += pos.size * neg.size
    return wins / total if total else 0.0


def validate(cross_encoder: PairScorer, data: TrainingData) -> tuple[float, RerankCheck | None]:
    """What checkpoints are chosen by: the best blend's nDCG@10 (with its check), or pairwise accuracy
    on held-out groups when there is no index."""
    if data.validation_queries:
        check = rerank_check(cross_encoder, data.validation_queries)
        return check.blend, check
    return pairwise_accuracy(cross_encoder, data.validation_groups), None
