import random
import re

from bertsearch.text import STOPWORDS, highlight_spans, light_stem, query_terms, snippet


def test_query_terms_drop_stopwords_and_duplicates() -> None:
    assert query_terms("What is the role of Proteins in the cell? proteins!") == ["role", "proteins", "cell"]
    assert query_terms("the of") == ["the", "of"]
    assert query_terms("?!") == []


def test_highlight_matches_word_variants_by_prefix() -> None:
    text = "Protein folding: a protein folds. Proteomics differs."
    spans = [text[s:e] for s, e in highlight_spans(text, ["proteins", "fold"])]
    assert spans == ["Protein", "folding", "protein", "folds"]


def test_highlight_finds_what_a_word_by_word_scan_finds() -> None:
    """Against the plainest statement of the rule: every word whose light stem is a term's, case aside."""

    def every_word(text: str, terms: list[str]) -> list[tuple[int, int]]:
        stems = {light_stem(term) for term in terms if term not in STOPWORDS}
        return [m.span() for m in re.finditer(r"\w+", text) if light_stem(m.group()) in stems]

    words = ["Protein", "proteins", "PROTEOMICS", "folding", "unfold", "fold_ed", "x2fold", "İstanbul", "istanbuls",
             "Straße", "strasse", "ﬁlled", "filled", "Kelvin", "\u212aelvin", "naïve", "NAÏVES", "the", "of", "a"]
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice(words) + rng.choice([" ", "-", "", ". ", "_", "\t"]) for _ in range(rng.randint(0, 30)))
        terms = rng.sample(words, rng.randint(1, 4))
        assert highlight_spans(text, terms) == every_word(text, terms), (text, terms)


def test_snippet_centres_on_the_matches() -> None:
    text = "filler " * 100 + "the vaccine trains memory cells " + "filler " * 100
    cut = snippet(text, ["vaccine", "memory"], width=80).text
    assert "vaccine" in cut and "memory" in cut
    assert cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 82
    assert snippet("short  text", ["x"]) == ("short text", [])


def test_snippet_highlights_are_the_excerpts_own_matches() -> None:
    """Spans found once in the whole passage and shifted must equal a fresh search of the excerpt."""
    text = ("Folding\tof proteins " + "and other filler words " * 12 + "misfolded protein aggregates fold "
            + "more filler text here " * 12 + "the end of the protein story")
    for width in (40, 80, 160, 320, 2000):
        excerpt = snippet(text, ["protein", "folding"], width=width)
        assert excerpt.highlights == highlight_spans(excerpt.text, ["protein", "folding"])
        assert excerpt.highlights, width
