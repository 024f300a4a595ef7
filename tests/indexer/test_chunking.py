import gzip
import json
import random
from itertools import islice

import pytest

from bertsearch.indexer.chunking import chunk_document, split_sentences
from bertsearch.types import Document, Passage
from tests.helpers import scifact_dir

SCIFACT_CORPUS = scifact_dir() / "corpus.jsonl.gz"


def token_lengths(tokenizer, passages: list[Passage]) -> list[int]:
    """What the model sees: each passage's encoder input with [CLS]/[SEP], untruncated."""
    return [len(ids) for ids in tokenizer([p.encoder_input() for p in passages], verbose=False)["input_ids"]]


def sentences_of(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def numbered_sentences(count: int, seed: int = 0) -> list[str]:
    """Sentences of varied length, each unique so its place in a passage can be checked."""
    rng = random.Random(seed)
    words = "protein cell binding receptor expression pathway mutation signal tissue response".split()
    return [
        f"Sentence {number} says " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) + "."
        for number in range(count)
    ]


def test_short_document_is_one_unchanged_passage(tokenizer):
    document = Document(doc_id="d", text="  A short text.\n\nWith two paragraphs.  \n", title="Title")

    passages = chunk_document(document, tokenizer, max_tokens=64, overlap_tokens=8)

    assert passages == [Passage(doc_id="d", position=0, text="A short text.\n\nWith two paragraphs.", title="Title")]


def test_empty_text_with_title_is_one_empty_passage(tokenizer):
    assert chunk_document(Document("d", "  ", title="Only a title"), tokenizer, 64, 8) == [
        Passage("d", 0, "", "Only a title")
    ]
    assert chunk_document(Document("d", "", title=""), tokenizer, 64, 8) == []


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(32, 8), (64, 16), (128, 32), (256, 48)])
def test_long_text_respects_the_token_limit_and_sentence_boundaries(tokenizer, max_tokens, overlap_tokens):
    sentences = numbered_sentences(120)
    text = " ".join(sentences)
    document = Document("long", text, title="Protein signalling in tissue")

    passages = chunk_document(document, tokenizer, max_tokens, overlap_tokens)

    assert len(passages) > 1
    assert [p.position for p in passages] == list(range(len(passages)))
    assert max(token_lengths(tokenizer, passages)) <= max_tokens
    assert all(p.title == document.title and p.doc_id == "long" for p in passages)
    for passage in passages:
        # Whole sentences only: no sentence here is longer than the budget.
        assert passage.text in text
        assert set(sentences_of(passage.text)) <= set(sentences)
    covered = [s for p in passages for s in sentences_of(p.text)]
    assert list(dict.fromkeys(covered)) == sentences  # every sentence, in order


def test_consecutive_passages_overlap_by_whole_sentences(tokenizer):
    text = " ".join(numbered_sentences(60, seed=1))

    with_overlap = chunk_document(Document("d", text), tokenizer, max_tokens=96, overlap_tokens=40)
    without = chunk_document(Document("d", text), tokenizer, max_tokens=96, overlap_tokens=0)

    shared_counts = []
    for previous, current in zip(with_overlap, with_overlap[1:]):
        previous_sentences, current_sentences = sentences_of(previous.text), sentences_of(current.text)
        shared = [s for s in current_sentences if s in previous_sentences]
        # The shared sentences are the end of one passage and the start of the next, never all of it.
        assert shared == previous_sentences[len(previous_sentences) - len(shared) :]
        assert shared == current_sentences[: len(shared)]
        assert len(shared) < len(previous_sentences)
        assert len(tokenizer(" ".join(shared), add_special_tokens=False)["input_ids"]) <= 40
        shared_counts.append(len(shared))
    assert sum(shared_counts) >= len(shared_counts) // 2  # most cuts repeat a sentence
    assert len(with_overlap) > len(without)
    for previous, current in zip(without, without[1:]):
        assert not set(sentences_of(previous.text)) & set(sentences_of(current.text))


def test_overlong_sentence_is_split_into_overlapping_exact_pieces(tokenizer):
    rng = random.Random(2)
    long_sentence = "Then " + " ".join(f"word{rng.randint(0, 999)}" for _ in range(400)) + "."
    text = f"Before it comes this. {long_sentence} After it comes that."

    passages = chunk_document(Document("d", text), tokenizer, max_tokens=64, overlap_tokens=16)

    assert max(token_lengths(tokenizer, passages)) <= 64
    positions = []
    for passage in passages:
        start = text.find(passage.text)
        assert start >= 0  # an exact substring of the original
        positions.append((start, start + len(passage.text)))
    assert passages[0].text == "Before it comes this."
    assert passages[-1].text.endswith("After it comes that.")
    for (_, previous_end), (start, end) in zip(positions, positions[1:]):
        assert start < end and previous_end <= end
    pieces = [(s, e) for s, e in positions if text[s:e] in long_sentence]
    assert len(pieces) > 3
    assert all(start < previous_end for (_, previous_end), (start, _) in zip(pieces, pieces[1:]))  # overlap
    assert positions[-1][1] == len(text)


@pytest.mark.parametrize("max_tokens", range(6, 30, 3))
def test_word_longer_than_a_passage_is_cut_exactly(tokenizer, max_tokens):
    # Single words of many word pieces (BERT makes words over 100 characters one [UNK]).
    words = [
        "pneumonoultramicroscopicsilicovolcanoconiosis" * 2,
        "ACGTTGCAAGCTTAGCGGCTAAGCTTACGATCGTAGCTAGGCTAACGT",
        "xqzvwkjhgfdsapoiuytrewqmnbvcxz",
    ]
    text = " ".join(f"Sample {number}: {word} is rare." for number, word in enumerate(words))

    passages = chunk_document(Document("d", text), tokenizer, max_tokens=max_tokens, overlap_tokens=2)

    assert max(token_lengths(tokenizer, passages)) <= max_tokens
    assert all(p.text in text for p in passages)
    assert " ".join(p.text for p in passages).count("rare") >= 3


def test_long_title_is_cut_to_half_the_budget(tokenizer):
    title = " ".join(f"Title{number}" for number in range(200))
    text = " ".join(numbered_sentences(20))

    passages = chunk_document(Document("d", text, title=title), tokenizer, max_tokens=64, overlap_tokens=8)

    assert max(token_lengths(tokenizer, passages)) <= 64
    title_tokens = len(tokenizer(passages[0].title + ".", add_special_tokens=False)["input_ids"])
    assert 0 < title_tokens <= (64 - 2) // 2
    assert title.startswith(passages[0].title) and title[len(passages[0].title)] == " "  # cut between words
    assert all(p.title == passages[0].title for p in passages)


def test_chunking_is_deterministic(tokenizer):
    document = Document("d", " ".join(numbered_sentences(80, seed=3)), title="T")

    assert chunk_document(document, tokenizer, 64, 16) == chunk_document(document, tokenizer, 64, 16)


def test_scifact_abstracts_fit_the_model(tokenizer):
    with gzip.open(SCIFACT_CORPUS, "rt", encoding="utf-8") as handle:
        documents = [Document(r["_id"], r["text"], r["title"]) for r in map(json.loads, islice(handle, 800))]

    for max_tokens, overlap_tokens in [(256, 48), (128, 32)]:
        passages_per_document = [chunk_document(d, tokenizer, max_tokens, overlap_tokens) for d in documents]
        passages = [p for ps in passages_per_document for p in ps]

        assert max(token_lengths(tokenizer, passages)) <= max_tokens
        assert any(len(ps) > 1 for ps in passages_per_document)
        for document, document_passages in zip(documents, passages_per_document):
            text = document.text.strip()
            assert [p.position for p in document_passages] == list(range(len(document_passages)))
            assert all(p.text in text for p in document_passages)
            assert document_passages[0].text[:20] == text[:20]
            assert document_passages[-1].text[-20:] == text[-20:]


def test_sentence_splitting_keeps_abbreviations_and_initials():
    text = (
        "Results are shown in Fig. 2 and e.g. Table 3. Smith et al. Reported it first! "
        "J. Smith agreed. Was it 3.5 mg? \"Yes,\" they said.\n\nnew paragraph starts lower-case"
    )

    assert sentences_of(text) == [
        "Results are shown in Fig. 2 and e.g. Table 3.",
        "Smith et al. Reported it first!",
        "J. Smith agreed.",
        "Was it 3.5 mg?",
        '"Yes," they said.',
        "new paragraph starts lower-case",
    ]


def test_a_long_text_is_tokenized_in_segments_with_the_same_passages(tokenizer, monkeypatch):
    """Segments of whole sentences keep a 20 MB text's memory bounded; the passages must not change."""
    from bertsearch.indexer import chunking

    sentences = [f"Sentence {i} is about topic {i % 13}, e.g. the {'long ' * (i % 7)}one." for i in range(900)]
    sentences[300] = "x" * 400 + " " + "word " * 300 + "end."  # a word BERT reads as one piece; a sentence cut
    text = " ".join(sentences) + "\n\n" + "y" * 5000
    document = Document("long", text, "A title")
    assert len(text) > 3 * 8_000
    monkeypatch.setattr(chunking, "SEGMENT_CHARS", 8_000)
    segmented = chunk_document(document, tokenizer, 128, 24)
    monkeypatch.setattr(chunking, "SEGMENT_CHARS", 10 * len(text))
    assert segmented == chunk_document(document, tokenizer, 128, 24)
    assert len(segmented) > 20
    monkeypatch.setattr(chunking, "SEGMENT_CHARS", 100)
    word = Document("word", "z" * 5000)  # one word of one [UNK] piece: the whole text is one passage
    assert chunk_document(word, tokenizer, 128, 24) == [Passage("word", 0, "z" * 5000, "")]
