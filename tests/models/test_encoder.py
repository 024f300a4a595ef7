"""The torch bi-encoder: faithful vectors, tight padding, GIL-free traces, packed query batches."""

from pathlib import Path

import numpy as np
import pytest

from bertsearch.models.encoder import Encoder
from bertsearch.models.loading import default_model_path


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def test_default_model_is_the_packaged_minilm(encoder: Encoder) -> None:
    assert Path(encoder.info.path) == default_model_path().resolve()
    assert encoder.info.dimensions == 384
    assert encoder.info.max_seq_length == 256
    assert len(encoder.info.fingerprint) == 16


def test_vectors_are_normalised_and_meaningful(encoder: Encoder) -> None:
    vectors = encoder.encode(["A cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.encode([]).shape == (0, 384)
    assert np.allclose(encoder.encode_query("A cat sat on the mat."), vectors[0], atol=2e-2)


def test_runtime_precision_stays_faithful_to_fp32(encoder: Encoder) -> None:
    from bertsearch.device import Runtime

    reference = Encoder(runtime=Runtime("cpu", "fp32"))
    texts = [f"Passage {i}: proteins fold into structures that determine their function." * (i % 4 + 1) for i in range(12)]
    cosine = (encoder.encode(texts) * reference.encode(texts)).sum(axis=1)
    assert cosine.min() > 0.999


def test_tight_padding_for_query_batches_gives_the_same_vectors(encoder: Encoder) -> None:
    queries = ["how do plants make oxygen", "vitamin D and multiple sclerosis", "tides"]
    bucketed = encoder.encode(queries)
    tight = encoder.encode(queries, batch_size=len(queries), length_step=8)
    assert np.allclose(bucketed, tight, atol=2e-2)
    assert (np.sum(bucketed * tight, axis=1) > 0.999).all()


LENGTHS_AND_SHAPES = ["tides", "how do plants make oxygen", "vitamin D and multiple sclerosis in northern latitudes",
                      "a long passage that is truncated " * 60, "", "Ünïcödé and emoji 🙂 text"]


def test_gil_free_trace_gives_the_eager_vectors() -> None:
    encoder = Encoder()  # its own: the module's encoder stays eager for the other tests
    eager = [encoder.encode(LENGTHS_AND_SHAPES), encoder.encode(LENGTHS_AND_SHAPES, batch_size=4, length_step=8),
             encoder.encode_query("one query on its own")]
    assert not encoder.releases_gil
    assert encoder.release_gil() and encoder.release_gil() and encoder.releases_gil
    traced = [encoder.encode(LENGTHS_AND_SHAPES), encoder.encode(LENGTHS_AND_SHAPES, batch_size=4, length_step=8),
              encoder.encode_query("one query on its own")]
    for before, after in zip(eager, traced):
        assert before.shape == after.shape
        assert np.allclose(before, after, atol=1e-5)


def test_an_untraceable_model_stays_eager(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    encoder = Encoder()
    expected = encoder.encode(["still encodes"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot trace this architecture")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    assert not encoder.release_gil()
    assert "without a trace" in caplog.text and "cannot trace this architecture" in caplog.text
    assert np.array_equal(encoder.encode(["still encodes"]), expected)


def test_packed_rows_keep_texts_apart() -> None:
    from bertsearch.models.encoder import pack_rows

    token_rows, lengths = pack_rows([[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]], row_length=8)
    assert token_rows.shape == (3, 2, 8)  # 3 + 2 tokens fit the first row; 5 more need a second
    input_ids, positions, segments = token_rows
    assert input_ids[0, :5].tolist() == [101, 7, 102, 101, 102] and positions[0, :5].tolist() == [0, 1, 2, 0, 1]
    assert segments[0, :5].tolist() == [0, 0, 0, 1, 1] and segments[1, :5].tolist() == [2] * 5
    pads = segments[segments < 0].tolist()
    assert len(pads) == 3 + 3 and len(set(pads)) == len(pads)  # each padding token a segment of its own
    assert lengths.tolist() == [3.0, 2.0, 5.0]


def test_packed_embedding_attends_and_pools_within_each_text(encoder: Encoder) -> None:
    import torch

    from bertsearch.models.encoder import PackedSentenceEmbedding, pack_rows

    token_ids = encoder._token_ids(["tides and moons", "a second text", "a third, longer text about rows"])
    together = PackedSentenceEmbedding(encoder._transformer).eval()
    with torch.inference_mode():
        packed = together(*pack_rows(token_ids, row_length=64)).numpy()
        alone = np.concatenate([together(*pack_rows([ids], row_length=64)).numpy() for ids in token_ids])
    assert packed.shape == (3, 384)
    assert (np.sum(packed * alone, axis=1) > 0.9999).all()  # a text's neighbours in its row change nothing


def test_packed_query_batches_give_the_padded_vectors() -> None:
    encoder = Encoder()
    texts = [*LENGTHS_AND_SHAPES, *(f"query {n} about " + "tides and moons " * n for n in range(12))]
    padded = encoder.encode(texts, batch_size=len(texts), length_step=8)
    assert np.array_equal(encoder.encode_queries(texts), padded)  # untraced: the padded path itself
    assert encoder.release_gil()
    for batch in (texts[:1], texts[:5], texts):  # one text; one row; several rows (the long text fills one)
        packed = encoder.encode_queries(batch)
        assert packed.shape == (len(batch), 384)
        assert (np.sum(packed * padded[: len(batch)], axis=1) > 0.9999).all()


def test_query_tokenizer_matches_the_model_tokenizer() -> None:
    encoder = Encoder()
    assert encoder.release_gil()
    texts = ["Tides & Moons", "", "é accents, ünïcode and CamelCase", "long " * 400 + "end"]
    assert encoder._query_token_ids(texts) == encoder._token_ids(texts)
    assert len(encoder._query_token_ids(texts)[-1]) == encoder.info.max_seq_length  # truncated, like the model's


def test_only_mean_pooling_models_are_packed(encoder: Encoder) -> None:
    import torch

    from bertsearch.models.encoder import _mean_pooled

    heads = list(encoder.model)[1:]
    assert _mean_pooled(heads) and _mean_pooled(heads[:1])
    assert not _mean_pooled([]) and not _mean_pooled([torch.nn.Identity()]) and not _mean_pooled([*heads, heads[1]])
