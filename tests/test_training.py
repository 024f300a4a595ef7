"""Training a reranker: the loss falls and held-out positives end up above negatives more often."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bertsearch.models import default_model_path
from bertsearch.rerank import METADATA_NAME, CrossEncoder, read_metadata
from bertsearch.training import (
    TrainingConfig,
    TrainingData,
    TrainingDataError,
    TrainingGroup,
    pairwise_accuracy,
    read_pairs,
    train_reranker,
)
from tests.helpers import scifact_dir

TINY = TrainingConfig(epochs=3, groups_per_step=4, negatives=3, learning_rate=1e-4, max_length=64,
                      eval_every=100, seed=1)


def words(text: str) -> set[str]:
    return {w for w in text.lower().split() if len(w) > 3}


def scifact_groups(count: int) -> list[TrainingGroup]:
    """SciFact train claims with their cited abstract as positive and, as negatives, the other abstracts
    and other claims that share the most words with the claim (claims resemble each other more than they
    resemble abstracts, so the untrained model often ranks them first; training must learn otherwise)."""
    source = scifact_dir()
    qrels: dict[str, str] = {}
    for line in (source / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        qrels.setdefault(query_id, doc_id)
        if len(qrels) == count:
            break
    wanted = set(qrels.values())
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts = {r["_id"]: r["text"] for r in map(json.loads, handle) if r["_id"] in wanted}
    with gzip.open(source / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        queries = {r["_id"]: r["text"] for r in map(json.loads, handle) if r["_id"] in qrels}
    groups = []
    for query_id, doc_id in qrels.items():
        query_words = words(queries[query_id])

        def overlap(text: str, query_words: set[str] = query_words) -> int:
            return -len(query_words & words(text))

        abstracts = sorted((t for d, t in texts.items() if d != doc_id), key=overlap)
        claims = sorted((t for q, t in queries.items() if q != query_id), key=overlap)
        groups.append(TrainingGroup(queries[query_id], (texts[doc_id],), (*abstracts[:2], *claims[:2])))
    return groups


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float], list[TrainingGroup]]:
    """A few steps on 24 queries; 16 more are held out (not given to training, which would keep the best
    checkpoint by them)."""
    groups = scifact_groups(40)
    data = TrainingData(source="test", groups=groups[:24])
    losses: list[float] = []
    output = tmp_path_factory.mktemp("reranker") / "model"
    train_reranker(data, output, config=TINY, progress=lambda p: losses.append(p.loss))
    return output, losses, groups[24:]


def test_training_loss_falls(tiny_run: tuple[Path, list[float], list[TrainingGroup]]) -> None:
    _, losses, _ = tiny_run
    assert len(losses) == 18  # 24 groups / 4 per step × 3 epochs
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def test_trained_model_ranks_held_out_positives_higher(tiny_run: tuple[Path, list[float], list[TrainingGroup]]) -> None:
    output, _, held_out = tiny_run
    untrained = pairwise_accuracy(CrossEncoder(default_model_path(), max_length=64), held_out)
    trained = pairwise_accuracy(CrossEncoder(output, max_length=64), held_out)
    assert trained > untrained


def test_model_folder_records_how_it_was_trained(tiny_run: tuple[Path, list[float], list[TrainingGroup]]) -> None:
    output, _, _ = tiny_run
    metadata = read_metadata(output)
    assert metadata.base_model == str(default_model_path())
    assert metadata.data_source == "test" and len(metadata.data_hash) == 16
    assert metadata.steps == 18 and metadata.max_length == 64
    assert metadata.check is None  # no index: never checked against a first stage
    assert {"config.json", "model.safetensors", METADATA_NAME} <= {p.name for p in output.iterdir()}
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


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
