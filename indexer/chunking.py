"""Documents → passages the encoder reads whole.

Why it works this way:
- Token-aware: the model silently truncates its input, so a passage that is too long loses its end from the
  index. Budgets are counted in the model's own word pieces, the title (sent with every passage) and the
  [CLS]/[SEP] tokens included, so every passage fits.
- Sentence-aware: a passage made of whole sentences embeds as a coherent statement and reads well as a
  search result. Sentences are packed greedily; a sentence longer than a whole passage is cut between words.
- Overlap: repeating the last sentence(s) of a passage at the start of the next keeps a statement that spans
  the cut findable from either side. The overlap never covers a whole passage, so chunking always advances.
- One tokenization per document: each sentence's token count is read off the document's offset mapping, and
  passages are character spans of the original text. With a BERT WordPiece tokenizer, text cut at a word
  boundary tokenizes to exactly the pieces of the whole, so counting pieces is exact; a single word longer
  than a passage (rare: BERT turns words over 100 characters into one [UNK]) is re-tokenized to stay exact.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

from bertsearch.types import Document, Passage

# A sentence ends at . ! or ? (perhaps followed by closing quotes or brackets) and whitespace.
_SENTENCE_END = re.compile(r"([.!?])[\"'”’)\]]*\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_OPENERS = "\"'“‘(["
# Longer than any abbreviation below with its opening brackets or quotes.
_WORD_WINDOW = 16
# Texts longer than this are tokenized a segment of whole sentences at a time (see `_atoms`).
SEGMENT_CHARS = 100_000
# Words whose final period rarely ends a sentence (compared lower-case, without that period).
_ABBREVIATIONS = frozenset(
    "e.g eg i.e ie al fig figs eq eqs ref refs vs cf approx ca resp no nos vol pp ch sec suppl "
    "dr mr mrs ms prof st jr sr inc ltd co".split()
)


def chunk_document(document: Document, tokenizer: Any, max_tokens: int, overlap_tokens: int) -> list[Passage]:
    """Split `document` into passages whose `encoder_input()` is at most `max_tokens` word pieces.

    Args:
        document: the document; its title goes with every passage, cut to half the budget if longer.
        tokenizer: the model's fast (Rust) Hugging Face tokenizer; offsets and word ids are needed.
        max_tokens: the most word pieces per passage, title and special tokens included.
        overlap_tokens: at most this many tokens of whole sentences are repeated from the previous passage.

    Returns:
        Passages numbered from 0; one passage holding the whole stripped text if it fits, none if the
        document has neither text nor title.
    """
    content_budget = max_tokens - tokenizer.num_special_tokens_to_add()
    if content_budget < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text")
    title, title_cost = _fit_title(document.title.strip(), tokenizer, content_budget // 2)
    budget = content_budget - title_cost
    text = document.text.strip()
    if not text:
        return [Passage(document.doc_id, 0, "", title)] if title else []
    encoding = None
    if len(text) <= SEGMENT_CHARS:
        encoding = _tokenize(tokenizer, text)
        if len(encoding["input_ids"]) <= budget:
            return [Passage(document.doc_id, 0, text, title)]
    spans, counts, sentence_starts = _atoms(text, tokenizer, budget, encoding)
    if sum(counts) <= budget:  # a long text of few pieces: BERT reads a word of over 100 characters as one
        return [Passage(document.doc_id, 0, text, title)]
    return [
        Passage(document.doc_id, position, text[spans[first][0] : spans[last - 1][1]], title)
        for position, (first, last) in enumerate(_pack(counts, sentence_starts, budget, overlap_tokens))
    ]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences and paragraphs of `text`, without the whitespace between them.

    A sentence ends at . ! or ? followed by whitespace and a capital, a digit or an opening quote, unless
    the period belongs to a common abbreviation or an initial ("e.g.", "Fig.", "et al.", "J. Smith").
    A blank line always ends one.
    """
    breaks = {match.end() for match in _PARAGRAPH_BREAK.finditer(text)}
    for match in _SENTENCE_END.finditer(text):
        if _starts_sentence(text, match.end()) and not (
            match.group(1) == "." and _is_abbreviation(text, match.start(1))
        ):
            breaks.add(match.end())
    spans = []
    start = 0
    for end in [*sorted(breaks), len(text)]:
        piece = text[start:end]
        first, last = start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())
        if last > first:
            spans.append((first, last))
        start = end
    return spans


def _starts_sentence(text: str, index: int) -> bool:
    while index < len(text) and text[index] in _OPENERS:
        index += 1
    return index < len(text) and (text[index].isupper() or text[index].isdigit())


def _is_abbreviation(text: str, period: int) -> bool:
    # Only the characters just before the period are searched for the word's start: searching back to the
    # text's last line break made chunking quadratic on long lines (22 s of a 20 MB single-line file's 34).
    window = max(0, period - _WORD_WINDOW)
    word_start = max(text.rfind(" ", window, period), text.rfind("\n", window, period)) + 1
    if word_start == 0 and window > 0:
        return False  # a word this long is no abbreviation
    word = text[word_start:period].lstrip(_OPENERS).lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _fit_title(title: str, tokenizer: Any, max_cost: int) -> tuple[str, int]:
    """The title to send with each passage and its cost in tokens (its pieces plus the "." joining it to the text).

    A title costing more than `max_cost` is cut, at a word boundary if one fits.
    """
    if not title:
        return "", 0
    encoding = _tokenize(tokenizer, title)
    pieces = len(encoding["input_ids"])
    if pieces + 1 <= max_cost:
        return title, pieces + 1
    limit = max_cost - 1
    if limit < 1:
        return "", 0
    word_ids = encoding.word_ids()
    cut = next((k for k in range(limit, 0, -1) if word_ids[k] != word_ids[k - 1]), limit)
    return title[: encoding["offset_mapping"][cut - 1][1]], cut + 1


def _atoms(
    text: str, tokenizer: Any, budget: int, encoding: Any = None
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The units passages are made of: whole sentences, or the words of a sentence longer than `budget`.

    `encoding` is the whole text's tokenization, if made already; otherwise the text is tokenized one segment of
    whole sentences at a time (`_segments`). No word piece crosses the whitespace between two sentences, so the
    counts are the same either way, and a 20 MB text needs memory for one segment's pieces instead of all of
    them (3.5 GB of peak RSS, measured).

    Returns each unit's character span and token count, and the indices of units that begin a sentence.
    """
    spans: list[tuple[int, int]] = []
    counts: list[int] = []
    sentence_starts: list[int] = []
    sentences = split_sentences(text)
    for group in [sentences] if encoding is not None else _segments(sentences):
        shift = 0 if encoding is not None else group[0][0]
        segment = encoding if encoding is not None else _tokenize(tokenizer, text[shift : group[-1][1]])
        offsets = segment["offset_mapping"]
        if shift:
            offsets = [(start + shift, end + shift) for start, end in offsets]
        token_starts = [start for start, _ in offsets]
        word_ids: list[int] | None = None
        first_token = 0
        for sentence_start, sentence_end in group:
            first_token = bisect_left(token_starts, sentence_start, first_token)
            end_token = bisect_left(token_starts, sentence_end, first_token)
            if end_token == first_token:  # nothing the model reads, e.g. only zero-width characters
                continue
            sentence_starts.append(len(spans))
            if end_token - first_token <= budget:
                spans.append((sentence_start, sentence_end))
                counts.append(end_token - first_token)
            else:
                if word_ids is None:
                    word_ids = segment.word_ids()
                for word_start, word_end, pieces in _words(offsets, word_ids, first_token, end_token):
                    for piece in _split_word(text, word_start, word_end, pieces, tokenizer, budget):
                        spans.append(piece[:2])
                        counts.append(piece[2])
            first_token = end_token
    return spans, counts, sentence_starts


def _segments(sentences: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """Consecutive sentences in groups spanning at most SEGMENT_CHARS characters (a longer sentence alone)."""
    group: list[tuple[int, int]] = []
    for span in sentences:
        if group and span[1] - group[0][0] > SEGMENT_CHARS:
            yield group
            group = []
        group.append(span)
    if group:
        yield group


def _tokenize(tokenizer: Any, text: str) -> Any:
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)


def _words(offsets: list[tuple[int, int]], word_ids: list[int], first: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, token count) of each word among tokens first..end-1."""
    word_first = first
    for token in range(first + 1, end + 1):
        if token == end or word_ids[token] != word_ids[token - 1]:
            yield offsets[word_first][0], offsets[token - 1][1], token - word_first
            word_first = token


def _split_word(
    text: str, start: int, end: int, pieces: int, tokenizer: Any, budget: int
) -> Iterator[tuple[int, int, int]]:
    """A word as (start, end, token count) parts of at most `budget` tokens.

    Each part is the first `budget` tokens of the rest of the word tokenized on its own: a word's prefix
    tokenizes to the same pieces, so the count stays exact where a cut mid-word would otherwise shift it.
    """
    while pieces > budget:
        encoding = _tokenize(tokenizer, text[start:end])
        pieces = len(encoding["input_ids"])
        if pieces <= budget:
            break
        cut = start + encoding["offset_mapping"][budget - 1][1]
        yield start, cut, budget
        start = cut
    yield start, end, pieces


def _pack(counts: list[int], sentence_starts: list[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Group consecutive units into passages of at most `budget` tokens, as [first, last) unit ranges.

    A passage ends at the last sentence start that fits, or mid-sentence only if its first sentence alone
    does not fit. The next passage starts up to `overlap` tokens earlier, on a sentence start when the cut
    was at one, but never so early that it would add nothing new.
    """
    total = [0]
    for count in counts:
        total.append(total[-1] + count)
    units = len(counts)
    boundaries = [*sentence_starts, units]

    def end_from(start: int) -> int:
        fits = bisect_right(total, total[start] + budget) - 1
        if fits >= units:
            return units
        sentence = boundaries[bisect_right(boundaries, fits) - 1]
        return sentence if sentence > start else fits

    ranges = []
    start = 0
    while True:
        end = end_from(start)
        ranges.append((start, end))
        if end == units:
            return ranges
        next_start = max(bisect_left(total, total[end] - overlap), start + 1)
        if boundaries[bisect_left(boundaries, end)] == end:
            next_start = boundaries[bisect_left(boundaries, next_start)]
        start = next_start if next_start < end and end_from(next_start) > end else end
