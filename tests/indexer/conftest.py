import pytest

from bertsearch.models.loading import default_model_path


@pytest.fixture(scope="session")
def tokenizer():
    """The default model's fast tokenizer, loaded from its local folder only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
