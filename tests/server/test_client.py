"""`bertsearch query --url`: the query answered by a running server, printed as a local query prints it."""

from __future__ import annotations

import http.server
import threading
from typing import Iterator

import pytest

from tests.helpers import fails_with, ok_json, run_bertsearch
from tests.server.conftest import RunningServer, free_port

pytestmark = pytest.mark.slow


def test_a_query_sent_to_the_server_prints_the_servers_hits(server: RunningServer) -> None:
    answer = server.search("vitamin D deficiency", k=5, mode="hybrid").body
    sent = ok_json("query", "vitamin D deficiency", "-k", "5", "--url", server.url)
    assert sent["query"] == answer["query"] and sent["mode"] == "hybrid"
    assert [hit["doc_id"] for hit in sent["hits"]] == [hit["doc_id"] for hit in answer["hits"]]
    assert [hit["score"] for hit in sent["hits"]] == [hit["score"] for hit in answer["hits"]]
    assert set(sent["hits"][0]) == {"doc_id", "score", "title", "passage", "passage_position", "source", "scores"}
    text = run_bertsearch("query", "vitamin D deficiency", "-k", "5", "--mode", "bm25",
                          env={"BERTSEARCH_URL": server.url})
    assert text.returncode == 0, text.stderr
    bm25 = server.search("vitamin D deficiency", k=5, mode="bm25").body["hits"]
    assert text.stdout.startswith(" 1. ") and f"[{bm25[0]['doc_id']}]" in text.stdout.splitlines()[0]


def test_what_the_server_refuses_is_one_error_line(server: RunningServer) -> None:
    fails_with("the server refused the query (422)", "query", "vitamin D", "-k", "500", "--url", server.url)
    fails_with("--index-dir, --reranker cannot be used with --url", "query", "vitamin D", "--url", server.url,
               "--index-dir", "/somewhere", "--reranker", "/a/reranker")


def test_an_unreachable_server_is_one_error_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    fails_with(f"cannot reach the bertsearch server at {url}", "query", "vitamin D", "--url", url)
    fails_with("not a server URL", "query", "vitamin D", "--url", "127.0.0.1:8000")


@pytest.fixture
def other_server() -> Iterator[str]:
    """An HTTP server that is not bertsearch: it answers every request with a page of HTML."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler's protocol
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def test_a_server_that_is_not_bertsearch_is_one_error_line(other_server: str) -> None:
    fails_with("did not answer as a bertsearch server does", "query", "vitamin D", "--url", other_server)
