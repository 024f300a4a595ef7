import json
from pathlib import Path

import pytest

from bertsearch.errors import BertsearchError, IndexMismatchError
from bertsearch.settings import ChunkingSettings
from bertsearch.stores import StoreLocation
from bertsearch.types import Document
from bertsearch.indexer.pipeline import Indexer, content_hash, is_under, open_index_for_writing


def test_content_hash_covers_title_text_and_metadata() -> None:
    base = Document("a", "text", "title", "/x", {"k": 1})
    assert content_hash(base) == content_hash(Document("a", "text", "title", "/moved", {"k": 1}))
    for changed in (Document("a", "text!", "title", "/x", {"k": 1}), Document("a", "text", "other", "/x", {"k": 1}),
                    Document("a", "text", "title", "/x", {"k": 2})):
        assert content_hash(changed) != content_hash(base)


def test_is_under() -> None:
    roots = [Path("/corpus/a"), Path("/single.jsonl")]
    assert is_under("/corpus/a/b/c.txt", roots) and is_under("/single.jsonl", roots)
    assert not is_under("/corpus/ab/c.txt", roots) and not is_under("/other.jsonl", roots)


def test_duplicate_ids_are_skipped_and_batches_split(tmp_path: Path) -> None:
    records = [{"_id": "1", "text": "first"}, {"_id": "2", "text": "second"}, {"_id": "1", "text": "again"}]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    store, encoder, chunking = open_index_for_writing(StoreLocation(index_dir=tmp_path / "idx"))
    with store:
        summary = Indexer(store, encoder, chunking, batch_passages=1).index([corpus])
        assert (summary.documents_added, summary.documents_skipped) == (2, 1)
        assert "duplicate id '1'" in summary.skipped[0]["reason"]
        assert store.get_document("1").text == "first"


def test_settings_are_validated_for_new_indexes_and_enforced_for_old(tmp_path: Path) -> None:
    location = StoreLocation(index_dir=tmp_path / "idx")
    with pytest.raises(BertsearchError, match="exceeds the model's maximum"):
        open_index_for_writing(location, chunking=ChunkingSettings(max_tokens=1024, overlap_tokens=0))
    with pytest.raises(BertsearchError, match="overlap_tokens"):
        open_index_for_writing(location, chunking=ChunkingSettings(max_tokens=128, overlap_tokens=64))
    store, _, chunking = open_index_for_writing(location, chunking=ChunkingSettings(max_tokens=128, overlap_tokens=16))
    store.close()
    assert chunking == ChunkingSettings(128, 16)
    store, _, chunking = open_index_for_writing(location)  # no settings given: the recorded ones
    store.close()
    assert chunking == ChunkingSettings(128, 16)
    with pytest.raises(IndexMismatchError, match="chunking"):
        open_index_for_writing(location, chunking=ChunkingSettings(max_tokens=256, overlap_tokens=16))


def test_index_documents_adds_replaces_and_skips_unchanged_like_files(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"_id": "file", "title": "Tides", "text": "The moon pulls the oceans."}) + "\n")
    store, encoder, chunking = open_index_for_writing(StoreLocation(index_dir=tmp_path / "idx"))
    with store:
        indexer = Indexer(store, encoder, chunking)
        indexer.index([corpus])
        first = indexer.index_documents([Document("api", "Plants make oxygen by photosynthesis.", "Leaves"),
                                         Document("file", "The moon pulls the oceans.", "Tides")])
        assert (first.documents_added, first.documents_unchanged, first.passages_encoded) == (1, 1, 1)
        second = indexer.index_documents([Document("api", "Algae make oxygen too.", "Leaves"),
                                          Document("api", "ignored duplicate", "Leaves")])
        assert (second.documents_updated, second.documents_skipped) == (1, 1)
        assert store.get_document("api").text == "Algae make oxygen too."
        assert store.stats().passages == 2
        # The files path sees the API's document as stored: re-indexing the file changes nothing.
        assert indexer.index([corpus]).documents_unchanged == 1
