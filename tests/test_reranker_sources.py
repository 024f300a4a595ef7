from pathlib import Path

import pytest

from bertsearch.reranker_sources import DEFAULT_EPOCHS, TrainingSourceError, choose_source

FILE = Path("x")


def test_exactly_one_source_is_chosen() -> None:
    assert choose_source(FILE, None, None, False) == "pairs"
    assert choose_source(None, FILE, FILE, False) == "judgments"
    assert choose_source(None, None, None, True) == "self-supervised"
    assert choose_source(None, FILE, FILE, True) == "self-supervised"  # its judgments only validate
    assert DEFAULT_EPOCHS["self-supervised"] < DEFAULT_EPOCHS["judgments"]


@pytest.mark.parametrize(("arguments", "settings"), [
    ((None, None, None, False), ("pairs", "queries", "qrels", "self_supervised")),
    ((FILE, FILE, FILE, False), ("pairs", "queries", "qrels", "self_supervised")),
    ((FILE, None, None, True), ("pairs", "queries", "qrels", "self_supervised")),
    ((None, FILE, None, False), ("queries", "qrels")),
    ((None, None, FILE, True), ("queries", "qrels")),
])
def test_no_source_several_or_half_a_judgment_set_is_refused(arguments: tuple, settings: tuple[str, ...]) -> None:
    with pytest.raises(TrainingSourceError) as caught:
        choose_source(*arguments)
    assert caught.value.settings == settings
