"""Labelled pairs read from a file: both formats, and the files that are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertsearch.training import TrainingDataError, TrainingGroup
from bertsearch.training.data import read_pairs


def test_pairs_file_formats(tmp_path: Path) -> None:
    labelled = tmp_path / "pairs.tsv"
    labelled.write_text("query\tpassage\tlabel\nq1\tgood\t1\nq1\tbad\t0\nq2\tother\t1\n")
    assert read_pairs(labelled) == [TrainingGroup("q1", ("good",), ("bad",)), TrainingGroup("q2", ("other",))]
    triplets = tmp_path / "triplets.jsonl"
    triplets.write_text(json.dumps({"query": "q", "positive": "p", "negative": "n"}) + "\n")
    assert read_pairs(triplets) == [TrainingGroup("q", ("p",), ("n",))]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("q\tp\n", "expected 3 tab-separated columns"),
    ("q\tp\t2\n", "out of range"),
    ("q\tp\t0\n", "no positive pairs"),
])
def test_bad_pairs_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text(content)
    with pytest.raises(TrainingDataError, match=message):
        read_pairs(path)
