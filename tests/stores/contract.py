"""Checks of the `Store` interface that every store must pass, called from each store's own tests."""

from __future__ import annotations

import numpy as np

from bertsearch.stores.base import Store


def check_ids_only_searches_and_with_texts(store: Store, vector: np.ndarray, keyword: str, deleted: str) -> None:
    """On a store holding at least three passages that match `keyword`: searches without texts give the same
    hits as with them, `with_texts` reads them in the caller's order, and leaves out document `deleted` once it
    is deleted."""
    for search in (lambda texts: store.dense_search(vector, 3, texts=texts),
                   lambda texts: store.keyword_search(keyword, 3, texts=texts)):
        full, light = search(True), search(False)
        assert len(full) == 3
        assert [(h.doc_id, h.position, h.score) for h in light] == [(h.doc_id, h.position, h.score) for h in full]
        assert all(h.text == h.title == h.source == "" for h in light)
        assert all(h.text and h.title and h.source for h in full)
        assert store.with_texts(light) == full
        assert store.with_texts(light[::-1]) == full[::-1]  # the caller's order, not the store's
    light = store.dense_search(vector, 3, texts=False)
    assert deleted in {h.doc_id for h in light}
    store.delete([deleted])
    assert [h.doc_id for h in store.with_texts(light)] == [h.doc_id for h in light if h.doc_id != deleted]
    assert store.with_texts([]) == []


def check_stash(store: Store, vectors: np.ndarray) -> None:
    """Vectors stashed under their keys come back exactly, never count as passages, and are gone once cleared,
    by key or all at once."""
    passages = store.stats().passages
    store.stash_vectors(["first", "second"], vectors[:2])
    found = store.stashed_vectors(["first", "second", "never stashed"])
    assert set(found) == {"first", "second"}
    assert np.array_equal(found["first"], vectors[0]) and np.array_equal(found["second"], vectors[1])
    assert store.stats().passages == passages
    store.clear_stash(["first"])
    assert set(store.stashed_vectors(["first", "second"])) == {"second"}
    store.clear_stash()
    assert store.stashed_vectors(["first", "second"]) == {}
