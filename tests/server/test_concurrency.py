"""Writes while reading: every acknowledged write is searchable, survives kill -9, and no reader sees an error."""

from __future__ import annotations

import shutil
import signal
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from bertsearch.stores import open_store
from tests.helpers import run_bertsearch
from tests.server.conftest import API_KEY, RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow
WRITE = {"Authorization": f"Bearer {API_KEY}"}
READERS = 4
SINGLE_WRITES = 12
BATCH_WRITES = 4
BATCH_SIZE = 3


@pytest.fixture()
def private_server(server_index: Path, tmp_path: Path) -> Iterator[RunningServer]:
    index_dir = tmp_path / "idx"
    shutil.copytree(server_index, index_dir, ignore=shutil.ignore_patterns("querylog", "write.lock"))
    running = start_server(index_dir, "--api-key", API_KEY, "--query-log", "off")
    yield running
    stop_server(running, signal.SIGKILL)


def document(token: str) -> dict:
    return {"title": f"Concurrency {token}", "text": f"The marker {token} appears in this document only. "
            "It describes a protein that folds under heat stress in yeast cells."}


def test_writes_while_reading_lose_nothing_and_survive_kill_9(private_server: RunningServer) -> None:
    server = private_server
    base = server.request("GET", "/api/ready").body["documents"]
    run = uuid.uuid4().hex[:8]
    single = [f"zqs{run}{i}" for i in range(SINGLE_WRITES)]
    batched = [[f"zqb{run}{b}x{i}" for i in range(BATCH_SIZE)] for b in range(BATCH_WRITES)]
    deleted = single[::3]
    errors: list[str] = []
    writes_done = threading.Event()
    reads = [0]

    def read() -> None:
        queries = ["protein folding under heat stress", "vitamin D deficiency", "yeast cells"]
        i = 0
        while not writes_done.is_set():
            mode = ("hybrid", "dense", "bm25")[i % 3]
            answer = server.search(queries[i % len(queries)], k=10, mode=mode)
            if answer.status != 200:
                errors.append(f"search {answer.status}: {answer.body}")
            i += 1
            reads[0] += 1

    def write_singles() -> None:
        for token in single:
            answer = server.request("PUT", f"/api/documents/{token}", document(token), headers=WRITE)
            if answer.status != 200 or answer.body["durable"] is not True or answer.body["added"] != 1:
                errors.append(f"put {token}: {answer.status} {answer.body}")
        for token in deleted:
            answer = server.request("DELETE", f"/api/documents/{token}", headers=WRITE)
            if answer.status != 200 or answer.body["durable"] is not True:
                errors.append(f"delete {token}: {answer.status} {answer.body}")

    def write_batches() -> None:
        for tokens in batched:
            body = {"documents": [{"doc_id": t, **document(t)} for t in tokens]}
            answer = server.request("POST", "/api/documents", body, headers=WRITE)
            if answer.status != 200 or answer.body["added"] != len(tokens):
                errors.append(f"post {tokens}: {answer.status} {answer.body}")

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    writers = [threading.Thread(target=write_singles), threading.Thread(target=write_batches)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    writes_done.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not errors, errors[:5]
    assert reads[0] >= READERS

    surviving = [t for t in single if t not in deleted] + [t for tokens in batched for t in tokens]
    for token in surviving:
        hits = server.search(token, k=3, mode="bm25").body["hits"]
        assert [hit["doc_id"] for hit in hits] == [token]
    for token in deleted:
        assert server.request("GET", f"/api/documents/{token}").status == 404
        assert server.search(token, k=3, mode="bm25").body["hits"] == []
    assert server.request("GET", "/api/ready").body["documents"] == base + len(surviving)
    assert not (server.index_dir / "querylog").exists()  # --query-log off

    # Acknowledged means durable: kill -9, then the index, read afresh, holds exactly what was acknowledged.
    assert stop_server(server, signal.SIGKILL) == -signal.SIGKILL
    with open_store(server.index_dir) as store:
        assert all(store.get_document(token) is not None for token in surviving)
        assert all(store.get_document(token) is None for token in deleted)
        assert store.stats().documents == base + len(surviving)
    found = run_bertsearch("query", f"{surviving[0]} protein heat stress yeast", "--index-dir", server.index_dir,
                           "--mode", "dense", "-k", "100", "--json")
    assert found.returncode == 0, found.stderr
    assert surviving[0] in found.stdout  # the vectors were rebuilt from the committed passages
