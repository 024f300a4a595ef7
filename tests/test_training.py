"""Training a reranker: the loss falls and held-out positives end up above negatives more often."""

from __future__ import annotations

import gzip
import json
import random
import tempfile
from pathlib import Path

import pytest

from bertsearch.indexer.pipeline import Indexer, open_index_for_writing
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.models.loading import default_model_path
from bertsearch.rerank import METADATA_NAME, read_metadata, reranker_head
from bertsearch.training import TrainingConfig, TrainingData, TrainingDataError, TrainingGroup, train_reranker
from bertsearch.training.data import read_pairs
from bertsearch.training.self_supervised import pseudo_query, pseudo_query_validation
from bertsearch.training.validation import pairwise_accuracy
from bertsearch.search import open_searcher
from bertsearch.stores import StoreLocation
from bertsearch.types import Document
from tests.helpers import scifact_dir

# 18 steps of 12 short pairs: seconds of compute. Measured: held-out pairwise accuracy 0.53 → 0.71.
TINY = TrainingConfig(epochs=3, groups_per_step=4, negatives=2, learning_rate=1e-4, max_length=64,
                      eval_every=1000, seed=1)


def words(text: str) -> set[str]:
    return {w for w in text.lower().split() if len(w) > 3}


def scifact_groups(count: int) -> list[TrainingGroup]:
    """SciFact train claims with their cited abstract as positive and, as negatives, the two other claims that
    share the most words with the claim. Claims resemble each other more than they resemble abstracts, so the
    untrained model ranks them level with the abstract (pairwise accuracy 0.53); that a claim does not answer
    a claim is what training must learn, and carry over to held-out claims."""
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

        claims = sorted((t for q, t in queries.items() if q != query_id), key=overlap)
        groups.append(TrainingGroup(queries[query_id], (texts[doc_id],), tuple(claims[:2])))
    return groups


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float], list[TrainingGroup]]:
    """A few steps on 24 queries; 40 more are held out (not given to training, which would keep the best
    checkpoint by them)."""
    groups = scifact_groups(64)
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
    trained = pairwise_accuracy(CrossEncoder(output, 64, None, *reranker_head(output)), held_out)
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


def test_pseudo_queries_take_a_title_or_a_sentence_out_of_the_document() -> None:
    sentences = [f"Sentence number {n} talks about protein folding in yeast cells." for n in range(4)]
    document = Document("d1", " ".join(sentences), title="Protein folding in yeast")
    made = [pseudo_query(document, random.Random(seed)) for seed in range(20)]
    titles = [m for m in made if m is not None and m.is_title]
    sentence_queries = [m for m in made if m is not None and not m.is_title]
    assert titles and sentence_queries
    assert all(m.query == document.title and m.positive.title == "" and m.positive.text == document.text
               for m in titles)
    for m in sentence_queries:
        assert m.query in sentences and m.query not in m.positive.text
        assert m.positive.title == document.title and len(m.positive.text) < len(document.text)
    assert pseudo_query(Document("d2", "Too short. Really."), random.Random(0)) is None


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 SciFact abstracts in an embedded index."""
    with gzip.open(scifact_dir() / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line, _ in zip(handle, range(60))]
    documents = [Document(r["_id"], r["text"], title=r["title"]) for r in records]
    location = StoreLocation(index_dir=tmp_path_factory.mktemp("index") / "idx")
    store, encoder, chunking = open_index_for_writing(location)
    with store:
        Indexer(store, encoder, chunking).index_documents(documents)
    return location.index_dir


def test_pseudo_query_validation_hides_the_query_from_the_first_stage(small_index: Path) -> None:
    searcher = open_searcher(small_index, engine="torch")  # its temporary index is encoded with torch
    with searcher.store:
        documents = [searcher.store.get_document(d) for d in sorted(searcher.store.stored_documents())]
        rng = random.Random(3)
        held = [m for m in (pseudo_query(d, rng) for d in documents) if m is not None and not m.is_title][:5]
        temporary = set(Path(tempfile.gettempdir()).glob("bertsearch-validation-*"))
        validation = pseudo_query_validation(searcher, held, depth=10)
    assert set(Path(tempfile.gettempdir()).glob("bertsearch-validation-*")) == temporary  # removed afterwards
    assert len(validation) == len(held)
    for example, checked in zip(held, validation):
        assert checked.relevant == {example.doc_id: 1}
        assert len(checked.candidates) == 10
        # The first stage searched documents that no longer hold the query's sentence.
        assert not any(example.query in text for _, text in checked.candidates)
        source = dict(checked.candidates).get(example.doc_id)
        if source is not None:  # its best passage, read with its title, is a span of the shortened text
            assert source.startswith(example.positive.title + ". ")
            assert source[len(example.positive.title) + 2:] in example.positive.text
