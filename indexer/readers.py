"""Files → documents: plain text, Markdown, reStructuredText, HTML, PDF, and record files (JSONL, JSON, CSV).

A file the reader cannot use never stops a run: it comes out as a `SkippedFile` with a short reason, and so
does each bad record of a record file, so the user can fix exactly that line. Files read whole (text, HTML,
PDF, JSON) are refused above `max_file_bytes`; JSONL and CSV are read one record at a time, so a BEIR corpus
of any size streams through.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import json
import math
import os
import re
import stat
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

import charset_normalizer

from bertsearch.errors import BertsearchError
from bertsearch.text import has_lone_surrogate
from bertsearch.types import Document, SkippedFile
from bertsearch.indexer.filenames import file_name_text

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

_ID_FIELDS = ("_id", "id")
_TEXT_FIELDS = ("text", "body", "content")
_TITLE_FIELD = "title"
_RECORD_FIELDS = frozenset((*_ID_FIELDS, *_TEXT_FIELDS, _TITLE_FIELD))

# Enough of a file to recognise binary content and guess a streamed file's encoding.
_HEAD_BYTES = 64 * 1024
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Without a BOM, NUL-free bytes are never UTF-16/32 text, though the detector sometimes says so.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]

_MARKDOWN_TITLE = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_MARKDOWN_FENCE = re.compile(r"```|~~~")
_HTML_DROPPED = ["script", "style", "noscript", "template", "head", "title"]
_HTML_BLOCKS = [
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
]  # fmt: skip
# Mark block edges and <br> while the source's own line wrapping is flattened: not whitespace to str.split(),
# and absent from the text (files with NUL bytes are refused as binary).
_BLOCK_MARK = "\x00"
_LINE_MARK = "\x01"


class _RecordError(ValueError):
    """A record that cannot become a document; the message is the skip reason."""


def check_paths_exist(paths: Sequence[Path]) -> None:
    """BertsearchError naming every path that does not exist, so a run fails before loading anything."""
    missing = [str(path) for path in paths if not Path(path).exists()]
    if missing:
        raise BertsearchError(f"no such file or folder: {', '.join(missing)}")


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
    for root, file in _files(roots, exclude):
        if isinstance(file, SkippedFile):
            yield file
        else:
            name = file.relative_to(root).as_posix() if file != root else root.name
            yield from _read_file(file, file_name_text(name), max_file_bytes)


def _files(roots: Sequence[Path], exclude: Sequence[Path]) -> Iterator[tuple[Path, Path | SkippedFile]]:
    """(root, file) for every regular file to read under `roots`, and (root, skip) for every entry that is not one.

    A file named directly is read even through a link; inside a folder, see `_walk`.
    """
    excluded = {Path(path).resolve() for path in exclude}
    for root in roots:
        if root.is_dir():
            for file in _walk(root, root.resolve(), excluded):
                yield root, file
            continue
        try:
            reason = _not_a_regular_file(os.stat(root).st_mode)
        except OSError as exc:
            reason = _os_error_reason(exc)
        yield root, SkippedFile(_shown(root), reason) if reason else root


def _walk(folder: Path, top: Path, excluded: set[Path]) -> Iterator[Path | SkippedFile]:
    """Regular files under `folder` in name order, depth first, leaving out hidden entries such as a `.bertsearch`
    index; every other entry that is not read (a FIFO, a socket, a device, a link not followed) is skipped with
    its reason, and never opened.

    A link to a file inside `top` (the indexed folder, resolved) is read under the link's own name. Links to
    folders are not followed, so a link cycle cannot make the walk endless; broken links, link loops and links
    out of `top` are skipped.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        yield SkippedFile(_shown(folder), _os_error_reason(exc))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            if entry.is_symlink():
                reason = _link_problem(path, top)
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() not in excluded:
                    yield from _walk(path, top, excluded)
                continue
            else:
                reason = _not_a_regular_file(entry.stat(follow_symlinks=False).st_mode)
        except OSError as exc:
            reason = _os_error_reason(exc)
        yield SkippedFile(_shown(path), reason) if reason else path


def _link_problem(link: Path, top: Path) -> str | None:
    """Why the file `link` points at is not read, or None for a regular file inside `top`."""
    try:
        mode = os.stat(link).st_mode
    except FileNotFoundError:
        return f"broken link (to {file_name_text(os.readlink(link))})"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "link loop (the link leads back to itself)"
        raise
    target = Path(os.path.realpath(link))
    if target != top and top not in target.parents:
        return f"link out of the indexed folder (to {_shown(target)}), not followed"
    kind = _special_kind(mode)
    return f"link to {kind}, not followed" if kind else None


def _not_a_regular_file(mode: int) -> str | None:
    """Why an entry of this `st_mode` is not read, or None for a regular file."""
    kind = _special_kind(mode)
    return f"not a regular file ({kind})" if kind else None


def _special_kind(mode: int) -> str | None:
    """What an entry that is not a regular file is (opening a FIFO would wait for a writer); None for a file."""
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _shown(path: Path) -> str:
    """`path`, absolute, as ids and sources show file names."""
    return file_name_text(str(path.absolute()))


def _read_file(path: Path, doc_id: str, max_file_bytes: int) -> Iterator[Document | SkippedFile]:
    """The documents in one file (one, or one per record); `doc_id` names a whole-file document."""
    source = _shown(path)
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
        yield SkippedFile(source, _os_error_reason(exc))


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else Path(name).suffix


def _os_error_reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"unreadable ({detail})"


def _human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:g} {unit}"
        size = round(size / 1024, 1)
    return f"{size:g} GB"


def _detect_encoding(data: bytes, complete: bool = True) -> str | None:
    """The encoding of `data` (a whole file, or with `complete` false its first bytes), or None if it looks binary.

    UTF-8 (with or without BOM), UTF-8 but for a few bad bytes (`_mostly_utf8`, decoded with replacement
    characters), and BOM-marked UTF-16/32 are taken as they are. Anything else goes to charset-normalizer,
    which on short text cannot tell one Latin code page from another; Windows-1252 is the common case among
    those, so it wins whenever the detector finds it plausible.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    if b"\x00" in data:
        return None
    if _mostly_utf8(data, complete):
        return "utf-8"
    matches = charset_normalizer.from_bytes(data, cp_exclusion=_WIDE_ENCODINGS)
    if not matches:
        return None
    if any("cp1252" in match.could_be_from_charset for match in matches):
        return "cp1252"
    return matches.best().encoding


def _mostly_utf8(data: bytes, complete: bool = True) -> bool:
    """True if `data` is UTF-8, or UTF-8 but for a few bytes: it holds at least as many valid multi-byte
    characters as invalid byte sequences. Text in a one-byte code page (Windows-1252, Latin-1...) almost never
    holds a valid multi-byte sequence, so each of its accented letters counts as invalid and the detector gets
    it; a head (`complete` false) may end in the middle of a character."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=complete)
    invalid = text.count("\ufffd") - data.count("\ufffd".encode())
    if not invalid:
        return True
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return non_ascii - invalid >= invalid


def _decode(data: bytes) -> str | None:
    """`data` as text with newlines normalised, or None if it looks binary."""
    encoding = _detect_encoding(data)
    if encoding is None:
        return None
    return data.decode(encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _whole_file_document(source: str, doc_id: str, text: str, title: str) -> Document | SkippedFile:
    if not text and not title:
        return SkippedFile(source, "empty")
    # Decoded text never holds a lone surrogate; a PDF's extracted text might.
    return Document(doc_id=doc_id, text=_valid_text(text), title=_valid_text(title), source=source)


def _valid_text(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8") if has_lone_surrogate(text) else text


def _read_plain(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    text = _decode(path.read_bytes())
    if text is None:
        yield SkippedFile(source, "binary")
        return
    title = _markdown_title(text) if path.suffix.lower() == ".md" else ""
    yield _whole_file_document(source, doc_id, text.strip(), title)


def _markdown_title(text: str) -> str:
    """The first level-one `# heading` outside code blocks, or ""."""
    in_fence = False
    for line in text.splitlines():
        if _MARKDOWN_FENCE.match(line.lstrip()):
            in_fence = not in_fence
        elif not in_fence and (match := _MARKDOWN_TITLE.fullmatch(line)):
            return match.group(1).strip()
    return ""


def _read_html(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    data = path.read_bytes()
    if _detect_encoding(data[:_HEAD_BYTES], complete=len(data) <= _HEAD_BYTES) is None:
        yield SkippedFile(source, "binary")
        return
    try:
        markup: bytes | str = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        markup = data  # BeautifulSoup honours a <meta charset> before guessing
        if _declares_utf8_or_nothing(data) and _mostly_utf8(data):
            markup = data.decode("utf-8", errors="replace")
    title, text = _html_title_and_text(markup)
    yield _whole_file_document(source, doc_id, text, title)


def _declares_utf8_or_nothing(markup: bytes) -> bool:
    """True unless the page declares a charset other than UTF-8 (`<meta charset>`, or an XML declaration)."""
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(markup, is_html=True)
    try:
        return declared is None or codecs.lookup(declared).name == "utf-8"
    except LookupError:
        return False


def _html_title_and_text(markup: bytes | str) -> tuple[str, str]:
    """The page's title (`<title>`, else the first `<h1>`) and its visible text, blocks separated by blank lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.title or soup.h1
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    for tag in soup(_HTML_DROPPED):
        tag.decompose()
    for tag in soup(_HTML_BLOCKS):
        tag.insert_before(_BLOCK_MARK)
        tag.append(_BLOCK_MARK)
    for tag in soup("br"):
        tag.replace_with(_LINE_MARK)
    blocks = []
    for block in " ".join(soup.get_text().split()).split(_BLOCK_MARK):
        lines = [line.strip() for line in block.split(_LINE_MARK)]
        if any(lines):
            blocks.append("\n".join(line for line in lines if line))
    return title, "\n\n".join(blocks)


def _read_pdf(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    from pypdf import PdfReader

    with path.open("rb") as handle:
        try:
            reader = PdfReader(handle)
            if reader.is_encrypted and not reader.decrypt(""):
                yield SkippedFile(source, "encrypted PDF")
                return
            pages = [page.extract_text() or "" for page in reader.pages]
            metadata_title = reader.metadata.title if reader.metadata else None
        # pypdf raises many exception types on damaged files; one bad PDF must not stop the run.
        except Exception as exc:  # noqa: BLE001
            yield SkippedFile(source, f"unreadable PDF ({exc})")
            return
    text = "\n\n".join(page.strip() for page in pages if page.strip()).replace("\r\n", "\n")
    if not text:
        yield SkippedFile(source, "empty (no extractable text)")
        return
    title = str(metadata_title).strip() if metadata_title else ""
    yield _whole_file_document(source, doc_id, text, title or file_name_text(path.stem))


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


def _open_text_stream(path: Path) -> TextIO | None:
    """`path` (gzip-compressed if it ends in .gz) as a text stream in its own encoding, or None if binary.

    A stray undecodable byte further on becomes U+FFFD instead of ending the stream.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw:
        head = raw.read(_HEAD_BYTES)
    encoding = _detect_encoding(head, complete=len(head) < _HEAD_BYTES)
    if encoding is None:
        return None
    return opener(path, "rt", encoding=encoding, errors="replace", newline="")


def _read_jsonl(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    stream = _open_text_stream(path)
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


def _read_json(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    text = _decode(path.read_bytes())
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


def _read_csv(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    stream = _open_text_stream(path)
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


_READERS: dict[str, Callable[[Path, str, str], Iterator[Document | SkippedFile]]] = {
    ".txt": _read_plain,
    ".rst": _read_plain,
    ".md": _read_plain,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".jsonl.gz": _read_jsonl,
    ".csv": _read_csv,
}
_STREAMED_KINDS = frozenset((".jsonl", ".jsonl.gz", ".csv"))


def estimate_document_count(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> int:
    """Roughly how many documents `iter_documents` will yield, for a progress bar's ETA.

    One per readable file, one per line of record files: cheap (no parsing), and close for the common layouts.
    """
    total = 0
    for _, file in _files([Path(path) for path in paths], exclude):
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
