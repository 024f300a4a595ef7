"""The trained reranker as a folder: BERT weights, tokenizer and `bertsearch-reranker.json`, written whole or not at
all."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from bertsearch.rerank import METADATA_NAME, RerankerError, RerankerMetadata


def check_output_folder(output: Path) -> Path:
    """`output` resolved, if a reranker may be written there: a new folder, an empty one, or an older reranker."""
    output = Path(output).expanduser().resolve()
    if output.exists() and any(output.iterdir()) and not (output / METADATA_NAME).is_file():
        raise RerankerError(f"{output} exists and is not a reranker folder: choose another output folder")
    return output


def save_reranker(bert: Any, tokenizer: Any, metadata: RerankerMetadata, output: Path) -> None:
    """Write the folder under a temporary sibling name and rename it into place, replacing an older reranker there,
    so that an interrupted run never leaves a broken model folder."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        bert.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / METADATA_NAME).write_text(json.dumps(metadata.to_json(), indent=2))
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        if output.exists():
            os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
