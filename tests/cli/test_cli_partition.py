"""End-to-end: `bertsearch index --partition I/N`. Partitions run at once into one Elasticsearch index, one of them
killed and resumed, end with exactly the index one run builds; bad partitions are one `error:` line. (On the
embedded store, which takes one writer at a time, see tests/indexer/test_partition.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import ApiError

from bertsearch.indexer.partition import Partition
from tests import helpers
from tests.cli import es
from tests.helpers import OFFLINE_ENV, bertsearch_command, relevance, write_scifact_slice

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = pytest.mark.slow

# bf16 rounding depends on which texts share a batch, and each partition batches its own share: in fp32 the
# vectors agree to ~1e-7, so the eval figures of the runs can be held to 1e-6.
FP32 = {"BERTSEARCH_PRECISION": "fp32"}
RUN_TIMEOUT = 300
STORED_BEFORE_KILL = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("scifact"), queries=12, documents=60)


def test_a_partition_that_does_not_exist_is_one_error_line(tmp_path: Path) -> None:
    corpus = tmp_path / "note.txt"
    corpus.write_text("Jupiter is the largest planet.\n")
    for partition, message in (("0/2", "I must be from 1 to 2"), ("3/2", "I must be from 1 to 2"),
                               ("a/b", "a partition is I/N with whole numbers")):
        helpers.fails_with(message, "index", corpus, "--index-dir", tmp_path / "idx", "--partition", partition)
    helpers.fails_with("cannot take --partition", "index", corpus, "--index-dir", tmp_path / "idx", "--rebuild",
                       "--partition", "1/2")
    assert not (tmp_path / "idx").exists()


def stored_of(node: ElasticsearchNode, es_index: str, doc_ids: list[str]) -> int:
    try:
        query = {"bool": {"filter": [{"term": {"kind": "document"}}, {"terms": {"doc_id": doc_ids}}]}}
        return es.connection(node).client().count(index=es_index, query=query)["count"]
    except ApiError as exc:  # 404 before the index is created, 503 while its shard starts
        assert exc.meta.status in (404, 503), exc
        return 0


@pytest.mark.elasticsearch
def test_partitions_at_once_one_killed_and_resumed_build_the_index_one_run_builds(
    elasticsearch_node: ElasticsearchNode, dataset: Path, tmp_path: Path
) -> None:
    node, corpus = elasticsearch_node, dataset / "corpus.jsonl"
    whole, parted = f"whole-{uuid.uuid4().hex[:12]}", f"parted-{uuid.uuid4().hex[:12]}"
    where = ("--backend", "elasticsearch", "--es-url", node.url)
    es.ok_json(node, "index", corpus, "--index-dir", tmp_path / "whole", *where, "--es-index", whole, env=FP32)

    def partition_args(number: int) -> tuple:
        # Each partition as on its own machine: its own index folder, the one shared index. Small batches make
        # the second one slow enough to be killed half-way.
        return ("index", corpus, "--index-dir", tmp_path / f"part-{number}", *where, "--es-index", parted,
                "--partition", f"{number}/2", "--batch-passages", "4")

    env = {**os.environ, **OFFLINE_ENV, **es.credentials(node), **FP32}
    runs = [subprocess.Popen(bertsearch_command(*partition_args(n), "--json"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for n in (1, 2)]
    ids = [json.loads(line)["_id"] for line in corpus.read_text().splitlines()]
    second = [doc_id for doc_id in ids if Partition(2, 2).holds(doc_id)]
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while runs[1].poll() is None and stored_of(node, parted, second) < STORED_BEFORE_KILL:
            assert time.monotonic() < deadline, "the second partition stored nothing"
            time.sleep(0.05)
        assert runs[1].poll() is None, "the second partition finished before it could be killed"
        runs[1].kill()
        runs[1].wait()
        stdout, stderr = runs[0].communicate(timeout=RUN_TIMEOUT)
        assert runs[0].returncode == 0, stderr
    finally:
        for run in runs:
            run.kill()
            run.wait()
    killed_at = stored_of(node, parted, second)
    assert STORED_BEFORE_KILL <= killed_at < len(second), "the second partition was not killed half-way"
    resumed = es.ok_json(node, *partition_args(2), env=FP32)
    assert resumed["documents_unchanged"] >= killed_at and resumed["documents_seen"] == len(second)
    assert json.loads(stdout)["documents_seen"] == len(ids) - len(second)

    assert es.index_contents(node, parted) == es.index_contents(node, whole)
    figures = {}
    for name, es_index in (("whole", whole), ("part-1", parted)):
        es.settle(node, es_index)
        results = es.ok_json(node, "eval", dataset, "--index-dir", tmp_path / name, "--es-index", es_index, env=FP32)
        figures[name] = relevance(results)
    assert figures["part-1"] == pytest.approx(figures["whole"], abs=1e-6)
