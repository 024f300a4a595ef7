"""Training data from the corpus alone: pseudo-queries made from indexed documents, negatives mined from the index.

A pseudo-query is shaped like what people type: a handful of a span's rarer words (the title, or one sentence),
not the span itself. The positive is the document without that span, so the first stage cannot find it by the
words the query was cut from, and the reranker must match it by meaning or by the few words it still shares.
Sentence-long queries lifted from the document were too easy: the loss fell to ~0.03 within 60 steps, and a
check taken on them predicted a gain that real queries did not show (docs/self-supervised.md).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bertsearch.models.base import TextEncoder
from bertsearch.rerank import DEFAULT_RERANK_DEPTH
from bertsearch.search import Searcher
from bertsearch.stores import create_store
from bertsearch.text import STOPWORDS
from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import (
    TrainingData,
    TrainingDataError,
    TrainingGroup,
    ValidationQuery,
)
from bertsearch.training.mining import MINING_DEPTH, first_stage_candidates
from bertsearch.training.validation import PSEUDO_QUERIES
from bertsearch.types import Document, passage_text

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_WORD = re.compile(r"[^\W_][\w\-]*[^\W_]", re.UNICODE)
# Words a query is made of: how many, and which are too common in English to be what someone searches with.
QUERY_WORDS = (2, 5)
_COMMON = STOPWORDS | frozenset({
    "about", "additionally", "after", "all", "also", "although", "among", "analysis", "any", "associated",
    "background", "based", "been", "before", "being", "between", "both", "compared", "conclusion", "conclusions",
    "could", "currently", "data", "decreased", "demonstrate", "demonstrated", "demonstrates", "design", "during",
    "each", "effect", "effects", "either", "even", "ever", "every", "finally", "findings", "found", "frequently",
    "furthermore", "here", "high", "how", "however", "identified", "importantly", "included", "including",
    "increased", "indicate", "indicated", "indicates", "initially", "interpretation", "level", "levels", "low",
    "may", "methods", "might", "more", "moreover", "most", "much", "must", "new", "not", "now", "objective",
    "objectives", "observed", "one", "only", "other", "over", "previously", "recently", "report", "reported",
    "reports", "respectively", "result", "results", "revealed", "role", "same", "setting", "should", "show",
    "showed", "shown", "shows", "significant", "since", "some", "studies", "study", "such", "suggest", "suggested",
    "suggests", "therefore", "three", "through", "thus", "together", "two", "under", "until", "upon", "use", "used",
    "using", "very", "well", "whereas", "whether", "while", "within", "without", "would", "yet",
})
# Training defaults of `--self-supervised`: a few hundred steps at most, stopped when the check stops improving.
SELF_SUPERVISED_MAX_STEPS = 60
SELF_SUPERVISED_EVAL_EVERY = 20
SELF_SUPERVISED_PATIENCE = 2
# Word rarity is counted over this many documents of the index (all of them, in a smaller one).
FREQUENCY_SAMPLE = 5000


def content_words(text: str) -> list[str]:
    """The distinct words of `text` a query could be made of, lower-cased, in order."""
    words = (w.lower() for w in _WORD.findall(text))
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w not in _COMMON and not w.isdigit()))


def document_frequencies(documents: Iterable[Document]) -> Counter[str]:
    """In how many of `documents` each content word occurs."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(set(content_words(f"{document.title} {document.text}")))
    return counts


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from a span of a document (its title or a sentence), and that document without the span."""

    query: str
    doc_id: str
    positive: Document
    span: str

    @property
    def is_title(self) -> bool:
        return not self.positive.title


def keyword_query(span: str, rest: str, rng: random.Random, frequencies: Mapping[str, int],
                  documents: int) -> str | None:
    """2 to 5 of the span's content words, drawn without replacement with weight to their rarity (inverse document
    frequency among `documents`), doubled for words the `rest` of the document also uses (what it is about, as
    a searcher would name it); kept in the span's order. None if the span has fewer than two content words."""
    words = content_words(span)
    if len(words) < QUERY_WORDS[0]:
        return None
    count = min(len(words), rng.randint(*QUERY_WORDS))
    topical = set(content_words(rest))
    weights = {w: (math.log((documents + 1) / (frequencies.get(w, 0) + 1)) + 0.1) * (2.0 if w in topical else 1.0)
               for w in words}
    chosen: set[str] = set()
    while len(chosen) < count:
        pool = [w for w in words if w not in chosen]
        chosen.add(rng.choices(pool, weights=[weights[w] for w in pool])[0])
    return " ".join(w for w in words if w in chosen)


def pseudo_query(document: Document, rng: random.Random, frequencies: Mapping[str, int] | None = None,
                 documents: int = 1) -> PseudoQuery | None:
    """A keyword query from a span of `document`, and the document without the span as its positive.

    The span is the title (a third of the time, when it has 3+ words, or always if the text has fewer than 3
    sentences) or one sentence of 5+ words. `frequencies` (over `documents` documents) steer the query to the
    span's rarer words. None for documents too short to leave a meaningful rest (fewer than 3 sentences, and
    no usable title) or whose span has fewer than two content words.
    """
    frequencies = frequencies or {}
    sentences = [s for s in _SENTENCE.split(document.text.strip()) if len(s.split()) >= 5]
    use_title = len(document.title.split()) >= 3 and (len(sentences) < 3 or rng.random() < 1 / 3)
    if use_title and document.text.strip():
        query = keyword_query(document.title, document.text, rng, frequencies, documents)
        if query is None:
            return None
        return PseudoQuery(query, document.doc_id, dataclasses.replace(document, title=""), document.title)
    if len(sentences) < 3:
        return None
    chosen = rng.randrange(len(sentences))
    rest = " ".join(s for i, s in enumerate(sentences) if i != chosen)
    query = keyword_query(sentences[chosen], f"{document.title} {rest}", rng, frequencies, documents)
    if query is None:
        return None
    return PseudoQuery(query, document.doc_id, dataclasses.replace(document, text=rest), sentences[chosen])


def _reader_text(title: str, text: str, title_is_query: bool) -> str:
    """A passage as the reranker reads it; without titles in a group whose query is a title, so that a missing
    title never marks the positive."""
    return text if title_is_query else passage_text(title, text)


def pseudo_query_validation(searcher: Searcher, held: Sequence[PseudoQuery],
                            depth: int = DEFAULT_RERANK_DEPTH) -> list[ValidationQuery]:
    """Held-out pseudo-queries with a first stage that has not seen them.

    In the index, each source document still holds its query's span (sentence or title), so retrieval finds it
    trivially and would beat any reranker. The first stage here is the same hybrid search run over a
    temporary index of the queries' candidate pools in which every source document is replaced by its
    positive (the document without the query's words). `searcher` must encode with torch (a `TextEncoder`): the
    temporary index is encoded with it.
    """
    from bertsearch.indexer.pipeline import (
        Indexer,  # applications may use the indexer; the core may not
    )

    encoder = searcher.encoder
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"pseudo-query validation indexes passages: it needs a TextEncoder, not {type(encoder)}")
    pool: dict[str, Document] = {}
    for example in held:
        for hit in first_stage_candidates(searcher, example.query[:1000], depth):
            if hit.doc_id not in pool and (document := searcher.store.get_document(hit.doc_id)) is not None:
                pool[hit.doc_id] = document
    pool.update({example.doc_id: example.positive for example in held})
    settings = dataclasses.replace(searcher.store.settings, backend="embedded", backend_options={})
    validation = []
    with tempfile.TemporaryDirectory(prefix="bertsearch-validation-") as folder, \
            create_store(Path(folder), settings) as store:
            Indexer(store, encoder, settings.chunking).index_documents(list(pool.values()))
            pool_searcher = Searcher(store, encoder)
            for example in held:
                hits = first_stage_candidates(pool_searcher, example.query[:1000], depth)
                candidates = tuple((h.doc_id, _reader_text(h.title, h.passage, example.is_title)) for h in hits)
                validation.append(ValidationQuery(example.query, candidates, {example.doc_id: 1}))
    return validation


def self_supervised_data(searcher: Searcher, config: TrainingConfig, max_documents: int = 2000,
                         validation: list[ValidationQuery] | None = None) -> TrainingData:
    """Pseudo-queries from up to `max_documents` indexed documents, with hard negatives from the index.

    Validation is on `validation` (judged queries) if given, else on held-out pseudo-queries checked
    against a first stage that has not seen them (`pseudo_query_validation`).
    """
    rng = random.Random(config.seed)
    doc_ids = sorted(searcher.store.stored_documents())
    if not doc_ids:
        raise TrainingDataError("the index holds no documents to train on")
    rng.shuffle(doc_ids)
    want_held = 0 if validation is not None else min(config.validation_queries, max_documents // 5)
    if config.max_steps:  # no more pseudo-queries than the steps will read: each costs a first-stage search
        max_documents = min(max_documents, config.max_steps * config.groups_per_step)
    sample = [d for d in map(searcher.store.get_document, doc_ids[:FREQUENCY_SAMPLE]) if d is not None]
    frequencies = document_frequencies(sample)
    examples: list[PseudoQuery] = []
    for doc_id in doc_ids:
        if len(examples) >= max_documents + want_held:
            break
        document = searcher.store.get_document(doc_id)
        if document is not None and (example := pseudo_query(document, rng, frequencies, len(sample))) is not None:
            examples.append(example)
    held, training = examples[:want_held], examples[want_held:]
    groups = []
    for example in training:
        hits = first_stage_candidates(searcher, example.query[:1000], MINING_DEPTH)
        negatives = tuple(_reader_text(h.title, h.passage, example.is_title) for h in hits
                          if h.doc_id != example.doc_id)
        positive = _reader_text(example.positive.title, example.positive.text, example.is_title)
        groups.append(TrainingGroup(example.query, (positive,), negatives))
    if not groups:
        raise TrainingDataError("no document in the index is long enough to make a pseudo-query from")
    evidence = "judged"
    if validation is None:
        validation, evidence = pseudo_query_validation(searcher, held), PSEUDO_QUERIES
    return TrainingData(source=f"self-supervised:{searcher.store.settings.model_fingerprint}", groups=groups,
                        validation_queries=validation, validation_evidence=evidence)
