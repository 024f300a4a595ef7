"""Reranker pieces a user relies on: the blend, the check that refuses a reranker that does not help."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bertsearch.rerank import (
    METADATA_NAME,
    RerankCheck,
    RerankerError,
    RerankerRejectedError,
    blend,
    check_usable,
    read_metadata,
)


def test_blend_weight_zero_keeps_first_stage_order_and_one_follows_the_cross_encoder() -> None:
    ce = np.array([0.1, 3.0, 2.0])
    assert list(np.argsort(-blend(ce, 0.0))) == [0, 1, 2]
    assert list(np.argsort(-blend(ce, 1.0))) == [1, 2, 0]
    assert blend(np.array([1.0, 1.0]), 1.0).tolist() == [0.0, 0.0]  # equal scores: no division by zero


def check(first_stage: float, blended: float, weight: float) -> RerankCheck:
    return RerankCheck(queries=100, depth=20, first_stage=first_stage, rerank_only=blended, blend=blended,
                       blend_weight=weight)


def write_metadata(folder: Path, check_: RerankCheck | None) -> Path:
    folder.mkdir(exist_ok=True)
    data = {"base_model": "b", "data_source": "s", "data_hash": "h", "steps": 1, "max_length": 64,
            "scale": 20.0, "bias": 0.0, "check": None if check_ is None else check_.__dict__}
    (folder / METADATA_NAME).write_text(json.dumps(data))
    return folder


def test_a_reranker_that_helps_is_usable(tmp_path: Path) -> None:
    folder = write_metadata(tmp_path / "good", check(0.70, 0.73, 0.6))
    check_usable(folder, read_metadata(folder), force=False)


@pytest.mark.parametrize("check_", [check(0.70, 0.69, 1.0), check(0.70, 0.70, 0.0), None])
def test_a_reranker_that_loses_or_was_never_checked_is_refused_unless_forced(tmp_path: Path, check_) -> None:
    folder = write_metadata(tmp_path / "bad", check_)
    with pytest.raises(RerankerRejectedError, match=f"reranker {re.escape(str(folder))} (was never checked|does not improve)") as caught:
        check_usable(folder, read_metadata(folder), force=False)
    assert caught.value.folder == folder and caught.value.check == read_metadata(folder).check
    assert "--" not in str(caught.value)
    check_usable(folder, read_metadata(folder), force=True)


def test_a_folder_without_metadata_is_not_a_reranker(tmp_path: Path) -> None:
    with pytest.raises(RerankerError, match="not a bertsearch reranker"):
        read_metadata(tmp_path)
