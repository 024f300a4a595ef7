"""Query words, snippets and highlight spans: the small text handling shared by stores and displays."""

from __future__ import annotations

import bisect
import functools
import re
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

# How the embedded store's FTS5 index tokenizes: Unicode words, diacritics removed, lower-cased, Porter-stemmed.
# The Elasticsearch store indexes and queries the terms it makes too, so BM25 sees the same terms on both.
FTS5_TOKENIZER = "porter unicode61 remove_diacritics 2"

# Words too common to help rank or highlight; dropping them also keeps FTS5 OR-queries fast on large indexes.
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from had has have he her his i if in into is it its "
    "of on or our she so than that the their them then there these they this to was we were what when "
    "where which who will with you your".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
# Stripping a few English suffixes lets "proteins" highlight "protein" and "fold" highlight "folding".
_SUFFIXES = ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "s", "ly")


def has_lone_surrogate(text: str) -> bool:
    """True if `text` holds a lone UTF-16 surrogate (from a JSON escape such as "\\ud800"): a Python string
    can, but UTF-8, SQLite, Elasticsearch and the tokenizer cannot carry one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def query_terms(query: str) -> list[str]:
    """The query's distinct words, lower-cased, stopwords dropped unless nothing else is left."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))
    content = [word for word in words if word not in STOPWORDS]
    return content or words


@functools.lru_cache(maxsize=1 << 16)  # a server highlights the same few thousand words over and over
def light_stem(word: str) -> str:
    """`word` lower-cased without one common suffix, keeping at least three letters."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Character spans of the words in `text` that match a query term up to a common suffix.

    A word's stem is a prefix of the word, so each stem's occurrences (found by `str.find`, in C) at the start
    of a word are the only candidates: 10x faster than one regex alternation of the stems, and a server
    highlights every hit it returns while holding the GIL."""
    stems = frozenset(light_stem(term) for term in terms if term not in STOPWORDS)
    if not stems:
        return []
    lowered = text.lower()
    if len(lowered) != len(text):  # a character lower-cases to two (e.g. "İ"), so offsets differ: word by word
        return [match.span() for match in _WORD.finditer(text) if light_stem(match.group()) in stems]
    spans = set()
    for stem in stems:
        start = lowered.find(stem)
        while start >= 0:
            word = _WORD.match(text, start) if start == 0 or not _WORD.match(text, start - 1) else None
            if word is not None and light_stem(word.group()) in stems:
                spans.add(word.span())
            start = lowered.find(stem, start + 1)
    return sorted(spans)


class Snippet(NamedTuple):
    """An excerpt of a passage and the character spans, in the excerpt, of the words to highlight."""

    text: str
    highlights: list[tuple[int, int]]


def snippet(text: str, terms: list[str], width: int = 320) -> Snippet:
    """The `width`-character window of `text` with the most query-term matches, cut at word boundaries,
    with its matches (found once, in the whole text, and shifted into the window)."""
    text = " ".join(text.split())
    spans = highlight_spans(text, terms)
    if len(text) <= width:
        return Snippet(text, spans)
    # Spans are disjoint and in order, so their starts and their ends are both sorted.
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    best_start, best_count = 0, -1
    for start, _ in spans or [(0, 0)]:
        window_start = max(0, start - width // 4)
        count = bisect.bisect_right(ends, window_start + width) - bisect.bisect_left(starts, window_start)
        if count > best_count:
            best_start, best_count = window_start, count
    end = min(len(text), best_start + width)
    if end == len(text):
        best_start = max(0, end - width)
    if best_start > 0:
        best_start = text.find(" ", best_start) + 1 or best_start
    cut = text.rfind(" ", best_start, end) if end < len(text) else end
    body_end = cut if cut > best_start else end
    prefix = "…" if best_start > 0 else ""
    shift = len(prefix) - best_start
    highlights = [(s + shift, e + shift) for s, e in spans if s >= best_start and e <= body_end]
    return Snippet(prefix + text[best_start:body_end] + ("…" if end < len(text) else ""), highlights)


def porter_terms(texts: Sequence[str]) -> list[str]:
    """Each text as the space-separated terms FTS5_TOKENIZER makes of it, in order, by SQLite itself.

    For a store whose own analyzers differ (Elasticsearch's, or none on a minimal node) to match the embedded
    store's terms exactly.
    """
    if not texts:
        return []
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE texts USING fts5(body, tokenize='{FTS5_TOKENIZER}')")
        db.execute("CREATE VIRTUAL TABLE terms USING fts5vocab(texts, 'instance')")
        db.executemany("INSERT INTO texts (rowid, body) VALUES (?, ?)", enumerate(texts))
        words: list[list[str]] = [[] for _ in texts]
        for row, term in db.execute("SELECT doc, term FROM terms ORDER BY doc, offset"):
            words[row].append(term)
        return [" ".join(terms) for terms in words]
    finally:
        db.close()
