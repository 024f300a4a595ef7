"""Shared test data: a reproducible slice of SciFact, and running the real `bertsearch` command."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from bertsearch.stores import Store
from bertsearch.types import PassageHit

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def scifact_dir() -> Path:
    """The SciFact folder beside the checkout (`../shared/datasets/scifact`), or $BERTSEARCH_SCIFACT."""
    return Path(os.environ.get("BERTSEARCH_SCIFACT", SCIFACT))


def write_scifact_slice(target: Path, queries: int = 40, documents: int = 300) -> Path:
    """A BEIR folder with the first `queries` test queries, their relevant documents, and distractors
    (the first documents of the corpus) up to `documents` in all."""
    source = scifact_dir()
    qrels_lines = (source / "qrels" / "test.tsv").read_text().splitlines()[1:]
    chosen: list[str] = []
    for line in qrels_lines:
        query_id = line.split("\t")[0]
        if query_id not in chosen:
            chosen.append(query_id)
        if len(chosen) == queries:
            break
    kept_qrels = [line for line in qrels_lines if line.split("\t")[0] in chosen]
    relevant = {line.split("\t")[1] for line in kept_qrels}
    corpus = []
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in relevant or len(corpus) < documents - len(relevant):
                corpus.append(line)
    target.mkdir(parents=True, exist_ok=True)
    (target / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    with gzip.open(source / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        query_lines = [line for line in handle if json.loads(line)["_id"] in chosen]
    (target / "queries.jsonl").write_text("".join(query_lines), encoding="utf-8")
    (target / "qrels").mkdir(exist_ok=True)
    (target / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(kept_qrels) + "\n")
    return target


def store_contents(store: Store) -> tuple[dict[str, tuple[str, str]], list[tuple], tuple[int, int]]:
    """What a store holds, read through its interface: each document's content hash and source, every passage
    (doc id, position, title, text), and the document and passage counts it reports."""
    documents = {doc_id: (doc.content_hash, doc.source) for doc_id, doc in store.stored_documents().items()}
    counts = store.passage_counts(list(documents))
    wanted = [PassageHit(doc_id, position, 0.0) for doc_id, count in counts.items() for position in range(count)]
    passages = sorted((hit.doc_id, hit.position, hit.title, hit.text) for hit in store.with_texts(wanted))
    assert len(passages) == len(wanted), "a passage the counts promise is missing"
    stats = store.stats()
    return documents, passages, (stats.documents, stats.passages)


def relevance(results: dict) -> dict[str, float]:
    """`bertsearch eval --json` figures as {"pipeline measure": value}, without the latencies, which no two runs
    share: what two indices holding the same passages must agree on."""
    return {f"{pipeline} {name}": value for pipeline, metrics in results.items()
            for name, value in metrics.items() if not name.startswith("latency")}


def bertsearch_command(*args: str | Path, env: dict[str, str] | None = None, **kwargs) -> list[str]:
    return [sys.executable, "-m", "bertsearch.cli.main", *map(str, args)]


def run_bertsearch(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (real exit codes, real stderr)."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    return subprocess.run(bertsearch_command(*args), capture_output=True, text=True, env=full_env, timeout=timeout)


def _run_keeping(secret: str | None, *args: str | Path, env: dict[str, str] | None) -> subprocess.CompletedProcess:
    result = run_bertsearch(*args, env=env)
    assert secret is None or secret not in result.stdout + result.stderr, "the output shows a secret"
    return result


def ok_json(*args: str | Path, env: dict[str, str] | None = None, secret: str | None = None) -> dict:
    """Run the CLI with --json; it must succeed (without printing `secret`), and its output is the parsed object."""
    result = _run_keeping(secret, *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fails_with(expected: str, *args: str | Path, env: dict[str, str] | None = None, secret: str | None = None) -> str:
    """A non-zero exit, one line on stderr that says what is wrong, no traceback and no `secret`; returns the line."""
    result = _run_keeping(secret, *args, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


# Runs the real entry point in this interpreter and reports, on stderr's last line, which heavy modules it imported.
_IMPORT_PROBE = """
import json, sys
from bertsearch.cli.main import HEAVY_MODULES, main
sys.argv = ["bertsearch", *json.loads(sys.argv[1])]
try:
    main()
finally:
    print(json.dumps(sorted(m for m in HEAVY_MODULES if m in sys.modules)), file=sys.stderr)
"""


def imported_by(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `bertsearch ARGS` in a subprocess; its result, and which of the CLI's HEAVY_MODULES it imported."""
    result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, json.dumps(args)], capture_output=True, text=True,
                            env={**os.environ, **OFFLINE_ENV, **(env or {})}, timeout=600)
    return result, json.loads(result.stderr.strip().splitlines()[-1])


@contextlib.contextmanager
def read_only_view(folder: Path) -> Iterator[Path]:
    """`folder` seen through a read-only bind mount beside it: every write there fails (EROFS), for root too,
    whom a chmod would not stop. Unmounted on exit."""
    view = folder.with_name(folder.name + "-read-only")
    view.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(view)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True, capture_output=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True, capture_output=True)
        view.rmdir()


@contextlib.contextmanager
def immutable_files(folder: Path) -> Iterator[None]:
    """Every file in `folder` made immutable (`chattr +i`: not even root may change it), the folder itself left
    writable; made mutable again on exit."""
    files = [str(path) for path in folder.iterdir() if path.is_file()]
    subprocess.run(["chattr", "+i", *files], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *files], check=True, capture_output=True)
