"""Which data a reranker trains on, chosen from what the caller gave, and how long a run on that source lasts.

`bertsearch.training.training_data` reads the chosen source; this module only names it, so that a front end can
refuse a wrong combination before anything loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bertsearch.errors import BertsearchError

TrainingSource = Literal["pairs", "judgments", "self-supervised"]
# Passes over the training queries: 3 over labelled pairs or judgments; 1 over self-supervised pseudo-queries,
# whose 2,000 (one per document, at the default `max_documents`) make about as many steps.
DEFAULT_EPOCHS: dict[TrainingSource, float] = {"pairs": 3.0, "judgments": 3.0, "self-supervised": 1.0}


class TrainingSourceError(BertsearchError):
    """The arguments name no training source or several (`settings` names all four), or give queries without
    their judgments or the reverse (`settings` names those two)."""


def choose_source(pairs: Path | None, queries: Path | None, qrels: Path | None,
                  self_supervised: bool) -> TrainingSource:
    """The one source the arguments name: labelled `pairs`, `queries` with their `qrels` (judgments), or
    `self_supervised` (whose `queries` and `qrels`, if given, only validate)."""
    if sum((pairs is not None, queries is not None and not self_supervised, self_supervised)) != 1:
        raise TrainingSourceError("train from exactly one source: pairs, judgments (queries and qrels), or "
                                  "self-supervised", settings=("pairs", "queries", "qrels", "self_supervised"))
    if (queries is None) != (qrels is None):
        raise TrainingSourceError("queries and their judgments (qrels) go together", settings=("queries", "qrels"))
    if pairs is not None:
        return "pairs"
    return "self-supervised" if self_supervised else "judgments"
