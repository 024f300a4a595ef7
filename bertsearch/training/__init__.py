"""Training a reranker. Data: `sources` (which one), `data` (the types, and labelled pairs), `judgments`,
`self_supervised`, `mining` (hard negatives); then `loop` (the listwise loss), `validation` (the check against the
first stage, the blend weight) and `artifact` (the model folder, written atomically)."""

from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import (
           TrainingData,
           TrainingDataError,
           TrainingGroup,
           ValidationQuery,
)
from bertsearch.training.loop import TrainingProgress, train_reranker
from bertsearch.training.sources import training_data

__all__ = ["TrainingConfig", "TrainingData", "TrainingDataError", "TrainingGroup", "TrainingProgress",
           "ValidationQuery", "train_reranker", "training_data"]
