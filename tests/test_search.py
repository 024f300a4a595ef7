"""The query pipeline over a real embedded index built by the real indexer."""

from pathlib import Path

import pytest

from bertsearch.errors import InvalidQueryError
from bertsearch.fusion import reciprocal_rank_fusion
from bertsearch.search import Searcher, best_passage_per_document, open_searcher, validate_query
from bertsearch.stores import SearchFilter, StoreLocation
from bertsearch.types import PassageHit
from bertsearch.indexer.pipeline import Indexer, open_index_for_writing

DOCUMENTS = {
    "space/mars.txt": "Mars is the fourth planet from the Sun. Its red colour comes from iron oxide dust.",
    "space/moon.txt": "The Moon orbits the Earth every 27 days and causes the ocean tides.",
    "food/bread.txt": "Bread dough rises because yeast ferments sugars and releases carbon dioxide gas.",
    "food/coffee.txt": "Coffee contains caffeine, a stimulant that blocks adenosine receptors.",
}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    root = tmp_path_factory.mktemp("search")
    for name, text in DOCUMENTS.items():
        (root / "corpus" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "corpus" / name).write_text(text)
    store, encoder, chunking = open_index_for_writing(StoreLocation(index_dir=root / "idx"))
    with store:
        Indexer(store, encoder, chunking).index([root / "corpus"])
    opened = open_searcher(root / "idx")
    yield opened
    opened.store.close()


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_right_document(searcher: Searcher, mode: str) -> None:
    result = searcher.search("why does dough rise with yeast", k=2, mode=mode)
    assert result.hits[0].doc_id == "food/bread.txt"
    assert result.hits[0].passage.startswith("Bread dough rises")
    assert result.timings_ms["total"] > 0


def test_dense_search_understands_paraphrase_without_shared_words(searcher: Searcher) -> None:
    hits = searcher.search("the red world", k=1, mode="dense").hits
    assert hits[0].doc_id == "space/mars.txt"


def test_hybrid_hits_carry_both_scores_and_fuse_by_rank(searcher: Searcher) -> None:
    hits = searcher.search("caffeine stimulant", k=4, mode="hybrid").hits
    assert hits[0].doc_id == "food/coffee.txt"
    scores = hits[0].scores
    assert None not in (scores.fused, scores.dense, scores.bm25) and scores.rerank is None
    assert hits[0].score == scores.fused
    assert len({h.doc_id for h in hits}) == len(hits)


def test_hybrid_fuses_the_same_rankings_its_parts_return_though_bm25_runs_beside_the_encoder(
    searcher: Searcher,
) -> None:
    query = "gas from yeast and dust on planets"
    dense = [h.doc_id for h in searcher.search(query, k=4, mode="dense").hits]
    bm25 = [h.doc_id for h in searcher.search(query, k=4, mode="bm25").hits]
    hybrid = searcher.search(query, k=4, mode="hybrid")
    expected = [doc for doc, _ in reciprocal_rank_fusion([dense, bm25])]
    assert [h.doc_id for h in hybrid.hits] == expected
    stages = hybrid.timings_ms
    assert {"encode", "dense", "bm25", "fuse"} <= set(stages)
    # Wall time: at least the longer branch, and never more than everything run one after another.
    assert max(stages["encode"] + stages["dense"], stages["bm25"]) <= stages["total"]
    assert stages["total"] <= sum(v for k, v in stages.items() if k != "total") + 50


def test_a_search_started_then_finished_with_its_vector_equals_the_whole_search(searcher: Searcher) -> None:
    """The server's path: `start`, the vector encoded elsewhere, `finish`."""
    query = "gas from yeast and dust on planets"
    for mode in ("dense", "bm25", "hybrid"):
        pending = searcher.start(query, k=3, mode=mode)
        assert pending.needs_vector == (mode != "bm25") and (pending.keyword is not None) == (mode == "hybrid")
        vector = searcher.encoder.encode_query(pending.text) if pending.needs_vector else None
        finished = searcher.finish(pending, vector)
        whole = searcher.search(query, k=3, mode=mode)
        assert [(h.doc_id, h.scores) for h in finished.hits] == [(h.doc_id, h.scores) for h in whole.hits], mode
    with pytest.raises(InvalidQueryError, match="empty"):
        searcher.start("  ", k=3, mode="dense")
    with pytest.raises(ValueError, match="needs the query's vector"):
        searcher.finish(searcher.start(query, k=3, mode="dense"), None)


def test_filters_apply_to_every_mode(searcher: Searcher) -> None:
    only_food = SearchFilter(source_prefix=str(Path(searcher.store.get_document("food/bread.txt").source).parent))
    for mode in ("dense", "bm25", "hybrid"):
        hits = searcher.search("planet orbit tides gas", k=4, mode=mode, filter=only_food).hits
        assert hits and all(h.doc_id.startswith("food/") for h in hits), mode


def test_best_passage_per_document_keeps_the_first() -> None:
    hits = [PassageHit("a", 1, 0.9), PassageHit("b", 0, 0.8), PassageHit("a", 0, 0.7)]
    assert [(h.doc_id, h.position) for h in best_passage_per_document(hits)] == [("a", 1), ("b", 0)]


def test_invalid_queries_are_refused() -> None:
    assert validate_query("  fine  ", 10, "dense") == "fine"
    for args, message in (((" ", 10, "dense"), "empty"), (("q", 0, "dense"), "k must be"),
                          (("q", 10, "fuzzy"), "unknown mode"), (("q" * 20_000, 10, "bm25"), "limit")):
        with pytest.raises(InvalidQueryError, match=message):
            validate_query(*args)
