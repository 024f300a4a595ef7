"""Plain typed values that cross module boundaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

# The retrievers a search can use: kNN over the passages' vectors, BM25 over their words, or both fused.
Mode = Literal["dense", "bm25", "hybrid"]


def passage_text(title: str, text: str) -> str:
    """What both encoders read for a passage, the bi-encoder and the cross-encoder: the title goes with every
    passage of its document."""
    return f"{title}. {text}" if title else text


@dataclass(frozen=True)
class Document:
    """A unit the user indexes: one file, or one record of a JSONL/CSV/JSON file.

    `source` is the absolute path of the file it came from; `doc_id` is the record id or the path
    relative to the indexed folder.
    """

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A piece of a document small enough for the encoder; `position` counts from 0 within the document."""

    doc_id: str
    position: int
    text: str
    title: str = ""

    @property
    def passage_id(self) -> str:
        """Stable id, so rewriting the same passage never duplicates it."""
        return f"{self.doc_id}#{self.position}"

    def encoder_input(self) -> str:
        """What the bi-encoder reads (see `passage_text`)."""
        return passage_text(self.title, self.text)


@dataclass(frozen=True)
class PassageHit:
    """A passage returned by one retriever, with that retriever's score."""

    doc_id: str
    position: int
    score: float
    text: str = ""
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class HitScores:
    """What each stage scored a hit; None where the stage did not run."""

    dense: float | None = None  # inner product of the query's and the passage's vectors
    bm25: float | None = None  # BM25 of the passage for the query's words
    fused: float | None = None  # reciprocal rank fusion of the dense and BM25 rankings (hybrid)
    first_stage: float | None = None  # what the first stage ranked the hit by (set when it was reranked)
    rerank: float | None = None  # the cross-encoder's score
    blend: float | None = None  # what reranked hits are ordered by (bertsearch.rerank.blend)

    def to_dict(self) -> dict[str, float]:
        """The scores that were computed, by name (as `--json` and the HTTP API show them)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> HitScores:
        known = {f.name for f in fields(cls)}
        return cls(**{name: float(value) for name, value in data.items() if name in known})

    def reranked(self, first_stage: float, rerank: float, blend: float) -> HitScores:
        return replace(self, first_stage=first_stage, rerank=rerank, blend=blend)


@dataclass
class Hit:
    """A ranked document in a search result, represented by its best passage."""

    doc_id: str
    score: float
    title: str
    passage: str
    passage_position: int
    source: str = ""
    scores: HitScores = field(default_factory=HitScores)

    @property
    def first_stage_score(self) -> float:
        """What the first stage ranked this hit by, whether or not it was reranked since."""
        return self.scores.first_stage if self.scores.first_stage is not None else self.score

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "score": self.score,
            "title": self.title,
            "passage": self.passage,
            "passage_position": self.passage_position,
            "source": self.source,
            "scores": self.scores.to_dict(),
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file the reader could not turn into documents, and why."""

    path: str
    reason: str
