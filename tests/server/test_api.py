"""API contract: every endpoint of a real `bertsearch serve`, its answers and its errors."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from bertsearch.querylog import QUERY_HASH_KEY_FILE, QUERY_LOG_DATABASE, hash_query
from bertsearch.server.schemas import MAX_BODY_BYTES, MAX_EMBEDDING_TEXTS, MAX_K
from tests.helpers import fails_with, ok_json, read_only_view, run_bertsearch
from tests.server.conftest import API_KEY, RunningServer, scifact_queries, start_server, stop_server

pytestmark = pytest.mark.slow
WRITE = {"Authorization": f"Bearer {API_KEY}"}


def unique_id(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_openapi_schema_lists_every_endpoint(server: RunningServer) -> None:
    schema = server.request("GET", "/openapi.json").body
    paths = schema["paths"]
    assert {"/api/search", "/api/documents", "/api/documents/{doc_id}", "/api/embeddings", "/api/stats",
            "/api/health", "/api/ready"} <= set(paths)
    assert set(paths["/api/documents/{doc_id}"]) == {"get", "put", "delete"}
    assert "SearchRequest" in schema["components"]["schemas"]


def test_health_and_readiness(server: RunningServer) -> None:
    assert server.request("GET", "/api/health").body == {"status": "ok"}
    ready = server.request("GET", "/api/ready").body
    assert ready["ready"] is True and ready["backend"] == "embedded"
    assert ready["documents"] >= 100 and ready["passages"] >= ready["documents"]
    assert ready["query_log"] == "on"
    assert ready["queries_encoded"] >= 1 and ready["worker_busy_seconds"] > 0  # the start-up warm-up search


def test_search_finds_relevant_documents_in_every_mode(server: RunningServer, scifact_slice: Path) -> None:
    queries = scifact_queries(scifact_slice)
    for mode in ("hybrid", "dense", "bm25"):
        found = 0
        for _, text, relevant in queries:
            answer = server.search(text, k=10, mode=mode)
            assert answer.status == 200, answer.body
            body = answer.body
            assert body["mode"] == mode and body["k"] == 10 and body["reranked"] is False
            assert [hit["rank"] for hit in body["hits"]] == list(range(1, len(body["hits"]) + 1))
            scores = [hit["score"] for hit in body["hits"]]
            assert scores == sorted(scores, reverse=True)
            found += any(hit["doc_id"] in relevant for hit in body["hits"])
        assert found >= 0.7 * len(queries), mode


def test_search_hit_carries_passage_snippet_highlights_and_timings(server: RunningServer) -> None:
    body = server.search("vitamin D and tuberculosis", k=3).body
    hit = body["hits"][0]
    assert set(hit) >= {"doc_id", "title", "source", "passage", "passage_position", "snippet", "highlights",
                        "score", "retrieval_score", "rerank_score", "scores"}
    assert hit["retrieval_score"] == hit["scores"]["fused"] and hit["rerank_score"] is None
    for start, end in hit["highlights"]:
        assert hit["snippet"][start:end].lower().startswith(("vitamin", "d", "tubercul"))
    assert {"encode", "dense", "bm25", "fuse", "total"} <= set(body["timings_ms"])


def test_search_filters_by_source_prefix_and_metadata(server: RunningServer) -> None:
    doc_id = unique_id("filtered")
    document = {"title": "Glacier melt", "text": "Glaciers in the Alps lose ice every summer.",
                "source": "/alpine/glaciers.txt", "metadata": {"region": "alps"}}
    assert server.request("PUT", f"/api/documents/{doc_id}", document, headers=WRITE).status == 200
    by_source = server.search("glaciers losing ice", filters={"source_prefix": "/alpine/"}).body["hits"]
    assert [hit["doc_id"] for hit in by_source] == [doc_id]
    by_metadata = server.search("glaciers", mode="bm25", filters={"metadata": {"region": "alps"}}).body["hits"]
    assert [hit["doc_id"] for hit in by_metadata] == [doc_id]
    assert server.search("glaciers", filters={"metadata": {"region": "andes"}}).body["hits"] == []
    server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE)


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"query": ""}, 422, "query"),
    ({"query": "   "}, 400, "the query is empty"),
    ({"query": "x" * 2001}, 422, "query"),
    ({"query": "x", "k": 0}, 422, "k"),
    ({"query": "x", "k": MAX_K + 1}, 422, "k"),
    ({"query": "x", "mode": "fuzzy"}, 422, "mode"),
    ({"query": "x", "rerank": True}, 400, "no reranker configured"),
    ({"query": "x", "limit": 3}, 422, "limit"),
    ({"k": 3}, 422, "query"),
    ({"query": "x", "filters": {"metadata": {"a": [1]}}}, 422, "filters"),
])
def test_bad_searches_are_clear_4xx(server: RunningServer, body: dict, status: int, message: str) -> None:
    answer = server.request("POST", "/api/search", body)
    assert answer.status == status, answer.body
    assert message in answer.body["error"]
    assert "--" not in answer.body["error"]  # the API names its own fields, never the CLI's flags
    assert "Traceback" not in json.dumps(answer.body)
    if body.get("rerank"):
        assert answer.body["field"] == "rerank"


def test_malformed_and_oversized_bodies_are_refused(server: RunningServer) -> None:
    malformed = server.request("POST", "/api/search", raw=b'{"query": ')
    assert malformed.status == 422 and malformed.body["error"]
    host, port = server.url.removeprefix("http://").split(":")
    # Declared too large: refused before the body is read.
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/api/search")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "larger than" in json.loads(answer.read())["error"]
    connection.close()
    # Streamed without a length: refused once it grows past the limit.
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/api/search")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    chunk = b"x" * 65536
    for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    answer = connection.getresponse()
    assert answer.status == 413 and "larger than" in json.loads(answer.read())["error"]
    connection.close()


def test_document_lifecycle_add_get_replace_delete(server: RunningServer) -> None:
    doc_id = unique_id("lifecycle") + "/with/slashes.txt"
    document = {"title": "Octopus cognition", "text": "Octopuses solve puzzles and open jars with their arms.",
                "metadata": {"kind": "note", "stars": 4}}
    added = server.request("PUT", f"/api/documents/{doc_id}", document, headers=WRITE)
    assert added.status == 200, added.body
    assert added.body | {"seconds": 0} == {"added": 1, "updated": 0, "unchanged": 0, "skipped": 0,
                                            "passages_encoded": 1, "seconds": 0, "durable": True}
    stored = server.request("GET", f"/api/documents/{doc_id}").body
    assert stored == {"doc_id": doc_id, "title": "Octopus cognition", "text": document["text"], "source": "",
                      "metadata": {"kind": "note", "stars": 4}}
    assert server.search("octopus opening jars", k=1).body["hits"][0]["doc_id"] == doc_id
    again = server.request("PUT", f"/api/documents/{doc_id}", document, headers=WRITE).body
    assert (again["unchanged"], again["passages_encoded"]) == (1, 0)
    replaced = server.request("PUT", f"/api/documents/{doc_id}", document | {"text": "Squids change colour."},
                              headers=WRITE).body
    assert replaced["updated"] == 1
    assert server.request("GET", f"/api/documents/{doc_id}").body["text"] == "Squids change colour."
    deleted = server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE)
    assert deleted.status == 200 and deleted.body == {"doc_id": doc_id, "deleted": True, "durable": True}
    assert server.request("GET", f"/api/documents/{doc_id}").status == 404
    assert doc_id not in [h["doc_id"] for h in server.search("octopus squid colour jars", k=10).body["hits"]]
    missing = server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE)
    assert missing.status == 404 and doc_id in missing.body["error"]


def test_batch_write_reports_each_outcome(server: RunningServer) -> None:
    first, second = unique_id("batch"), unique_id("batch")
    body = {"documents": [{"doc_id": first, "text": "Bees dance to show where flowers are."},
                          {"doc_id": second, "title": "Ants", "text": "Ants follow pheromone trails."},
                          {"doc_id": first, "text": "a duplicate id in the same request"}]}
    answer = server.request("POST", "/api/documents", body, headers=WRITE).body
    assert (answer["added"], answer["skipped"], answer["durable"]) == (2, 1, True)
    assert server.request("GET", f"/api/documents/{first}").body["text"].startswith("Bees")
    for doc_id in (first, second):
        server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE)


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("PUT", "/api/documents/x", {"text": ""}, "text"),
    ("PUT", "/api/documents/x", {"title": "no text"}, "text"),
    ("PUT", "/api/documents/x", {"text": "t", "metadata": {"nested": {"a": 1}}}, "metadata"),
    ("PUT", "/api/documents/x", {"text": "t", "colour": "red"}, "colour"),
    ("PUT", "/api/documents/x", {"text": "x" * 200_001}, "text"),
    ("POST", "/api/documents", {"documents": []}, "documents"),
    ("POST", "/api/documents", {"documents": [{"doc_id": f"d{i}", "text": "t"} for i in range(101)]}, "documents"),
    ("POST", "/api/embeddings", {"texts": []}, "texts"),
    ("POST", "/api/embeddings", {"texts": ["t"] * (MAX_EMBEDDING_TEXTS + 1)}, "texts"),
    ("POST", "/api/embeddings", {"texts": ["x" * 10_001]}, "texts"),
])
def test_bad_writes_and_embeddings_are_422(server: RunningServer, method: str, path: str, body: dict,
                                           message: str) -> None:
    answer = server.request(method, path, body, headers=WRITE)
    assert answer.status == 422, answer.body
    assert message in answer.body["error"]


@pytest.mark.parametrize(("method", "path", "body", "where"), [
    ("PUT", "/api/documents/x", {"text": "ok", "metadata": {"\ud800": "x"}}, "metadata"),
    ("PUT", "/api/documents/x", {"text": "ok", "metadata": {"k": "\udfff"}}, "metadata.k"),
    ("PUT", "/api/documents/x", {"text": "\ud800"}, "text"),
    ("PUT", "/api/documents/x", {"text": "ok", "title": "t\ud800"}, "title"),
    ("PUT", "/api/documents/x", {"text": "ok", "source": "\udc80"}, "source"),
    ("POST", "/api/documents", {"documents": [{"doc_id": "d\ud800", "text": "t"}]}, "documents.0.doc_id"),
    ("POST", "/api/documents", {"documents": [{"doc_id": "d", "text": "t", "metadata": {"\ud800": 1}}]},
     "documents.0.metadata"),
    ("POST", "/api/search", {"query": "\ud800"}, "query"),
    ("POST", "/api/search", {"query": "x", "filters": {"source_prefix": "\ud800"}}, "filters.source_prefix"),
    ("POST", "/api/search", {"query": "x", "filters": {"metadata": {"\ud800": "x"}}}, "filters.metadata"),
    ("POST", "/api/search", {"query": "x", "filters": {"metadata": {"k": "\ud800"}}}, "filters.metadata.k"),
    ("POST", "/api/embeddings", {"texts": ["ok", "\ud800"]}, "texts.1"),
])
def test_lone_surrogates_anywhere_in_a_body_are_422(server: RunningServer, method: str, path: str, body: dict,
                                                    where: str) -> None:
    """Case 8: one in a metadata key was once a 500. JSON can escape a lone surrogate; no store can hold it."""
    answer = server.request(method, path, body, headers=WRITE)
    assert answer.status == 422, answer.body
    assert answer.body["error"].startswith(where) and "request_id" not in answer.body


@pytest.mark.parametrize("raw", [
    b'{"text": "t", "metadata": {"score": NaN}}',
    b'{"text": "t", "metadata": {"score": Infinity}}',
    b'{"text": "t", "metadata": {"score": -1e400}}',
])
def test_metadata_numbers_json_cannot_hold_are_refused_not_changed(server: RunningServer, raw: bytes) -> None:
    """Case 10: NaN was once accepted as durable and read back as null."""
    doc_id = unique_id("nan")
    answer = server.request("PUT", f"/api/documents/{doc_id}", raw=raw, headers=WRITE)
    assert answer.status == 422 and answer.body["error"] == "metadata.score: Value error, NaN and Infinity are " \
        "not JSON numbers", answer.body
    assert server.request("GET", f"/api/documents/{doc_id}").status == 404
    search = server.request("POST", "/api/search", raw=b'{"query": "x", "filters": {"metadata": {"s": NaN}}}')
    assert search.status == 422


def test_metadata_is_read_back_exactly_as_written(server: RunningServer) -> None:
    doc_id = unique_id("exact")
    metadata = {"tiny": 5e-324, "big": 1.7976931348623157e308, "tenth": 0.1, "count": 2**53 + 1, "flag": False,
                "none": None, "text": "NaN"}
    assert server.request("PUT", f"/api/documents/{doc_id}", {"text": "t", "metadata": metadata},
                          headers=WRITE).status == 200
    assert server.request("GET", f"/api/documents/{doc_id}").body["metadata"] == metadata
    server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE)


def test_a_body_that_never_arrives_is_cut_off_with_408(server: RunningServer) -> None:
    """Case 9: a client declaring a longer body than it sends once held its connection for over 20 s."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as client:
        client.sendall(b"POST /api/search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n{\"query\": \"vit")
        answer = b""
        while chunk := client.recv(65536):  # until the server closes the connection
            answer += chunk
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive within 10 s" in answer
    assert 9 < elapsed < 14, elapsed  # --body-timeout's default, then the connection is closed
    assert server.search("vitamin D", k=1).status == 200


def test_unknown_document_is_404(server: RunningServer) -> None:
    answer = server.request("GET", "/api/documents/no-such-document")
    assert answer.status == 404 and answer.body == {"error": "no document 'no-such-document'"}


def test_writes_need_the_api_key_and_reads_do_not(server: RunningServer) -> None:
    doc_id = unique_id("auth")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
        refused = server.request("PUT", f"/api/documents/{doc_id}", {"text": "t"}, headers=headers)
        assert refused.status == 401 and refused.headers.get("www-authenticate") == "Bearer"
        assert API_KEY not in json.dumps(refused.body)
    assert server.request("DELETE", f"/api/documents/{doc_id}").status == 401
    assert server.request("POST", "/api/documents", {"documents": [{"doc_id": doc_id, "text": "t"}]}).status == 401
    assert server.request("GET", f"/api/documents/{doc_id}").status == 404  # never written
    assert server.request("PUT", f"/api/documents/{doc_id}", {"text": "t"}, headers={"X-API-Key": API_KEY}).status == 200
    assert server.request("DELETE", f"/api/documents/{doc_id}", headers=WRITE).status == 200


def test_embeddings_match_the_index_model(server: RunningServer) -> None:
    answer = server.request("POST", "/api/embeddings", {"texts": ["plants make oxygen", "photosynthesis", "tax law"]})
    assert answer.status == 200
    vectors = np.array(answer.body["vectors"])
    assert vectors.shape == (3, answer.body["dimensions"]) == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert answer.body["model"].endswith("model")


def test_stats_and_query_log_record_served_queries(server: RunningServer) -> None:
    marker = f"zzq{uuid.uuid4().hex}"
    assert server.search(marker, mode="bm25").body["hits"] == []
    server.search("vitamin D", k=2)
    stats = server.request("GET", "/api/stats?days=1").body
    assert stats["queries"] >= 2 and stats["zero_result_rate"] > 0
    assert {"query": marker, "count": 1} in stats["top_zero_result_queries"]
    assert {s["stage"] for s in stats["latency"]} >= {"encode", "dense", "bm25", "fuse", "total"}
    assert stats["index"]["documents"] >= 100 and stats["over_time"]
    with sqlite3.connect(server.index_dir / QUERY_LOG_DATABASE) as db:
        row = db.execute("SELECT origin, mode, hits, zero_results, backend FROM query_events WHERE query = ?",
                         (marker,)).fetchone()
    assert row == ("server", "bm25", 0, 1, "embedded")
    assert server.request("GET", "/api/stats?days=0").status == 422


def test_pages_are_served(server: RunningServer) -> None:
    for path in ("/", "/stats", "/static/search.js", "/static/stats.js", "/static/style.css"):
        answer = server.request("GET", path)
        assert answer.status == 200, path


@pytest.fixture(scope="module")
def tiny_reranker(server_index: Path, scifact_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reranker trained for a few steps: enough to exercise reranking, not to help (so it is forced)."""
    output = tmp_path_factory.mktemp("reranker") / "model"
    trained = run_bertsearch("train-reranker", "--index-dir", server_index, "--queries", scifact_slice / "queries.jsonl",
                             "--qrels", scifact_slice / "qrels" / "test.tsv", "--output", output, "--max-steps", "2",
                             "--max-length", "64", "--negatives", "3", "--groups-per-step", "2",
                             "--validation-queries", "2")
    assert trained.returncode == 0, trained.stderr
    return output


def test_protected_reads_reranking_hashed_log_and_clean_shutdown(server_index: Path, tiny_reranker: Path,
                                                                  tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(server_index, index_dir, ignore=shutil.ignore_patterns("querylog", "write.lock"))
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    protected = start_server(index_dir, "--api-key-file", str(key_file), "--protect-reads", "--query-log", "hashed",
                             "--reranker", str(tiny_reranker), "--force", "--rerank-depth", "10")
    key = {"X-API-Key": API_KEY}
    try:
        assert protected.search("vitamin D").status == 401
        assert protected.request("GET", "/api/documents/anything").status == 401
        assert protected.request("GET", "/api/stats").status == 401
        assert protected.request("GET", "/api/health").status == 200
        assert protected.request("GET", "/api/ready", headers=key).body["reranker"] == str(tiny_reranker.resolve())
        reranked = protected.request("POST", "/api/search", {"query": "Vitamin  D", "k": 5}, headers=key).body
        assert reranked["reranked"] is True and "rerank" in reranked["timings_ms"] and len(reranked["hits"]) == 5
        for hit in reranked["hits"]:
            assert hit["rerank_score"] == hit["scores"]["rerank"]
            assert hit["retrieval_score"] == hit["scores"]["first_stage"]
        plain = protected.request("POST", "/api/search", {"query": "vitamin D", "rerank": False}, headers=key).body
        assert plain["reranked"] is False and all(hit["rerank_score"] is None for hit in plain["hits"])
        stats = protected.request("GET", "/api/stats", headers=key).body
        assert stats["rerank"]["queries"] == 1 and stats["rerank"]["p50_ms"] > 0
        # `bertsearch query --url` sends the key from the environment, as the server takes its own.
        fails_with("needs an API key: set $BERTSEARCH_API_KEY", "query", "vitamin D", "--url", protected.url)
        sent = ok_json("query", "vitamin D", "--no-rerank", "--url", protected.url, env={"BERTSEARCH_API_KEY": API_KEY})
        assert [h["doc_id"] for h in sent["hits"]] == [h["doc_id"] for h in plain["hits"]]
    finally:
        # uvicorn shuts down cleanly on SIGTERM, then exits by the same signal.
        assert stop_server(protected) in (0, -signal.SIGTERM)
        assert "Traceback" not in protected.log.read_text()
    with sqlite3.connect(index_dir / QUERY_LOG_DATABASE) as db:
        logged = db.execute("SELECT query, reranked, rerank_top_first_stage_rank FROM query_events").fetchall()
    assert len(logged) == 3 and all(q.startswith("hmac-sha256:") for q, _, _ in logged)
    assert "vitamin" not in "".join(q for q, _, _ in logged).lower()
    assert logged[0][0] == logged[1][0]  # the same query, however written, has the same digest
    assert logged[0][1] == 1 and logged[0][2] >= 1 and logged[1][1:] == (0, None)
    # Case 12: the digest is keyed by the index's own secret, kept apart from the log and readable by its owner only.
    key = index_dir / QUERY_HASH_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert logged[0][0] == hash_query("vitamin d", key.read_bytes())
    assert key.read_bytes() not in (index_dir / QUERY_LOG_DATABASE).read_bytes()


def test_a_failing_store_answers_5xx_with_a_request_id_and_no_internals(server_index: Path, tmp_path: Path) -> None:
    """A real failure under a running server (its keyword index dropped behind its back): the client gets a
    generic 5xx and a request id; the details, under that id, go only to the server's log."""
    index_dir = tmp_path / "idx"
    shutil.copytree(server_index, index_dir, ignore=shutil.ignore_patterns("querylog", "write.lock"))
    broken = start_server(index_dir, "--query-log", "off")
    try:
        assert broken.search("vitamin D", mode="bm25").status == 200
        with sqlite3.connect(index_dir / "store.sqlite3") as db:
            db.execute("DROP TABLE passages_fts")
        for mode in ("bm25", "hybrid"):
            answer = broken.search("vitamin D", mode=mode)
            assert answer.status in (500, 503), (mode, answer.status)
            assert set(answer.body) == {"error", "request_id"}, answer.body
            assert "passages_fts" not in json.dumps(answer.body) and "sqlite" not in json.dumps(answer.body).lower()
            assert answer.body["request_id"] in broken.log.read_text()
        assert broken.search("vitamin D", mode="dense").status == 200  # what does not need the table still works
    finally:
        stop_server(broken)
    assert "passages_fts" in broken.log.read_text()


def test_a_read_only_index_is_served_for_searches_and_refuses_writes_with_409(server_index: Path,
                                                                               tmp_path: Path) -> None:
    """Case 6: `serve` on an index folder it cannot write: searches work, unlogged; writes are a clear 409."""
    index_dir = tmp_path / "idx"
    shutil.copytree(server_index, index_dir, ignore=shutil.ignore_patterns("querylog", "write.lock"))
    with read_only_view(index_dir) as view:
        served = start_server(view, "--api-key", API_KEY)
        try:
            assert served.search("vitamin D", k=3).status == 200
            assert served.request("GET", "/api/ready").body["query_log"] == "off"
            stored = served.search("vitamin D").body["hits"][0]["doc_id"]
            for method, path, body in (("PUT", "/api/documents/new", {"text": "t"}),
                                       ("DELETE", f"/api/documents/{stored}", None)):
                refused = served.request(method, path, body, headers=WRITE)
                assert refused.status == 409, refused.body
                assert refused.body == {"error": "the index is read-only: it can be searched, not written"}
        finally:
            stop_server(served)
        log = served.log.read_text()
        assert "is read-only: searches work, writes are refused (409)" in log
        assert "warning: queries are not logged: cannot write the query log" in log and "Traceback" not in log
