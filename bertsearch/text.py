"""Query words, snippets and highlight spans: the small text handling shared by stores and displays."""

from __future__ import annotations

import re

# Words too common to help rank or highlight; dropping them also keeps FTS5 OR-queries fast on large indexes.
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from had has have he her his i if in into is it its "
    "of on or our she so than that the their them then there these they this to was we were what when "
    "where which who will with you your".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
# Matching on a short prefix lets "proteins" highlight "protein" without a stemmer.
_PREFIX = 5


def query_terms(query: str) -> list[str]:
    """The query's distinct words, lower-cased, stopwords dropped unless nothing else is left."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))
    content = [word for word in words if word not in STOPWORDS]
    return content or words


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Character spans of the words in `text` that match a query term (by a shared prefix)."""
    exact = {term for term in terms if len(term) < _PREFIX and term not in STOPWORDS}
    prefixes = tuple({term[:_PREFIX] for term in terms if len(term) >= _PREFIX})
    spans = []
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if word in exact or (prefixes and word.startswith(prefixes)):
            spans.append(match.span())
    return spans


def snippet(text: str, terms: list[str], width: int = 320) -> str:
    """The `width`-character window of `text` with the most query-term matches, cut at word boundaries."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    spans = highlight_spans(text, terms)
    best_start, best_count = 0, -1
    for start, _ in spans or [(0, 0)]:
        window_start = max(0, start - width // 4)
        count = sum(1 for s, e in spans if s >= window_start and e <= window_start + width)
        if count > best_count:
            best_start, best_count = window_start, count
    end = min(len(text), best_start + width)
    if end == len(text):
        best_start = max(0, end - width)
    if best_start > 0:
        best_start = text.find(" ", best_start) + 1 or best_start
    cut = text.rfind(" ", best_start, end) if end < len(text) else end
    body = text[best_start : cut if cut > best_start else end]
    return ("…" if best_start > 0 else "") + body + ("…" if end < len(text) else "")
