"""A real `bertsearch serve` on a free 127.0.0.1 port, over an index of a SciFact slice."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import OFFLINE_ENV, bertsearch_command, run_bertsearch, write_scifact_slice

API_KEY = "test-key-0123456789"
START_TIMEOUT = 180.0  # model load and warm-up on 2 busy cores


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    index_dir: Path
    log: Path

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None, timeout: float = 60) -> Response:
        """One HTTP request; the JSON body of the answer, whatever its status."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, payload, answer_headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            status, payload, answer_headers = error.code, error.read(), dict(error.headers)
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return Response(status, parsed, answer_headers)

    def search(self, query: str, **options: Any) -> Response:
        return self.request("POST", "/api/search", {"query": query, **options})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index_dir: Path, *args: str, env: dict[str, str] | None = None) -> RunningServer:
    """`bertsearch serve` in a subprocess, once it answers /api/health; fails with its log if it does not."""
    port = free_port()
    log = index_dir.parent / f"serve-{port}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            bertsearch_command("serve", "--index-dir", index_dir, "--port", str(port), *args),
            stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV, **(env or {})},
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, index_dir, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bertsearch serve exited ({process.returncode}):\n{log.read_text()}", pytrace=False)
        try:
            if server.request("GET", "/api/health", timeout=2).status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(server)
    pytest.fail(f"bertsearch serve did not answer within {START_TIMEOUT:.0f} s:\n{log.read_text()}", pytrace=False)


def stop_server(server: RunningServer, sig: int = signal.SIGTERM) -> int:
    """Stop the server (SIGTERM: a clean shutdown) and return its exit code."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=30)
    return server.process.returncode


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("server-scifact"), queries=10, documents=120)


@pytest.fixture(scope="session")
def server_index(scifact_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("server-index") / "idx"
    result = run_bertsearch("index", scifact_slice / "corpus.jsonl", "--index-dir", index_dir)
    assert result.returncode == 0, result.stderr
    return index_dir


@pytest.fixture(scope="session")
def server(server_index: Path) -> Iterator[RunningServer]:
    """The shared server: writes need API_KEY, reads do not; queries are logged."""
    running = start_server(server_index, "--api-key", API_KEY, env={"BERTSEARCH_QUERY_LOG": "on"})
    try:
        yield running
    finally:
        stop_server(running)


def scifact_queries(scifact_slice: Path) -> list[tuple[str, str, set[str]]]:
    """(query id, text, relevant document ids) of the slice's test queries."""
    relevant: dict[str, set[str]] = {}
    for line in (scifact_slice / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        relevant.setdefault(query_id, set()).add(doc_id)
    queries = [json.loads(line) for line in (scifact_slice / "queries.jsonl").read_text().splitlines()]
    return [(q["_id"], q["text"], relevant[q["_id"]]) for q in queries if q["_id"] in relevant]
