"""Files → documents: plain text, Markdown, reStructuredText, HTML, PDF, and record files (JSONL, JSON, CSV).

A file the reader cannot use never stops a run: it comes out as a `SkippedFile` with a short reason, and so
does each bad record of a record file, so the user can fix exactly that line. Files read whole (text, HTML,
PDF, JSON) are refused above `max_file_bytes`; JSONL and CSV are read one record at a time, so a BEIR corpus
of any size streams through.

This module picks a reader by file type; `files` says which files are read, `encodings` how bytes become
text, `text_files` and `records` how each type becomes documents.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence

from bertsearch.indexer.filenames import file_name_text
from bertsearch.indexer.files import DEFAULT_MAX_FILE_BYTES, check_paths_exist, files_to_read, os_error_reason, shown
from bertsearch.indexer.records import read_csv, read_json, read_jsonl
from bertsearch.indexer.text_files import read_html, read_pdf, read_plain
from bertsearch.types import Document, SkippedFile

__all__ = ["DEFAULT_MAX_FILE_BYTES", "check_paths_exist", "estimate_document_count", "iter_documents"]


def iter_documents(
    paths: Sequence[Path], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, exclude: Sequence[Path] = ()
) -> Iterator[Document | SkippedFile]:
    """Documents from files and folders (recursively, sorted, hidden names skipped), and the files skipped.

    Args:
        paths: files or folders; a folder's documents get ids relative to it, a file passed directly its name.
        max_file_bytes: files read whole are skipped above this size.
        exclude: folders never read, such as the index folder when it lies inside the corpus.

    Returns:
        A stream of `Document`s and `SkippedFile`s in a deterministic order. Ids, sources and skipped paths are
        file names as `file_name_text` writes them (bytes that are not UTF-8 as `\\xNN`).

    Raises:
        BertsearchError: before anything is read, if a path does not exist.
    """
    roots = [Path(path) for path in paths]
    check_paths_exist(roots)
    for root, file in files_to_read(roots, exclude):
        if isinstance(file, SkippedFile):
            yield file
        else:
            name = file.relative_to(root).as_posix() if file != root else root.name
            yield from _read_file(file, file_name_text(name), max_file_bytes)


def _read_file(path: Path, doc_id: str, max_file_bytes: int) -> Iterator[Document | SkippedFile]:
    """The documents in one file (one, or one per record); `doc_id` names a whole-file document."""
    source = shown(path)
    kind = _file_kind(path)
    reader = _READERS.get(kind)
    if reader is None:
        yield SkippedFile(source, f"unsupported type {kind}" if kind else "unsupported type (no extension)")
        return
    try:
        if kind not in _STREAMED_KINDS:
            size = path.stat().st_size
            if size > max_file_bytes:
                yield SkippedFile(source, f"too large ({_human_size(size)} > {_human_size(max_file_bytes)})")
                return
        yield from reader(path, source, doc_id)
    except (OSError, EOFError, zlib.error) as exc:  # gzip reports corrupt data as EOFError or zlib.error
        yield SkippedFile(source, os_error_reason(exc))


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else Path(name).suffix


def _human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:g} {unit}"
        size = round(size / 1024, 1)
    return f"{size:g} GB"


_READERS: dict[str, Callable[[Path, str, str], Iterator[Document | SkippedFile]]] = {
    ".txt": read_plain,
    ".rst": read_plain,
    ".md": read_plain,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".jsonl.gz": read_jsonl,
    ".csv": read_csv,
}
_STREAMED_KINDS = frozenset((".jsonl", ".jsonl.gz", ".csv"))


def estimate_document_count(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> int:
    """Roughly how many documents `iter_documents` will yield, for a progress bar's ETA.

    One per readable file, one per line of record files: cheap (no parsing), and close for the common layouts.
    """
    total = 0
    for _, file in files_to_read([Path(path) for path in paths], exclude):
        if isinstance(file, SkippedFile):
            continue
        kind = _file_kind(file)
        if kind not in _READERS:
            continue
        if kind not in _STREAMED_KINDS:
            total += 1
            continue
        try:
            opener = gzip.open if kind == ".jsonl.gz" else open
            with opener(file, "rb") as handle:
                lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            total += lines - 1 if kind == ".csv" else lines  # a CSV's first line is its header
        except (OSError, EOFError, zlib.error):
            continue
    return total
