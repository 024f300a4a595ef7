"""Shared fixtures: real Elasticsearch, started only if a test asks for it: one node per test session, and a
three-node cluster per module that needs one; one cache of models' ONNX forms per session."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "elasticsearch"
# Covers a first run that fetches the distribution with mvn (~100 MB) before the node's own start timeout.
START_TIMEOUT = 900
# A restart waits for the node to rejoin its cluster (scripts/elasticsearch: start and health timeouts).
RESTART_TIMEOUT = 400
CLUSTER_NODES = 3


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's own cache (commands in subprocesses inherit it): each model is exported to ONNX once per
    session, and never into the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["BERTSEARCH_CACHE_DIR"] = str(folder)
    return folder


@dataclass(frozen=True)
class ElasticsearchNode:
    """A running node: `url` has no credentials; `username`/`password` authenticate."""

    url: str
    username: str
    password: str = field(repr=False)
    directory: Path


@dataclass(frozen=True)
class ElasticsearchCluster:
    """A running cluster on 127.0.0.1: `urls[i]` is node i + 1's (no credentials), `url` lists them all as
    --es-url takes them. `kill` and `restart` act on one node by number, from 1."""

    urls: tuple[str, ...]
    username: str
    password: str = field(repr=False)
    directory: Path

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    def node_url(self, number: int) -> str:
        return self.urls[number - 1]

    def kill(self, number: int) -> None:
        """`kill -9` node `number`: no shutdown, its connections reset; its data stays for a restart."""
        _script("kill", "--dir", str(self.directory), "--node", str(number), timeout=120)

    def restart(self, number: int) -> None:
        """Start node `number` again, on its ports with its data, and wait until the cluster has every node."""
        _script("restart", "--dir", str(self.directory), "--node", str(number), timeout=RESTART_TIMEOUT)


@pytest.fixture(scope="session")
def elasticsearch_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElasticsearchNode]:
    """Start a node with scripts/elasticsearch; fail (never skip) with the log tail if it does not come up."""
    directory = tmp_path_factory.mktemp("elasticsearch") / "node"
    state = _start(directory, 1)
    try:
        yield ElasticsearchNode(
            url=state["url"], username=state["username"], password=state["password"], directory=directory
        )
    finally:
        _stop(directory)


@pytest.fixture(scope="module")
def elasticsearch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElasticsearchCluster]:
    """Three nodes (512 MB heap each) for one test module, then stopped: three JVMs are not kept for the rest
    of the session. Fails, never skips, if the cluster does not form."""
    directory = tmp_path_factory.mktemp("elasticsearch-cluster") / "cluster"
    state = _start(directory, CLUSTER_NODES)
    try:
        yield ElasticsearchCluster(
            urls=tuple(node["url"] for node in state["nodes"]),
            username=state["username"],
            password=state["password"],
            directory=directory,
        )
    finally:
        _stop(directory)


def _start(directory: Path, nodes: int) -> dict:
    """scripts/elasticsearch start; its state.json once every node is up."""
    try:
        started = subprocess.run([str(SCRIPT), "start", "--dir", str(directory), "--nodes", str(nodes)],
                                 capture_output=True, text=True, timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop(directory)
        pytest.fail(f"scripts/elasticsearch start did not finish within {START_TIMEOUT} s", pytrace=False)
    if started.returncode != 0:
        _stop(directory)
        pytest.fail(f"Elasticsearch did not start:\n{started.stderr}", pytrace=False)
    return json.loads((directory / "state.json").read_text())


def _script(*args: str, timeout: float) -> None:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"scripts/elasticsearch {' '.join(args)} failed:\n{done.stderr}"


def _stop(directory: Path) -> None:
    if directory.exists():
        subprocess.run([str(SCRIPT), "stop", "--dir", str(directory)], capture_output=True, timeout=120)
