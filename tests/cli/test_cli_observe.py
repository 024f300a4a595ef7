"""End-to-end: `query` logging its queries, `stats`, `dashboards install` against a stand-in Kibana, and the
one-line errors of `serve`."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from bertsearch.dashboards import DASHBOARDS_FILE
from bertsearch.dashboards.kibana import KibanaConnection, install_dashboards
from bertsearch.errors import BackendError, BertsearchError
from bertsearch.querylog import QUERY_HASH_KEY_FILE, QUERY_LOG_DATABASE, QUERY_LOG_STREAM, hash_query
from tests.cli.test_cli import fails_with, ok_json
from tests.helpers import run_bertsearch

if TYPE_CHECKING:
    from tests.conftest import ElasticsearchNode

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "corpus"


@pytest.fixture(scope="module")
def example_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("observe") / "idx"
    ok_json("index", EXAMPLES, "--index-dir", index_dir)
    return index_dir


def logged(index_dir: Path) -> list[tuple]:
    with sqlite3.connect(index_dir / QUERY_LOG_DATABASE) as db:
        return db.execute("SELECT query, query_hashed, mode, k, hits, zero_results, origin, backend, latency_ms,"
                          " index_documents FROM query_events ORDER BY id").fetchall()


def test_queries_are_logged_as_configured_and_stats_show_them(example_index: Path) -> None:
    ok_json("query", "how do plants make oxygen", "--index-dir", example_index, "-k", "3")
    ok_json("query", "qqqzzzx", "--index-dir", example_index, "--mode", "bm25", env={"BERTSEARCH_QUERY_LOG": "on"})
    ok_json("query", "Secret  Photosynthesis", "--index-dir", example_index, "--mode", "bm25",
            env={"BERTSEARCH_QUERY_LOG": "hashed"})
    rows = logged(example_index)
    assert [row[0] for row in rows[:2]] == ["how do plants make oxygen", "qqqzzzx"]
    first, zero, hashed = rows
    assert first[1:8] == (0, "hybrid", 3, 3, 0, "cli", "embedded")
    assert set(json.loads(first[8])) == {"encode", "dense", "bm25", "retrieve", "fuse", "total"}
    assert first[9] == 12
    assert zero[4:6] == (0, 1)
    assert hashed[0].startswith("hmac-sha256:") and hashed[1] == 1 and "secret" not in hashed[0].lower()
    assert hashed[0] == hash_query("secret photosynthesis", (example_index / QUERY_HASH_KEY_FILE).read_bytes())

    figures = ok_json("stats", "--index-dir", example_index)
    assert figures["queries"] == figures["queries_in_window"] == 3
    assert figures["zero_result_rate"] == pytest.approx(1 / 3)
    assert figures["top_zero_result_queries"] == [{"query": "qqqzzzx", "count": 1}]
    assert figures["index"]["documents"] == 12 and figures["modes"] == {"hybrid": 1, "bm25": 2}
    text = run_bertsearch("stats", "--index-dir", example_index)
    assert text.returncode == 0, text.stderr
    for expected in ("12 documents", "queries in the last 30 days: 3", "latency per stage", "zero-result rate: 33.3%",
                     "qqqzzzx", "█"):
        assert expected in text.stdout


def test_stats_say_when_their_figures_come_from_the_newest_queries_only(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timezone

    from bertsearch.cli.observe import _print_stats
    from bertsearch.querystats import compute_query_stats
    from tests.test_querylog import event

    events = [event(f"q{i}", at=datetime(2026, 3, 1, 9, i, tzinfo=timezone.utc)) for i in range(3)]
    _print_stats(compute_query_stats(events, queries_in_window=250_000), 30)
    out = capsys.readouterr().out
    assert "queries in the last 30 days: 250,000" in out and "come from the newest 3 of them" in out
    _print_stats(compute_query_stats(events), 30)
    out = capsys.readouterr().out
    assert "queries in the last 30 days: 3" in out and "newest" not in out


def test_stats_of_a_missing_index_is_one_line(tmp_path: Path) -> None:
    fails_with("no index at", "stats", "--index-dir", tmp_path / "nothing")


class StandInKibana:
    """A local HTTP server that records each request and answers with a canned status and JSON body."""

    def __init__(self, status: int = 200, answer: dict | None = None) -> None:
        self.requests: list[dict] = []
        self.status = status
        self.answer = answer
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                objects = sum(1 for line in body.splitlines() if line.startswith(b"{"))
                payload = json.dumps(stand_in.answer if stand_in.answer is not None else
                                     {"success": True, "successCount": objects}).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def kibana() -> Iterator[StandInKibana]:
    stand_in = StandInKibana()
    yield stand_in
    stand_in.close()


def test_dashboards_install_sends_the_import_kibana_expects(kibana: StandInKibana) -> None:
    objects = len(DASHBOARDS_FILE.read_text().splitlines())
    result = run_bertsearch("dashboards", "install", "--kibana-url", kibana.url + "/", "--space", "search-ops",
                            "--kibana-username", "elastic", "--kibana-password", "s3cret-pw")
    assert result.returncode == 0, result.stderr
    assert f"imported {objects} of {objects} saved objects" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr
    (request,) = kibana.requests
    assert request["path"] == "/s/search-ops/api/saved_objects/_import?overwrite=true"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["kbn-xsrf"]
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == b"elastic:s3cret-pw"
    boundary = headers["content-type"].split("boundary=")[1]
    assert headers["content-type"].startswith("multipart/form-data")
    (part,) = [p for p in request["body"].split(b"--" + boundary.encode()) if b"Content-Disposition" in p]
    head, content = part.split(b"\r\n\r\n", 1)
    assert b'name="file"; filename="bertsearch-dashboards.ndjson"' in head
    assert content.removesuffix(b"\r\n") == DASHBOARDS_FILE.read_bytes()


def test_dashboards_install_with_an_api_key_into_the_default_space(kibana: StandInKibana) -> None:
    result = run_bertsearch("dashboards", "install", "--kibana-url", kibana.url, "--no-overwrite", "--json",
                            env={"BERTSEARCH_KIBANA_API_KEY": "a2V5OnNlY3JldA=="})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == len(DASHBOARDS_FILE.read_text().splitlines())
    (request,) = kibana.requests
    assert request["path"] == "/api/saved_objects/_import"
    assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == "ApiKey a2V5OnNlY3JldA=="


@pytest.mark.parametrize(("status", "answer", "expected"), [
    (401, {"statusCode": 401, "message": "Unauthorized"}, "rejected the credentials (401)"),
    (403, {"statusCode": 403}, "denied the import (403)"),
    (404, {"statusCode": 404}, "no saved objects API at"),
    (500, {"statusCode": 500, "message": "boom"}, "failed the import (500): boom"),
    (200, {"success": False, "successCount": 3, "errors": [
        {"id": "bertsearch-index-size", "type": "lens", "error": {"type": "unknown", "message": "bad state"}}]},
     "imported 3 of 10 objects; first: lens bertsearch-index-size: unknown bad state"),
])
def test_kibana_refusals_name_the_cause(status: int, answer: dict, expected: str) -> None:
    stand_in = StandInKibana(status, answer)
    try:
        with pytest.raises(BackendError) as refused:
            install_dashboards(KibanaConnection(url=stand_in.url, username="u", password="p"))
        assert expected in str(refused.value) and "\n" not in str(refused.value)
    finally:
        stand_in.close()


def test_dashboards_install_failures_are_one_line() -> None:
    stand_in = StandInKibana(401, {"statusCode": 401})
    try:
        fails_with("rejected the credentials (401)", "dashboards", "install", "--kibana-url", stand_in.url,
                   "--kibana-username", "u", env={"BERTSEARCH_KIBANA_PASSWORD": "p"})
    finally:
        stand_in.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fails_with("cannot reach Kibana at", "dashboards", "install", "--kibana-url", f"http://127.0.0.1:{port}")
    with pytest.raises(BertsearchError, match="Kibana URL must look like"):
        KibanaConnection(url="kibana:5601")


def test_serve_errors_are_one_line(example_index: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        fails_with(f"cannot listen on 127.0.0.1:{port}", "serve", "--index-dir", example_index, "--port", port)
    fails_with("no index at", "serve", "--index-dir", tmp_path / "missing", "--port", port)
    fails_with("--protect-reads needs --api-key", "serve", "--index-dir", example_index, "--protect-reads",
               env={"BERTSEARCH_API_KEY": ""})


@pytest.mark.elasticsearch
def test_queries_on_elasticsearch_go_to_the_data_stream(elasticsearch_node: ElasticsearchNode, tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch

    env = {"BERTSEARCH_ES_URL": elasticsearch_node.url, "BERTSEARCH_ES_USERNAME": elasticsearch_node.username,
           "BERTSEARCH_ES_PASSWORD": elasticsearch_node.password, "BERTSEARCH_QUERY_LOG": "on"}
    es_index = f"observe-{uuid.uuid4().hex[:8]}"
    index_dir = tmp_path / "idx"
    ok_json("index", EXAMPLES, "--index-dir", index_dir, "--backend", "elasticsearch", "--es-index", es_index, env=env)
    # BM25 queries: logging does not depend on the mode, and they spare loading the model twice more.
    ok_json("query", "how do plants make oxygen", "--index-dir", index_dir, "--mode", "bm25", env=env)
    ok_json("query", "qqqzzzx", "--index-dir", index_dir, "--mode", "bm25", env=env)
    assert not (index_dir / QUERY_LOG_DATABASE).exists()
    client = Elasticsearch(elasticsearch_node.url, basic_auth=(elasticsearch_node.username, elasticsearch_node.password))
    client.indices.refresh(index=QUERY_LOG_STREAM)
    found = client.search(index=QUERY_LOG_STREAM, query={"term": {"index": es_index}}, sort=[{"@timestamp": "asc"}])
    events = [hit["_source"] for hit in found["hits"]["hits"]]
    assert [(e["query"], e["backend"], e["zero_results"], e["index_documents"]) for e in events] == [
        ("how do plants make oxygen", "elasticsearch", False, 12), ("qqqzzzx", "elasticsearch", True, 12)]
    assert client.indices.resolve_index(name=QUERY_LOG_STREAM)["data_streams"][0]["name"] == QUERY_LOG_STREAM
    client.close()
    figures = ok_json("stats", "--index-dir", index_dir, env=env)
    assert figures["queries"] == 2 and figures["top_zero_result_queries"] == [{"query": "qqqzzzx", "count": 1}]
    assert figures["index"]["backend"] == "elasticsearch" and figures["index"]["documents"] == 12
