"""How bertsearch's documents and passages are laid out as Elasticsearch documents, and read back as hits.

- one per passage, `_id` = `<doc_id>#<position>`: title and text, their terms (BM25), source and metadata
  (filters), vector;
- one per document, `_id` = `<doc_id>#document`: the whole text, title, source, metadata and content hash,
  for `get_document` and `stored_documents`. It has no vector and no indexed text, so searches never see it,
  and a document with no passages is still remembered.

(A doc_id too long for an `_id` is replaced there by its SHA-256; the `doc_id` field always holds the real one.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator

import numpy as np

from bertsearch.stores.base import EncodedDocument
from bertsearch.types import PassageHit

# Elasticsearch refuses an `_id` over 512 bytes for the whole bulk request; longer ones are hashed.
MAX_ID_BYTES = 512
PASSAGE_FIELDS = ["doc_id", "position", "title", "text", "source"]
DOCUMENT_PART = "document"  # `_id` of a document record: `<doc_id>#document`


@dataclass(frozen=True)
class Action:
    """One bulk action and the document it belongs to, to name that document if the action fails."""

    doc_id: str
    body: dict[str, Any]


def passage_actions(item: EncodedDocument, terms: Iterator[tuple[str, str]]) -> list[Action]:
    """Index actions for the passages of `item`; `terms` yields each passage's (title terms, text terms)."""
    document = item.document
    vectors = np.asarray(item.vectors, dtype=np.float32)
    return [
        Action(document.doc_id, {
            "_op_type": "index",
            "_id": elasticsearch_id(document.doc_id, str(passage.position)),
            "_source": {
                "kind": "passage",
                "doc_id": document.doc_id,
                "position": passage.position,
                "title": passage.title,
                "text": passage.text,
                "title_terms": title_terms,
                "text_terms": text_terms,
                "source": document.source,
                "metadata": document.metadata,
                "vector": vectors[i].tolist(),
            },
        })
        # `terms` runs over every item's passages: each item takes its own from it
        for (i, passage), (title_terms, text_terms) in zip(enumerate(item.passages), terms, strict=False)
    ]


def document_action(item: EncodedDocument) -> Action:
    document = item.document
    return Action(document.doc_id, {
        "_op_type": "index",
        "_id": document_id(document.doc_id),
        "_source": {
            "kind": "document",
            "doc_id": document.doc_id,
            "source": document.source,
            "metadata": document.metadata,
            "content_hash": item.content_hash,
            "document_title": document.title,
            "document_text": document.text,
        },
    })


def delete_action(doc_id: str, elasticsearch_id: str) -> Action:
    return Action(doc_id, {"_op_type": "delete", "_id": elasticsearch_id})


def document_id(doc_id: str) -> str:
    return elasticsearch_id(doc_id, DOCUMENT_PART)


def elasticsearch_id(doc_id: str, part: str) -> str:
    """`<doc_id>#<part>`, stable across runs; a doc_id too long for an `_id` is replaced by its SHA-256 (the
    `doc_id` field keeps the real one)."""
    elasticsearch_id = f"{doc_id}#{part}"
    if len(elasticsearch_id.encode("utf-8")) <= MAX_ID_BYTES:
        return elasticsearch_id
    return f"sha256:{hashlib.sha256(doc_id.encode('utf-8')).hexdigest()}#{part}"


def hit_fields(texts: bool) -> list[str]:
    """The `_source` fields a search returns: ids alone when the texts are read later (`with_texts`)."""
    return PASSAGE_FIELDS if texts else ["doc_id", "position"]


def passage_hit(hit: dict[str, Any], score: float) -> PassageHit:
    source = hit["_source"]
    return PassageHit(
        doc_id=source["doc_id"],
        position=source["position"],
        score=float(score),
        text=source.get("text", ""),
        title=source.get("title", ""),
        source=source.get("source", ""),
    )
