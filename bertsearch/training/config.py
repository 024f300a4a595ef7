"""How long and how hard a reranker trains, and what it holds out to validate on."""

from __future__ import annotations

from dataclasses import dataclass

from bertsearch.rerank import DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class TrainingConfig:
    """How long and how hard to train. `max_steps` caps `epochs`; validation runs every `eval_every` steps, and
    training stops early after `patience` validations without improvement."""

    epochs: float = 3.0
    max_steps: int | None = None
    groups_per_step: int = 2
    negatives: int = 7
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.1
    max_length: int = DEFAULT_MAX_LENGTH
    eval_every: int | None = None
    # Stop after this many validations in a row without a better score (None: run all steps).
    patience: int | None = None
    validation_queries: int = 100
    seed: int = 13
