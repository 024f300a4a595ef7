"""Partitions of a corpus: fixed by the document id alone on every machine, disjoint, covering, and honoured by
the indexer (only its share is indexed, pruned and reported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertsearch.device import Runtime
from bertsearch.beir import load_beir
from bertsearch.evaluation import evaluate
from bertsearch.indexer.partition import Partition, parse_partition, partition_slot
from bertsearch.indexer.pipeline import Indexer, new_index_settings, open_index_for_writing
from bertsearch.models.encoder import Encoder
from bertsearch.search import Searcher
from bertsearch.stores import StoreLocation, create_store
from bertsearch.stores.embedded import EmbeddedStore
from tests.helpers import relevance, store_contents, write_scifact_slice

# Slots of 4 (BLAKE2b of the UTF-8 id); a change here moves documents between the machines of a running job.
PINNED_SLOTS = {"4983": 3, "notes/astronomy.txt": 2, "dossier/été.md": 0, "latin\udce9name.txt": 2, "": 0}


def test_an_id_has_the_same_slot_in_every_process() -> None:
    assert {key: partition_slot(key, 4) for key in PINNED_SLOTS} == PINNED_SLOTS
    # Python's own str hash is salted per process: a child with another salt must agree.
    script = "import json, sys; from bertsearch.indexer.partition import partition_slot; " \
             "print(json.dumps([partition_slot(k, 4) for k in json.loads(sys.argv[1])]))"
    child = subprocess.run([sys.executable, "-c", script, json.dumps(list(PINNED_SLOTS))], capture_output=True,
                           text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert json.loads(child.stdout) == list(PINNED_SLOTS.values())


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_partitions_are_disjoint_cover_every_id_and_share_evenly(count: int) -> None:
    ids = [f"doc-{i}" for i in range(3000)]
    owners = {key: [n for n in range(1, count + 1) if Partition(n, count).holds(key)] for key in ids}
    assert all(len(numbers) == 1 for numbers in owners.values())
    shares = [sum(numbers == [n] for numbers in owners.values()) for n in range(1, count + 1)]
    assert max(shares) - min(shares) < 0.15 * len(ids) / count


def test_parse_accepts_i_of_n_from_1_and_names_what_is_wrong() -> None:
    assert parse_partition("2/3") == Partition(2, 3) and parse_partition(" 1 / 1 ") == Partition(1, 1)
    assert str(parse_partition("4/8")) == "4/8"
    for text, message in (("0/2", "I must be from 1 to 2"), ("3/2", "I must be from 1 to 2"),
                          ("1/0", "must be at least 1"), ("a/b", "whole numbers"), ("1", "whole numbers"),
                          ("-1/2", "whole numbers"), ("", "whole numbers")):
        with pytest.raises(ValueError, match=message):
            parse_partition(text)


def owned_by(partition: Partition, count: int) -> list[str]:
    """The first `count` ids `rec-N` that `partition` holds."""
    ids = (f"rec-{i}" for i in range(1000))
    return [key for key in ids if partition.holds(key)][:count]


def test_each_run_indexes_prunes_and_reports_only_its_own_partition(tmp_path: Path) -> None:
    first, second = Partition(1, 2), Partition(2, 2)
    ids = owned_by(first, 3) + owned_by(second, 3)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    records = corpus / "records.jsonl"
    records.write_text("".join(json.dumps({"_id": key, "text": f"Record {key}."}) + "\n" for key in ids))
    (corpus / "empty.txt").write_text("")  # skipped, and reported by exactly one partition
    store, encoder, chunking = open_index_for_writing(StoreLocation(index_dir=tmp_path / "idx"))
    with store:
        def run(partition: Partition, prune: bool = False):  # noqa: ANN202 - an IndexSummary
            return Indexer(store, encoder, chunking, partition=partition).index([corpus], prune=prune)

        summaries = [run(first), run(second)]
        assert [(s.documents_added, s.documents_in_other_partitions) for s in summaries] == [(3, 3), (3, 3)]
        assert sum(s.documents_skipped for s in summaries) == 1
        assert set(store.stored_documents()) == set(ids)

        gone = [owned_by(first, 1)[0], owned_by(second, 1)[0]]
        records.write_text("".join(line for line in records.read_text().splitlines(keepends=True)
                                   if json.loads(line)["_id"] not in gone))
        pruned = run(first, prune=True)
        assert (pruned.documents_removed, pruned.documents_unchanged) == (1, 2)
        assert set(store.stored_documents()) == set(ids) - {gone[0]}, "another partition's document was pruned"
        assert run(second, prune=True).documents_removed == 1
        assert set(store.stored_documents()) == set(ids) - set(gone)


@pytest.mark.slow
def test_partitions_one_after_another_build_the_index_one_run_builds(tmp_path: Path) -> None:
    """On the embedded store, which takes one writer at a time: same documents, passages and eval figures."""
    dataset = write_scifact_slice(tmp_path / "scifact", queries=12, documents=60)
    # bf16 rounding depends on which texts share a batch, and each partition batches its own share: in fp32 the
    # vectors agree to ~1e-7, so the eval figures can be held to 1e-6.
    encoder = Encoder(runtime=Runtime(device="cpu", precision="fp32"))
    settings = new_index_settings(encoder, None)
    figures = {}
    for name, partitions in (("whole", [None]), ("parts", [Partition(1, 2), Partition(2, 2)])):
        with create_store(tmp_path / name, settings) as store:
            shares = [Indexer(store, encoder, settings.chunking, partition=p).index([dataset / "corpus.jsonl"])
                      for p in partitions]
            assert sum(share.documents_added for share in shares) == 60 and min(s.documents_added for s in shares) > 10
            figures[name] = relevance(evaluate(Searcher(store, encoder), load_beir(dataset)))
    with EmbeddedStore.open(tmp_path / "whole") as whole, EmbeddedStore.open(tmp_path / "parts") as parts:
        assert store_contents(parts) == store_contents(whole)
    assert figures["parts"] == pytest.approx(figures["whole"], abs=1e-6)
