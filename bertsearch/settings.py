"""What an index records about how it was built, so it can refuse to be used any other way."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertsearch.errors import IndexMismatchError, IndexNotFoundError

INDEX_DIR_ENV = "BERTSEARCH_INDEX_DIR"
DEFAULT_INDEX_DIR = ".bertsearch"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# Passages encoded and written per transaction: large enough to keep the encoder's batches full and
# length-sorted, small enough that a killed run loses only seconds of work.
WRITE_BATCH_PASSAGES = 1024


def default_index_dir() -> Path:
    return Path(os.environ.get(INDEX_DIR_ENV) or DEFAULT_INDEX_DIR)


@dataclass(frozen=True)
class ChunkingSettings:
    """Passages hold at most `max_tokens` word pieces (title included) and repeat `overlap_tokens` of the previous
    one."""

    max_tokens: int = 256
    overlap_tokens: int = 48


@dataclass(frozen=True)
class IndexSettings:
    """Everything that must match for vectors in an index to be comparable with a new query's."""

    model_path: str
    model_fingerprint: str
    dimensions: int
    chunking: ChunkingSettings
    backend: str = "embedded"
    backend_options: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexSettings:
        data = dict(data)
        data["chunking"] = ChunkingSettings(**data.get("chunking", {}))
        return cls(**data)

    def check_compatible(self, model_fingerprint: str, chunking: ChunkingSettings | None = None) -> None:
        """Refuse a model or chunking other than the one the index was built with."""
        if model_fingerprint != self.model_fingerprint:
            raise IndexMismatchError(
                f"this index was built with another model ({self.model_path}, fingerprint "
                f"{self.model_fingerprint})", differs="model"
            )
        if chunking is not None and chunking != self.chunking:
            raise IndexMismatchError(
                f"this index was built with chunking {asdict(self.chunking)}; "
                f"got {asdict(chunking)}", differs="chunking"
            )


ENCODING_NAME = "encoding.json"


@dataclass(frozen=True)
class EncodingRecord:
    """One way an index's vectors were encoded (`bertsearch.device.EncodingPath.describe()`), on which kind of CPU,
    and how that path's vectors of the fixed sample compared with fp32 when the index first took it (None: fp32,
    the reference, or an index from before paths were recorded)."""

    path: str
    cpu: str = ""
    min_cosine: float | None = None
    mean_cosine: float | None = None
    bound: float | None = None


def read_encodings(index_dir: Path) -> list[EncodingRecord]:
    """Every path that has written vectors into the index in `index_dir` (none recorded: an older index)."""
    try:
        return [EncodingRecord(**entry) for entry in json.loads((index_dir / ENCODING_NAME).read_text())["paths"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def record_encoding(index_dir: Path, record: EncodingRecord) -> None:
    """Add `record` to the index's paths (if its path is new there), atomically."""
    recorded = read_encodings(index_dir)
    if any(entry.path == record.path for entry in recorded):
        return
    _write_json(index_dir / ENCODING_NAME, {"paths": [asdict(entry) for entry in [*recorded, record]]})


def settings_exist(index_dir: Path) -> bool:
    return (index_dir / MANIFEST_NAME).is_file()


def read_settings(index_dir: Path) -> IndexSettings:
    """The settings recorded in `index_dir`, or IndexNotFoundError."""
    manifest = index_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise IndexNotFoundError(f"no index at {index_dir}", index_dir=str(index_dir))
    try:
        return IndexSettings.from_json(json.loads(manifest.read_text()))
    except (ValueError, TypeError) as exc:
        raise IndexMismatchError(f"unreadable index manifest {manifest}: {exc}") from exc


def write_settings(index_dir: Path, settings: IndexSettings) -> None:
    """Write the manifest atomically: a crash leaves the old one or the new one, never half of either."""
    index_dir.mkdir(parents=True, exist_ok=True)
    _write_json(index_dir / MANIFEST_NAME, settings.to_json())


def _write_json(target: Path, data: Any) -> None:
    """`data` as JSON at `target`, atomically: a crash leaves the old file or the new one, never half of either."""
    tmp = target.with_suffix(f".{os.getpid()}.tmp")  # writers in other processes (partitions) use their own
    with tmp.open("w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
