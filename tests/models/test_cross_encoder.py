"""The torch cross-encoder: its GIL-free trace scores as the eager network does."""

from __future__ import annotations

import numpy as np

from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.models.loading import default_model_path


def test_the_gil_free_trace_scores_as_the_eager_network() -> None:
    cross_encoder = CrossEncoder(default_model_path(), max_length=128)  # BERT weights; untrained scores will do
    passages = ["Vitamin D deficiency is common in northern latitudes.", "Tides follow the moon.",
                "A long passage about bone density, calcium and vitamin D supplements in older adults. " * 6, ""]
    eager = cross_encoder.score("does vitamin D help bones", passages, batch_size=3)
    assert cross_encoder.release_gil() and cross_encoder.release_gil()
    traced = cross_encoder.score("does vitamin D help bones", passages, batch_size=3)
    assert traced.shape == eager.shape == (4,)
    assert np.allclose(traced, eager, atol=0.05)
    assert list(np.argsort(-traced)) == list(np.argsort(-eager))
