"""Where models come from: local folders only, fingerprinted, the index's own model or a clear error."""

import json
import shutil
from pathlib import Path

import pytest

from bertsearch.errors import IndexMismatchError, ModelNotFoundError
from bertsearch.models.encoder import Encoder
from bertsearch.models.loading import default_model_path, load_index_encoder, model_fingerprint, resolve_model_path


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


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
