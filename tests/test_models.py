import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertsearch.errors import IndexMismatchError, ModelNotFoundError
from bertsearch.models import Encoder, default_model_path, load_index_encoder, model_fingerprint, resolve_model_path


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


def test_missing_or_invalid_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model folder not found"):
        resolve_model_path(tmp_path / "nope")
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers model folder"):
        resolve_model_path(tmp_path)


def test_fingerprint_changes_with_the_model(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(default_model_path(), copy)
    assert model_fingerprint(copy) == model_fingerprint(default_model_path())
    config = json.loads((copy / "config.json").read_text())
    config["marker"] = 1
    (copy / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(copy) != model_fingerprint(default_model_path())


def test_index_encoder_falls_back_to_the_default_model_when_the_recorded_folder_is_gone(encoder: Encoder) -> None:
    loaded = load_index_encoder("/moved/away/model", encoder.info.fingerprint)
    assert loaded.info.fingerprint == encoder.info.fingerprint
    with pytest.raises(IndexMismatchError, match="built with another model"):
        load_index_encoder("/moved/away/model", "0" * 16)


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
    from bertsearch.models import pack_rows

    input_ids, positions, mask, pooling = pack_rows([[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]], row_length=8)
    assert input_ids.shape == positions.shape == (2, 8)  # 3 + 2 tokens fit the first row; 5 more need a second
    assert input_ids[0, :5].tolist() == [101, 7, 102, 101, 102] and positions[0, :5].tolist() == [0, 1, 2, 0, 1]
    assert mask.shape == (2, 1, 8, 8)
    first_row = mask[0, 0]
    assert first_row[0, :3].all() and not first_row[0, 3:].any()  # text 0 sees only itself
    assert first_row[3, 3:5].all() and not first_row[3, :3].any()  # text 1 likewise
    assert all(first_row[i, i] and first_row[i].sum() == 1 for i in range(5, 8))  # padding: only itself
    assert pooling.shape == (3, 16) and np.allclose(pooling.sum(dim=1).numpy(), 1.0)
    assert np.allclose(pooling[2, 8:13].numpy(), 0.2) and not pooling[2, 13:].any()


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


def test_only_mean_pooling_models_are_packed(encoder: Encoder) -> None:
    import torch

    from bertsearch.models import _mean_pooled

    heads = list(encoder.model)[1:]
    assert _mean_pooled(heads) and _mean_pooled(heads[:1])
    assert not _mean_pooled([]) and not _mean_pooled([torch.nn.Identity()]) and not _mean_pooled([*heads, heads[1]])
