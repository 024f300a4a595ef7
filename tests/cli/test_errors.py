"""Library errors say what is wrong; only the CLI words the fix as a flag (cli/errors.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bertsearch.cli.errors import FLAGS, error_line
from bertsearch.errors import BertsearchError, DamagedIndexError, IndexMismatchError, IndexNotFoundError, \
    NoRerankerError
from bertsearch.rerank import RerankCheck, RerankerRejectedError

REPO = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(^|[\s(`/])--[a-z]")


def library_error_texts() -> list[tuple[str, int, str]]:
    """Every string literal inside a `raise` or an `...Error(...)` call in the library (not the CLI)."""
    found = []
    for path in sorted([*(REPO / "bertsearch").rglob("*.py"), *(REPO / "indexer").rglob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            is_error = isinstance(node, ast.Raise) or (
                isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")).endswith("Error"))
            if is_error:
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        found.append((str(path.relative_to(REPO)), part.lineno, part.value))
    return found


def test_no_library_error_names_a_command_line_flag() -> None:
    texts = library_error_texts()
    assert len(texts) > 100  # the scan sees the library's messages
    flagged = [f"{path}:{line}: {text}" for path, line, text in texts if FLAG.search(text)]
    assert flagged == []


CHECK = RerankCheck(queries=50, depth=20, first_stage=0.700, rerank_only=0.650, blend=0.690, blend_weight=1.0)


@pytest.mark.parametrize(("error", "line"), [
    (RerankerRejectedError(Path("/m"), CHECK), "error: reranker /m does not improve on first-stage retrieval "
     "(validation nDCG@10 0.700 alone, 0.690 with it); use --force to use it anyway"),
    (RerankerRejectedError(Path("/m"), None), "error: reranker /m was never checked against first-stage retrieval "
     "(trained without an index); use --force to use it anyway"),
    (NoRerankerError("no reranker configured for this index"),
     "error: no reranker configured for this index: run `bertsearch reranker use PATH` or pass --reranker"),
    (IndexNotFoundError("no index at /i", index_dir="/i"),
     "error: no index at /i (run `bertsearch index PATH --index-dir /i` first)"),
    (IndexMismatchError("this index was built with another model (m)", differs="model"),
     "error: this index was built with another model (m): use that model or a new --index-dir"),
    (IndexMismatchError("this index was built with shards 1, not shards 2", differs="layout"),
     "error: this index was built with shards 1, not shards 2: add --rebuild to build a new one beside it"),
    (IndexMismatchError("unreadable index manifest /i/x.json"), "error: unreadable index manifest /i/x.json"),
    (DamagedIndexError("the index database /i/store.sqlite3 is damaged", "/i"),
     "error: the index database /i/store.sqlite3 is damaged; rebuild it from the indexed files with "
     "`bertsearch index PATH... --index-dir /i --repair` (the damaged file is kept)"),
    (BertsearchError("the elasticsearch backend needs an Elasticsearch URL", settings=("es_url",)),
     "error: the elasticsearch backend needs an Elasticsearch URL (--es-url or BERTSEARCH_ES_URL)"),
    (BertsearchError("plain"), "error: plain"),
])
def test_the_cli_words_the_fix_as_a_flag(error: BertsearchError, line: str) -> None:
    assert error_line(error) == line


def test_every_flag_the_cli_names_exists() -> None:
    from click.testing import CliRunner

    from bertsearch.cli.main import cli

    helps = "".join(CliRunner().invoke(cli, [*command, "--help"]).output
                    for command in (["index"], ["query"], ["dashboards", "install"]))
    for flags in FLAGS.values():
        for flag in re.findall(r"--[a-z-]+", flags):
            assert flag in helps, flag
