"""Shared fixtures: one real Elasticsearch node per test session, started only if a test asks for it; one cache
of models' ONNX forms per session."""

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


@pytest.fixture(scope="session")
def elasticsearch_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElasticsearchNode]:
    """Start a node with scripts/elasticsearch; fail (never skip) with the log tail if it does not come up."""
    directory = tmp_path_factory.mktemp("elasticsearch") / "node"
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", "--dir", str(directory)], capture_output=True, text=True, timeout=START_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        _stop(directory)
        pytest.fail(f"scripts/elasticsearch start did not finish within {START_TIMEOUT} s", pytrace=False)
    if started.returncode != 0:
        _stop(directory)
        pytest.fail(f"Elasticsearch did not start:\n{started.stderr}", pytrace=False)
    state = json.loads((directory / "state.json").read_text())
    try:
        yield ElasticsearchNode(
            url=state["url"], username=state["username"], password=state["password"], directory=directory
        )
    finally:
        _stop(directory)


def _stop(directory: Path) -> None:
    if directory.exists():
        subprocess.run([str(SCRIPT), "stop", "--dir", str(directory)], capture_output=True, timeout=120)
