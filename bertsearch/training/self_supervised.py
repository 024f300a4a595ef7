"""Training data from the corpus alone: pseudo-queries made from indexed documents, negatives mined from the index."""

from __future__ import annotations

import dataclasses
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bertsearch.models.base import TextEncoder
from bertsearch.rerank import DEFAULT_RERANK_DEPTH
from bertsearch.search import Searcher
from bertsearch.stores import create_store
from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import TrainingData, TrainingDataError, TrainingGroup, ValidationQuery
from bertsearch.training.mining import MINING_DEPTH, first_stage_candidates
from bertsearch.types import Document, passage_text

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from a document, and that document without the words the query was taken from."""

    query: str
    doc_id: str
    positive: Document

    @property
    def is_title(self) -> bool:
        return not self.positive.title


def pseudo_query(document: Document, rng: random.Random) -> PseudoQuery | None:
    """Inverse cloze: the title (half the time, when it has 3+ words) or one sentence of 5+ words becomes the
    query, and the document without it the positive, so the two share meaning but not the query's own words.
    None for documents too short to leave a meaningful rest (fewer than 3 sentences, and no usable title)."""
    sentences = [s for s in _SENTENCE.split(document.text.strip()) if len(s.split()) >= 5]
    use_title = len(document.title.split()) >= 3 and (len(sentences) < 3 or rng.random() < 0.5)
    if use_title and document.text.strip():
        return PseudoQuery(document.title, document.doc_id, dataclasses.replace(document, title=""))
    if len(sentences) < 3:
        return None
    chosen = rng.randrange(len(sentences))
    rest = " ".join(s for i, s in enumerate(sentences) if i != chosen)
    return PseudoQuery(sentences[chosen], document.doc_id, dataclasses.replace(document, text=rest))


def _reader_text(title: str, text: str, title_is_query: bool) -> str:
    """A passage as the reranker reads it; without titles in a group whose query is a title, so that a missing
    title never marks the positive."""
    return text if title_is_query else passage_text(title, text)


def pseudo_query_validation(searcher: Searcher, held: Sequence[PseudoQuery],
                            depth: int = DEFAULT_RERANK_DEPTH) -> list[ValidationQuery]:
    """Held-out pseudo-queries with a first stage that has not seen them.

    In the index, each source document still holds its query's sentence (or title), so retrieval finds it
    trivially and would beat any reranker. The first stage here is the same hybrid search run over a
    temporary index of the queries' candidate pools in which every source document is replaced by its
    positive (the document without the query's words). `searcher` must encode with torch (a `TextEncoder`): the
    temporary index is encoded with it.
    """
    from bertsearch.indexer.pipeline import Indexer  # applications may use the indexer; the core may not

    encoder = searcher.encoder
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"pseudo-query validation indexes passages: it needs a TextEncoder, not {type(encoder)}")
    pool: dict[str, Document] = {}
    for example in held:
        for hit in first_stage_candidates(searcher, example.query[:1000], MINING_DEPTH):
            if hit.doc_id not in pool and (document := searcher.store.get_document(hit.doc_id)) is not None:
                pool[hit.doc_id] = document
    pool.update({example.doc_id: example.positive for example in held})
    settings = dataclasses.replace(searcher.store.settings, backend="embedded", backend_options={})
    validation = []
    with tempfile.TemporaryDirectory(prefix="bertsearch-validation-") as folder:
        with create_store(Path(folder), settings) as store:
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
    examples: list[PseudoQuery] = []
    for doc_id in doc_ids:
        if len(examples) >= max_documents + want_held:
            break
        document = searcher.store.get_document(doc_id)
        if document is not None and (example := pseudo_query(document, rng)) is not None:
            examples.append(example)
    held, training = examples[:want_held], examples[want_held:]
    groups = []
    for example in training:
        hits = first_stage_candidates(searcher, example.query[:1000], MINING_DEPTH)
        negatives = tuple(_reader_text(h.title, h.passage, example.is_title) for h in hits if h.doc_id != example.doc_id)
        positive = _reader_text(example.positive.title, example.positive.text, example.is_title)
        groups.append(TrainingGroup(example.query, (positive,), negatives))
    if not groups:
        raise TrainingDataError("no document in the index is long enough to make a pseudo-query from")
    if validation is None:
        validation = pseudo_query_validation(searcher, held)
    return TrainingData(source=f"self-supervised:{searcher.store.settings.model_fingerprint}", groups=groups,
                        validation_queries=validation)
