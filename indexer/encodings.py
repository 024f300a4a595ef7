"""Bytes → text: the encoding of a file (BOMs, UTF-8 with a few bad bytes, Windows-1252 and other code pages
through charset-normalizer), or None when it looks binary; and record files opened as text streams."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path
from typing import TextIO

import charset_normalizer

# Enough of a file to recognise binary content and guess a streamed file's encoding.
HEAD_BYTES = 64 * 1024
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Without a BOM, NUL-free bytes are never UTF-16/32 text, though the detector sometimes says so.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


def detect_encoding(data: bytes, complete: bool = True) -> str | None:
    """The encoding of `data` (a whole file, or with `complete` false its first bytes), or None if it looks binary.

    UTF-8 (with or without BOM), UTF-8 but for a few bad bytes (`mostly_utf8`, decoded with replacement
    characters), and BOM-marked UTF-16/32 are taken as they are. Anything else goes to charset-normalizer,
    which on short text cannot tell one Latin code page from another; Windows-1252 is the common case among
    those, so it wins whenever the detector finds it plausible.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    if b"\x00" in data:
        return None
    if mostly_utf8(data, complete):
        return "utf-8"
    matches = charset_normalizer.from_bytes(data, cp_exclusion=_WIDE_ENCODINGS)
    if not matches:
        return None
    if any("cp1252" in match.could_be_from_charset for match in matches):
        return "cp1252"
    best = matches.best()
    return best.encoding if best is not None else None


def mostly_utf8(data: bytes, complete: bool = True) -> bool:
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


def decode(data: bytes) -> str | None:
    """`data` as text with newlines normalised, or None if it looks binary."""
    encoding = detect_encoding(data)
    if encoding is None:
        return None
    return data.decode(encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def open_text_stream(path: Path) -> TextIO | None:
    """`path` (gzip-compressed if it ends in .gz) as a text stream in its own encoding, or None if binary.

    A stray undecodable byte further on becomes U+FFFD instead of ending the stream.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw:
        head = raw.read(HEAD_BYTES)
    encoding = detect_encoding(head, complete=len(head) < HEAD_BYTES)
    if encoding is None:
        return None
    return opener(path, "rt", encoding=encoding, errors="replace", newline="")
