"""Record files → documents: JSONL (also gzip-compressed), JSON (one object or a list) and CSV, one document per
record. A bad record is skipped with its line or record number, so the user can fix exactly that one; JSONL and
CSV are read one record at a time, so a BEIR corpus of any size streams through."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from bertsearch.indexer.encodings import decode, open_text_stream
from bertsearch.indexer.files import DEFAULT_MAX_FILE_BYTES
from bertsearch.text import has_lone_surrogate
from bertsearch.types import Document, SkippedFile

_ID_FIELDS = ("_id", "id")
_TEXT_FIELDS = ("text", "body", "content")
_TITLE_FIELD = "title"
_RECORD_FIELDS = frozenset((*_ID_FIELDS, *_TEXT_FIELDS, _TITLE_FIELD))


class _RecordError(ValueError):
    """A record that cannot become a document; the message is the skip reason."""


def _record_document(record: Any, source: str) -> Document:
    """One JSON/CSV record as a document; raises _RecordError saying why it cannot be one."""
    if not isinstance(record, dict):
        raise _RecordError("not a JSON object")
    raw_id = next((record[name] for name in _ID_FIELDS if record.get(name) not in (None, "")), None)
    if raw_id is None:
        raise _RecordError("record has no id")
    if not isinstance(raw_id, (str, int)):
        raise _RecordError("record id is not a string or number")
    text_field = next((name for name in _TEXT_FIELDS if name in record), _TEXT_FIELDS[0])
    text = _record_string(record, text_field)
    title = _record_string(record, _TITLE_FIELD)
    if not text and not title:
        raise _RecordError("record has no text or title")
    metadata = {
        key: value
        for key, value in record.items()
        if key not in _RECORD_FIELDS and isinstance(value, (str, int, float, bool))
    }
    for key, value in [("id", raw_id), *metadata.items()]:
        if isinstance(value, float) and not math.isfinite(value):
            raise _RecordError(f"record field {_quoted(key)} is {value!r}, a number JSON cannot hold")
        if any(isinstance(part, str) and has_lone_surrogate(part) for part in (key, value)):
            raise _RecordError(f"record field {_quoted(key)} is not valid Unicode (it holds a lone surrogate)")
    for field_name, value in ((text_field, text), (_TITLE_FIELD, title)):
        if has_lone_surrogate(value):
            raise _RecordError(f"record field {field_name!r} is not valid Unicode (it holds a lone surrogate)")
    return Document(doc_id=str(raw_id), text=text, title=title, source=source, metadata=metadata)


def _quoted(key: str) -> str:
    """`key` in quotes, printable even if it holds a lone surrogate."""
    return repr(key.encode("utf-8", errors="backslashreplace").decode("utf-8"))


def _record_string(record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _RecordError(f"record field {field!r} is not a string")
    return value.replace("\r\n", "\n").strip()


def _record_or_skip(record: Any, source: str, location: str) -> Document | SkippedFile:
    try:
        return _record_document(record, source)
    except _RecordError as exc:
        return SkippedFile(source, f"{location}: {exc}" if location else str(exc))


def read_jsonl(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    stream = open_text_stream(path)
    if stream is None:
        yield SkippedFile(source, "binary")
        return
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                yield SkippedFile(source, f"line {number}: invalid JSON")
                continue
            yield _record_or_skip(record, source, f"line {number}")


def read_json(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    text = decode(path.read_bytes())
    if text is None:
        yield SkippedFile(source, "binary")
        return
    if not text.strip():
        yield SkippedFile(source, "empty")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield SkippedFile(source, f"invalid JSON ({exc.msg}, line {exc.lineno})")
        return
    if isinstance(data, list):
        for number, record in enumerate(data, start=1):
            yield _record_or_skip(record, source, f"record {number}")
    elif isinstance(data, dict):
        yield _record_or_skip(data, source, "")
    else:
        yield SkippedFile(source, "not a JSON object or list of objects")


def read_csv(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    stream = open_text_stream(path)
    if stream is None:
        yield SkippedFile(source, "binary")
        return
    # The default 128 KB field limit would refuse long documents; raising it harms no other user of csv.
    csv.field_size_limit(max(csv.field_size_limit(), DEFAULT_MAX_FILE_BYTES))
    with stream:
        reader = csv.DictReader(stream)
        if not reader.fieldnames:
            yield SkippedFile(source, "empty")
            return
        # Record fields are matched case-insensitively; other columns keep their header names as metadata keys.
        renamed = {name: name.strip().lower() for name in reader.fieldnames if name.strip().lower() in _RECORD_FIELDS}
        if not any(field in renamed.values() for field in _ID_FIELDS):
            yield SkippedFile(source, "no id column (need 'id' or '_id')")
            return
        if not any(field in renamed.values() for field in (*_TEXT_FIELDS, _TITLE_FIELD)):
            yield SkippedFile(source, "no text column (need 'text', 'body', 'content' or 'title')")
            return
        line = reader.line_num + 1
        for row in reader:
            location, line = f"line {line}", reader.line_num + 1
            if None in row:  # DictReader files fields beyond the header under None
                yield SkippedFile(source, f"{location}: more fields than the header")
                continue
            record = {renamed.get(key, key): value for key, value in row.items() if key}
            yield _record_or_skip(record, source, location)
