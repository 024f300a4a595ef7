"""The real `bertsearch` command against hostile but realistic input: folder entries that are not plain files,
names and text that are not clean UTF-8, a very long document, a read-only and a damaged index, and secrets on
the command line. Each ends as the README's "Failure behaviour" table says."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    OFFLINE_ENV,
    bertsearch_command,
    fails_with,
    ok_json,
    read_only_view,
    run_bertsearch,
    write_scifact_slice,
)

pytestmark = pytest.mark.slow
FRENCH = "Le café était très bon, et la crème brûlée aussi. Où est la bibliothèque ? Ça dépend de l’été. "


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A folder with a good file beside every kind of entry that once cost the whole run, indexed once."""
    root = tmp_path_factory.mktemp("hostile")
    corpus, outside = root / "corpus", root / "private.txt"
    (corpus / "sub").mkdir(parents=True)
    outside.write_text("A file outside the indexed folder.\n")
    (corpus / "ok.txt").write_text("Jupiter is the largest planet in the solar system.\n")
    (corpus / "sub" / "target.txt").write_text("Saturn has the most visible rings.\n")
    (corpus / "a.txt").symlink_to("b.txt")
    (corpus / "b.txt").symlink_to("a.txt")
    (corpus / "broken.txt").symlink_to("gone.txt")
    (corpus / "out.txt").symlink_to(outside)
    (corpus / "rings.txt").symlink_to(corpus / "sub" / "target.txt")
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)
    os.mkfifo(corpus / "pipe.txt")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(corpus / "server.sock"))
    (corpus / "stray-byte.txt").write_bytes(FRENCH.encode() + b"\xff" + FRENCH.encode())
    (corpus / "compressed.txt").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)))
    (corpus / "records.jsonl").write_text('{"_id": "fine", "text": "A fine record.", "score": 2.5}\n'
                                          '{"_id": "nan", "text": "Not a number.", "score": NaN}\n')
    try:
        summary = ok_json("index", corpus, "--index-dir", root / "idx")
    finally:
        listener.close()
    return root, summary


def skip_reasons(summary: dict) -> dict[str, str]:
    return {Path(entry["path"]).name: entry["reason"] for entry in summary["skipped"]}


def test_links_loops_and_links_out_of_the_folder_are_counted_skips(hostile_folder: tuple[Path, dict]) -> None:
    """Case 1: a symlink loop once ended the run with a traceback and nothing indexed."""
    root, summary = hostile_folder
    reasons = skip_reasons(summary)
    assert reasons["a.txt"] == reasons["b.txt"] == "link loop (the link leads back to itself)"
    assert reasons["broken.txt"] == "broken link (to gone.txt)"
    assert reasons["out.txt"] == f"link out of the indexed folder (to {root / 'private.txt'}), not followed"
    assert reasons["loop"] == "link to a folder, not followed"
    hits = ok_json("query", "rings of Saturn", "--index-dir", root / "idx", "--mode", "bm25")["hits"]
    assert {hit["doc_id"] for hit in hits} == {"rings.txt", "sub/target.txt"}  # a link inside is read
    assert ok_json("query", "outside", "--index-dir", root / "idx", "--mode", "bm25")["hits"] == []


def test_fifos_and_sockets_are_counted_skips_that_never_block(hostile_folder: tuple[Path, dict]) -> None:
    """Case 3: the FIFO would block a reader that opened it; the fixture's run finished, so none was opened."""
    reasons = skip_reasons(hostile_folder[1])
    assert reasons["pipe.txt"] == "not a regular file (a FIFO)"
    assert reasons["server.sock"] == "not a regular file (a socket)"


def test_mostly_utf8_text_is_decoded_and_binaries_are_still_skipped(hostile_folder: tuple[Path, dict]) -> None:
    """Case 5: accented UTF-8 with one stray byte was once skipped as binary."""
    root, summary = hostile_folder
    assert skip_reasons(summary)["compressed.txt"] == "binary"
    (hit,) = ok_json("query", "crème brûlée", "--index-dir", root / "idx", "--mode", "bm25", "-k", "1")["hits"]
    assert hit["doc_id"] == "stray-byte.txt" and "de l’été. \ufffdLe café" in hit["passage"]


def test_a_record_with_nan_is_a_counted_skip_not_changed_data(hostile_folder: tuple[Path, dict]) -> None:
    """Case 10, from files: NaN was once stored and read back as null."""
    root, summary = hostile_folder
    assert {"path": str(root / "corpus" / "records.jsonl"),
            "reason": "line 2: record field 'score' is nan, a number JSON cannot hold"} in summary["skipped"]
    # ok.txt, rings.txt, sub/target.txt, stray-byte.txt and the record "fine": the rest are skips
    assert summary["documents_added"] == summary["documents_seen"] == 5


def test_file_names_that_are_not_utf8_are_indexed_found_and_pruned(tmp_path: Path) -> None:
    """Case 2: such a name once failed the whole run in the store (surrogates not allowed)."""
    corpus, index_dir = tmp_path / "corpus", tmp_path / "idx"
    corpus.mkdir()
    latin = Path(os.fsdecode(bytes(corpus) + b"/latin\xe9name.txt"))
    latin.write_text("Octopuses open jars with their arms.\n")
    (corpus / "plain.txt").write_text("Squids change colour.\n")
    first = ok_json("index", corpus, "--index-dir", index_dir)
    assert (first["documents_added"], first["documents_failed"]) == (2, 0)
    (hit,) = ok_json("query", "octopus jars", "--index-dir", index_dir, "--mode", "bm25")["hits"]
    assert (hit["doc_id"], hit["source"]) == (r"latin\xe9name.txt", rf"{corpus}/latin\xe9name.txt")
    again = ok_json("index", corpus, "--index-dir", index_dir)
    assert (again["documents_unchanged"], again["passages_encoded"]) == (2, 0)
    latin.unlink()
    pruned = ok_json("index", corpus, "--index-dir", index_dir, "--prune")
    assert pruned["documents_removed"] == 1
    assert ok_json("query", "octopus jars", "--index-dir", index_dir, "--mode", "bm25")["hits"] == []


LONG_BATCH = 16


def stashed(index_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index_dir / 'store.sqlite3'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM stashed_vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_long_single_line_document_shows_progress_commits_batches_and_resumes_after_kill_9(tmp_path: Path) -> None:
    """Case 4: a 20 MB single-line file once encoded for minutes with no progress and nothing committed. This
    one is ~250 passages on one line, encoded 16 at a time."""
    corpus, index_dir = tmp_path / "long.txt", tmp_path / "idx"
    corpus.write_text(" ".join(f"Sentence {i} tells about the topic numbered {i % 97} in plain words."
                               for i in range(4000)))
    controller, terminal = pty.openpty()  # the progress bar is drawn on a terminal only
    process = subprocess.Popen(bertsearch_command("index", corpus, "--index-dir", index_dir, "--batch-passages",
                                                  str(LONG_BATCH)),
                               stdout=subprocess.DEVNULL, stderr=terminal, env={**os.environ, **OFFLINE_ENV})
    os.close(terminal)
    drawn, committed = b"", 0
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and committed < 4 * LONG_BATCH and time.monotonic() < deadline:
            time.sleep(0.1)
            committed = stashed(index_dir)
        assert process.poll() is None, "the document was encoded before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        process.kill()
        os.close(controller)
    assert committed >= 4 * LONG_BATCH and committed % LONG_BATCH == 0, committed  # whole batches, durable
    shown = {int(part.split()[-1]) for part in drawn.decode(errors="replace").split(" passages ·")[:-1]
             if part.split() and part.split()[-1].isdigit()}
    assert len(shown) >= 2 and max(shown) >= LONG_BATCH, drawn[-2000:]  # passages counted up while encoding

    resumed = ok_json("index", corpus, "--index-dir", index_dir, "--batch-passages", str(LONG_BATCH))
    assert resumed["documents_added"] == 1 and resumed["passages_reused"] >= committed
    total = resumed["passages_encoded"] + resumed["passages_reused"]
    assert total > 10 * LONG_BATCH
    assert stashed(index_dir) == 0  # the run went through: nothing is kept aside any more
    hits = ok_json("query", "the topic numbered 42", "--index-dir", index_dir, "--mode", "bm25")["hits"]
    assert hits[0]["doc_id"] == "long.txt"
    with sqlite3.connect(index_dir / "store.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM passages").fetchone()[0] == total


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("hardening-scifact"), queries=3, documents=24)


@pytest.fixture(scope="module")
def built_index(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("hardening-index") / "idx"
    ok_json("index", small_dataset / "corpus.jsonl", "--index-dir", index_dir)
    return index_dir


def test_reading_commands_work_on_a_read_only_index_and_writing_ones_fail_with_one_line(
    built_index: Path, small_dataset: Path, tmp_path: Path
) -> None:
    """Case 6: `query` once failed with a traceback on a read-only index (SQLite opened read-write, WAL)."""
    index_dir = tmp_path / "idx"
    shutil.copytree(built_index, index_dir)
    with read_only_view(index_dir) as view:
        for mode in ("bm25", "hybrid"):
            result = run_bertsearch("query", "vitamin D", "--index-dir", view, "--mode", mode, "--json")
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["hits"]
            (warning,) = result.stderr.strip().splitlines()  # the query log cannot be written: said once
            assert warning.startswith("warning: query not logged: cannot write the query log"), warning
        stats = ok_json("stats", "--index-dir", view)
        assert stats["index"]["documents"] == 24 and stats["queries"] == 0
        evaluated = ok_json("eval", small_dataset, "--index-dir", view, "--pipelines", "bm25")
        assert evaluated["bm25"]["nDCG@10"] > 0.3
        fails_with("is read-only: it can be searched, not written", "index", small_dataset / "corpus.jsonl",
                   "--index-dir", view)


def test_a_damaged_database_is_one_line_and_index_repair_rebuilds_it_reusing_its_vectors(
    built_index: Path, small_dataset: Path, tmp_path: Path
) -> None:
    """Case 7: a database truncated to half once ended `query` and `index` in tracebacks, beyond repair."""
    index_dir = tmp_path / "idx"
    shutil.copytree(built_index, index_dir)
    database = index_dir / "store.sqlite3"
    damaged = database.read_bytes()[: database.stat().st_size // 2]
    database.write_bytes(damaged)
    for command in (("query", "vitamin D", "--mode", "bm25"), ("index", small_dataset / "corpus.jsonl")):
        line = fails_with("store.sqlite3 is damaged (database disk image is malformed)", *command,
                          "--index-dir", index_dir)
        assert f"--index-dir {index_dir} --repair" in line

    result = run_bertsearch("index", small_dataset / "corpus.jsonl", "--index-dir", index_dir, "--repair", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents_added"] == 24 and 0 < summary["passages_reused"]
    (kept,) = index_dir.glob("store.damaged-*.sqlite3")
    assert kept.read_bytes() == damaged and str(kept) in result.stderr
    assert ok_json("index", small_dataset / "corpus.jsonl", "--index-dir", index_dir)["documents_unchanged"] == 24


def test_secrets_typed_on_the_command_line_work_but_warn(tmp_path: Path) -> None:
    """Case 11: every local user can read a process's arguments in /proc/PID/cmdline."""
    unreachable = ("query", "x", "--mode", "bm25", "--index-dir", tmp_path / "idx", "--backend", "elasticsearch",
                   "--es-url", "http://127.0.0.1:9")
    for option, variable in (("--es-password", "BERTSEARCH_ES_PASSWORD"), ("--es-api-key", "BERTSEARCH_ES_API_KEY")):
        typed = run_bertsearch(*unreachable, option, "s3cret-value")
        warning, error = typed.stderr.strip().splitlines()
        assert warning == (f"warning: {option} on the command line can be read by every user of this machine (ps, "
                           f"/proc/PID/cmdline); set ${variable} or use {option}-file instead")
        assert error.startswith("error: cannot reach Elasticsearch") and "s3cret-value" not in typed.stderr
    from_environment = run_bertsearch(*unreachable, env={"BERTSEARCH_ES_PASSWORD": "s3cret-value"})
    assert from_environment.stderr.strip().startswith("error: cannot reach")  # no warning
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n")
    from_file = run_bertsearch(*unreachable, "--es-password-file", secret)
    assert from_file.stderr.strip().startswith("error: cannot reach")
    fails_with("give --es-password or --es-password-file, not both", *unreachable, "--es-password-file", secret,
               env={"BERTSEARCH_ES_PASSWORD": "other"})
    fails_with("--api-key-file", "serve", "--index-dir", tmp_path / "idx", "--api-key-file", tmp_path / "missing")
    typed = run_bertsearch("serve", "--index-dir", tmp_path / "idx", "--api-key", "s3cret-value", "--port", "9")
    assert typed.stderr.startswith("warning: --api-key on the command line can be read by every user")
