"""Whole-file documents: plain text, Markdown (its first `# heading` as title), reStructuredText, HTML (title and
visible text, blocks kept apart) and PDF (extracted text, metadata title)."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from collections.abc import Iterator

from bertsearch.indexer.encodings import HEAD_BYTES, decode, detect_encoding, mostly_utf8
from bertsearch.indexer.filenames import file_name_text
from bertsearch.text import has_lone_surrogate
from bertsearch.types import Document, SkippedFile

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


def _whole_file_document(source: str, doc_id: str, text: str, title: str) -> Document | SkippedFile:
    if not text and not title:
        return SkippedFile(source, "empty")
    # Decoded text never holds a lone surrogate; a PDF's extracted text might.
    return Document(doc_id=doc_id, text=_valid_text(text), title=_valid_text(title), source=source)


def _valid_text(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8") if has_lone_surrogate(text) else text


def read_plain(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    text = decode(path.read_bytes())
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


def read_html(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
    data = path.read_bytes()
    if detect_encoding(data[:HEAD_BYTES], complete=len(data) <= HEAD_BYTES) is None:
        yield SkippedFile(source, "binary")
        return
    try:
        markup: bytes | str = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        markup = data  # BeautifulSoup honours a <meta charset> before guessing
        if _declares_utf8_or_nothing(data) and mostly_utf8(data):
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


def read_pdf(path: Path, source: str, doc_id: str) -> Iterator[Document | SkippedFile]:
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
