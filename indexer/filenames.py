"""File names as document ids and sources: text every store and output can carry, without losing a byte.

A file name on Linux is bytes, and Python holds the bytes that are not UTF-8 as lone surrogates, which neither
SQLite, JSON nor a terminal accepts. In an id or a source, each such byte is written `\\xNN` (two lower-case hex
digits, as Python's `backslashreplace` writes it), and a backslash that would otherwise read as the start of an
escape (one before another backslash, before `x` and two hex digits, or before such a byte) is written `\\\\`.
Every other name, UTF-8 backslashes included, is kept as it is, and `file_name_of` gives back the exact name.
"""

from __future__ import annotations

import re

_NEEDS_ESCAPE = re.compile(r"\\(?=\\|x[0-9a-fA-F]{2}|[\udc80-\udcff])|[\udc80-\udcff]")
_ESCAPE = re.compile(r"\\\\|\\x([0-9a-fA-F]{2})")


def file_name_text(name: str) -> str:
    """`name` (a path as Python reads it from the system) as valid Unicode text, reversibly."""
    return _NEEDS_ESCAPE.sub(_escape, name)


def file_name_of(text: str) -> str:
    """The path `file_name_text` made `text` from, as Python names it to the system."""
    return _ESCAPE.sub(lambda match: "\\" if match.group(1) is None else chr(0xDC00 + int(match.group(1), 16)), text)


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    return "\\\\" if character == "\\" else f"\\x{ord(character) - 0xDC00:02x}"
