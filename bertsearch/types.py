"""Plain typed values that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class Hit:
    """A ranked document in a search result, represented by its best passage."""

    doc_id: str
    score: float
    title: str
    passage: str
    passage_position: int
    source: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "score": self.score,
            "title": self.title,
            "passage": self.passage,
            "passage_position": self.passage_position,
            "source": self.source,
            "scores": self.scores,
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file the reader could not turn into documents, and why."""

    path: str
    reason: str
