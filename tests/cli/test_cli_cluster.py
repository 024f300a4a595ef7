"""End-to-end on a real three-node cluster: an index of three shards with a replica each spreads over the nodes,
a node killed with `kill -9` in the middle of `bertsearch index` costs nothing, and queries through the list
of nodes keep answering while one is down."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import ApiError

from bertsearch.errors import BertsearchError
from bertsearch.search import MODES, open_searcher
from bertsearch.stores import resolve_location
from tests.cli.es import connection, credentials, fails_with, index_contents, ok_json, settle
from tests.helpers import OFFLINE_ENV, bertsearch_command, relevance, write_scifact_slice

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchCluster

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch_cluster]

# bf16 rounding depends on which texts share a batch, and a resumed run batches differently; in fp32 the vectors
# agree to ~1e-7, so the eval figures of two runs can be held to 1e-6.
FP32 = {"BERTSEARCH_PRECISION": "fp32"}
LAYOUT = ("--es-shards", "3", "--es-replicas", "1")
# Small bulk writes (~13 of them), so that the kill lands in the middle of the run.
BATCH = ("--batch-passages", "16")
STORED_BEFORE_KILL = 20
RUN_TIMEOUT = 300


@dataclass(frozen=True)
class Indexed:
    index_dir: Path
    es_index: str
    relevance: dict[str, float]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 abstracts (~200 passages, under the kNN candidate count per shard: dense search is exact)."""
    return write_scifact_slice(tmp_path_factory.mktemp("scifact"), queries=20, documents=100)


def index_args(cluster: ElasticsearchCluster, corpus: Path, index_dir: Path, es_index: str) -> tuple:
    return ("index", corpus, "--index-dir", index_dir, "--backend", "elasticsearch", "--es-url", cluster.url,
            "--es-index", es_index)


def evaluate(cluster: ElasticsearchCluster, dataset: Path, indexed_dir: Path, es_index: str) -> dict:
    settle(cluster, es_index)
    return relevance(ok_json(cluster, "eval", dataset, "--index-dir", indexed_dir, "--es-index", es_index, env=FP32))


@pytest.fixture(scope="module")
def clean(elasticsearch_cluster: ElasticsearchCluster, dataset: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """The slice indexed with every node up: what a run that loses a node must match."""
    index_dir, es_index = tmp_path_factory.mktemp("clean") / "idx", f"clean-{uuid.uuid4().hex[:12]}"
    args = index_args(elasticsearch_cluster, dataset / "corpus.jsonl", index_dir, es_index)
    summary = ok_json(elasticsearch_cluster, *args, *LAYOUT, env=FP32)
    assert summary["documents_added"] == summary["documents_seen"] == 100 and summary["documents_failed"] == 0
    return Indexed(index_dir, es_index, evaluate(elasticsearch_cluster, dataset, index_dir, es_index))


def node_number(name: str) -> int:
    """`node-2` → 2 (scripts/elasticsearch names its nodes so)."""
    return int(name.rpartition("-")[2])


def test_three_shards_with_a_replica_each_spread_over_the_three_nodes(
    elasticsearch_cluster: ElasticsearchCluster, clean: Indexed
) -> None:
    client = connection(elasticsearch_cluster).client()
    copies = client.cat.shards(index=clean.es_index, format="json").body
    assert len(copies) == 6 and {copy["state"] for copy in copies} == {"STARTED"}
    assert sorted(Counter(copy["node"] for copy in copies).values()) == [2, 2, 2]
    for shard in ("0", "1", "2"):
        holders = [copy["node"] for copy in copies if copy["shard"] == shard]
        assert len(set(holders)) == 2, f"shard {shard}'s primary and replica share a node"
    assert client.cluster.health(index=clean.es_index)["status"] == "green"
    assert clean.relevance["hybrid nDCG@10"] > 0.7


def stored_documents(cluster: ElasticsearchCluster, es_index: str) -> int:
    try:
        return connection(cluster).client().count(index=es_index, query={"term": {"kind": "document"}})["count"]
    except ApiError as exc:  # 404 before the index is created, 503 while its shards start
        assert exc.meta.status in (404, 503), exc
        return 0


def test_a_node_killed_mid_run_costs_no_document(
    elasticsearch_cluster: ElasticsearchCluster, dataset: Path, clean: Indexed, tmp_path: Path
) -> None:
    cluster, es_index = elasticsearch_cluster, f"killed-{uuid.uuid4().hex[:12]}"
    args = (*index_args(cluster, dataset / "corpus.jsonl", tmp_path / "idx", es_index), *LAYOUT, *BATCH)
    process = subprocess.Popen(bertsearch_command(*args, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **OFFLINE_ENV, **credentials(cluster), **FP32})
    deadline = time.monotonic() + RUN_TIMEOUT
    while process.poll() is None and stored_documents(cluster, es_index) < STORED_BEFORE_KILL:
        assert time.monotonic() < deadline, "indexing stored nothing"
        time.sleep(0.1)
    assert process.poll() is None, "indexing finished before a node could be killed"
    # A node holding a primary of the index, the elected master if it holds one: the cluster must promote a
    # replica (and elect a new master) while the bulk writes go on.
    client = connection(cluster).client()
    master = client.cat.master(format="json").body[0]["node"]
    primaries = {copy["node"] for copy in client.cat.shards(index=es_index, format="json").body if copy["prirep"] == "p"}
    victim = node_number(master if master in primaries else min(primaries))
    cluster.kill(victim)
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
        summary = json.loads(stdout)
        if process.returncode != 0:  # documents the cluster could not store are reported; the next run writes them
            assert summary["documents_failed"] > 0 and stderr.startswith("error: "), stderr
            resumed = ok_json(cluster, *args, env=FP32)
            assert resumed["documents_seen"] == 100 and resumed["documents_failed"] == 0
        assert index_contents(cluster, es_index) == index_contents(cluster, clean.es_index)
        assert evaluate(cluster, dataset, tmp_path / "idx", es_index) == pytest.approx(clean.relevance, abs=1e-6)
    finally:
        if process.poll() is None:
            process.kill()
        cluster.restart(victim)


def test_queries_keep_answering_while_a_node_is_down(
    elasticsearch_cluster: ElasticsearchCluster, dataset: Path, clean: Indexed, tmp_path: Path
) -> None:
    cluster = elasticsearch_cluster
    # Beside it, an index without replicas: every node holds the only copy of one of its shards.
    (tmp_path / "note.txt").write_text("Jupiter is the largest planet in the solar system.\n")
    unreplicated = tmp_path / "unreplicated"
    ok_json(cluster, *index_args(cluster, tmp_path / "note.txt", unreplicated, f"r0-{uuid.uuid4().hex[:12]}"),
            "--es-shards", "3", "--es-replicas", "0")
    queries = [json.loads(line)["text"] for line in (dataset / "queries.jsonl").read_text().splitlines()]
    location = resolve_location(clean.index_dir, es_username=cluster.username, es_password=cluster.password)
    assert location.elasticsearch is not None and location.elasticsearch.nodes == list(cluster.urls)
    searcher = open_searcher(location)
    victim = 2
    with searcher.store:
        def answers() -> dict[tuple[str, str], list[str]]:
            return {(query, mode): [hit.doc_id for hit in searcher.search(query, k=10, mode=mode).hits]
                    for query in queries for mode in MODES}

        expected = answers()
        # The node dies between two searches of one process, which keeps its connections and its list of nodes.
        failed, differing = 0, 0
        for position, (query, mode) in enumerate(expected):
            if position == len(expected) // 3:
                cluster.kill(victim)
            try:
                found = [hit.doc_id for hit in searcher.search(query, k=10, mode=mode).hits]
            except BertsearchError:
                failed += 1
            else:
                differing += found != expected[query, mode]
    try:
        assert (failed, differing) == (0, 0)
        # New processes, each trying the nodes in its own random order, some first through the dead one.
        for mode in MODES:
            hits = ok_json(cluster, "query", queries[0], "--index-dir", clean.index_dir, "--mode", mode)["hits"]
            assert [hit["doc_id"] for hit in hits] == expected[queries[0], mode]
        dead = cluster.node_url(victim)
        fails_with(cluster, f"cannot reach Elasticsearch at {dead}", "query", queries[0], "--index-dir",
                   clean.index_dir, "--es-url", dead, "--mode", "bm25")
        # A shard with no copy left: an error, never the other shards' hits as if they were all.
        fails_with(cluster, "cannot search every shard", "query", "planet", "--index-dir", unreplicated)
    finally:
        cluster.restart(victim)
