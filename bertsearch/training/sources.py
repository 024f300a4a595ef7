"""Where a reranker's training data comes from: labelled pairs, judgments against an index, or an index alone."""

from __future__ import annotations

from pathlib import Path

from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import TrainingData, TrainingDataError, pairs_data


def training_data(config: TrainingConfig, pairs: Path | None = None, index_dir: Path | None = None,
                  queries: Path | None = None, qrels: Path | None = None, self_supervised: bool = False,
                  max_documents: int = 2000) -> TrainingData:
    """The data `bertsearch train-reranker` trains on, from exactly one source:

    - `pairs`: a file of labelled pairs (no first stage to validate against);
    - `queries` and `qrels` with `index_dir`: judged positives, hard negatives from the index;
    - `self_supervised` with `index_dir`: pseudo-queries from the indexed documents, validated on `queries` and
      `qrels` if given, else on held-out pseudo-queries.
    """
    from bertsearch.search import open_searcher
    from bertsearch.training.judgments import (
        judged_validation,
        judgments_data,
        read_judgments,
    )
    from bertsearch.training.self_supervised import self_supervised_data

    if (queries is None) != (qrels is None):
        raise TrainingDataError("queries and their judgments (qrels) go together")
    if sum((pairs is not None, queries is not None and not self_supervised, self_supervised)) != 1:
        raise TrainingDataError("train from exactly one source: pairs, judgments, or self-supervised")
    if pairs is not None:
        return pairs_data(pairs, config)
    if index_dir is None:
        raise TrainingDataError("training from judgments or self-supervised needs an index")
    searcher = open_searcher(index_dir, engine="torch")  # training loads torch anyway; its pseudo-query check indexes
    with searcher.store:
        if not self_supervised:
            assert queries is not None and qrels is not None
            return judgments_data(searcher, queries, qrels, config)
        validation = None
        if queries is not None and qrels is not None:
            validation = judged_validation(searcher, *read_judgments(queries, qrels))[: config.validation_queries]
        return self_supervised_data(searcher, config, max_documents, validation)
