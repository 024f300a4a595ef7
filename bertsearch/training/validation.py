"""Validation: how a reranker compares with the first stage on held-out queries, and which blend to use.

With judged queries the blend weight is the one that validates best. With pseudo-queries only (made from the
corpus) the check predicts real queries less well: a reranker that scored 0.983 against 0.955 on them lost 0.031
nDCG@10 on real queries at the weight they chose (0.75). So there the weight is capped at
`MAX_PSEUDO_QUERY_WEIGHT` and chosen by the lower confidence bound of its per-query gain, not its mean: a gain
the check cannot tell from noise gives weight 0, and the reranker is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import ir_measures
import numpy as np

from bertsearch.models.base import PairScorer
from bertsearch.rerank import RerankCheck, blend
from bertsearch.training.data import TrainingData, TrainingGroup, ValidationQuery

BLEND_WEIGHTS = tuple(round(w * 0.05, 2) for w in range(21))
MAX_PSEUDO_QUERY_WEIGHT = 0.5
# One-sided 95%: the weight is trusted only as far as its gain's lower bound.
CONFIDENCE_Z = 1.645
PSEUDO_QUERIES = "pseudo-queries"
_NDCG = ir_measures.parse_measure("nDCG@10")


def per_query_ndcg(queries: Sequence[ValidationQuery], ce_scores: Sequence[np.ndarray], weight: float) -> np.ndarray:
    """nDCG@10 of each query's candidates reordered by the blend at `weight` (0: the first stage's order)."""
    qrels = {str(i): q.relevant for i, q in enumerate(queries)}
    run = {}
    for i, (query, scores) in enumerate(zip(queries, ce_scores, strict=True)):
        final = blend(scores, weight)
        order = sorted(range(len(final)), key=lambda j: (-final[j], j))
        run[str(i)] = {query.candidates[j][0]: float(len(order) - rank) for rank, j in enumerate(order)}
    values = {m.query_id: m.value for m in ir_measures.iter_calc([_NDCG], qrels, run)}
    return np.array([values.get(str(i), 0.0) for i in range(len(queries))])


def gain_lower_bound(gains: np.ndarray) -> float:
    """The one-sided 95% lower bound of the mean of per-query `gains`."""
    if len(gains) < 2:
        return float("-inf")
    return float(gains.mean() - CONFIDENCE_Z * gains.std(ddof=1) / np.sqrt(len(gains)))


def rerank_check(cross_encoder: PairScorer, queries: Sequence[ValidationQuery],
                 evidence: str = "judged") -> RerankCheck:
    """nDCG@10 of the first stage, the reranker alone, and the blend of the two (weight chosen here).

    `evidence` "judged": the best weight. "pseudo-queries": among weights up to `MAX_PSEUDO_QUERY_WEIGHT`, the one
    whose gain has the highest lower confidence bound, or 0 if no bound is above 0.
    """
    ce_scores = [cross_encoder.score(q.query, [text for _, text in q.candidates]) for q in queries]
    by_weight = {w: per_query_ndcg(queries, ce_scores, w) for w in BLEND_WEIGHTS}
    best, lower = choose_blend_weight(by_weight, evidence)
    depth = max((len(q.candidates) for q in queries), default=0)

    def mean(weight: float) -> float:
        return round(float(by_weight[weight].mean()), 4) if queries else 0.0

    return RerankCheck(queries=len(queries), depth=depth, first_stage=mean(0.0), rerank_only=mean(1.0),
                       blend=mean(best), blend_weight=best, evidence=evidence,
                       gain_lower_bound=round(lower, 4) if np.isfinite(lower) else None)


def choose_blend_weight(by_weight: dict[float, np.ndarray], evidence: str) -> tuple[float, float]:
    """(weight, lower bound of its gain) from each weight's per-query nDCG@10 (weight 0: the first stage).

    Judged queries: the weight with the best mean. Pseudo-queries: among weights up to `MAX_PSEUDO_QUERY_WEIGHT`,
    the one whose gain over the first stage has the highest lower confidence bound; 0 unless that bound is above 0.
    Ties go to the lighter weight.
    """
    first_stage = by_weight[0.0]
    lower = {w: gain_lower_bound(values - first_stage) if w else 0.0 for w, values in by_weight.items()}
    if evidence == PSEUDO_QUERIES:
        best = max((w for w in by_weight if w <= MAX_PSEUDO_QUERY_WEIGHT), key=lambda w: (lower[w], -w))
        return (best, lower[best]) if lower[best] > 0 else (0.0, 0.0)
    best = max(by_weight, key=lambda w: (float(by_weight[w].mean()), -w))
    return best, lower[best]


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
    """What checkpoints are chosen (and training stopped early) by: the blend's nDCG@10 on judged queries; on
    pseudo-queries, the first stage's plus the gain's lower bound (what the conservative weight can count on);
    pairwise accuracy on held-out groups when there is no index."""
    if data.validation_queries:
        check = rerank_check(cross_encoder, data.validation_queries, data.validation_evidence)
        if check.judged:
            return check.blend, check
        return check.first_stage + max(check.gain_lower_bound or 0.0, 0.0), check
    return pairwise_accuracy(cross_encoder, data.validation_groups), None
