"""One exception family for failures a user can fix; the CLI prints them as one line, the server as a 4xx or 503.

Messages say what is wrong in the library's terms. What a user can do about it is named by typed fields (the
parameters that can put it right, what differs), which each front end words in its own vocabulary: the CLI as
flags (`cli/errors.py`), the HTTP API as its request fields (`bertsearch/server/app.py`).
"""

from __future__ import annotations

from typing import Literal


class BertsearchError(Exception):
    """A user-facing failure: bad input, missing index, unreachable service.

    `settings` names the parameters (of `resolve_location`, `ChunkingSettings`, `KibanaConnection`...) whose value
    can put it right, if any.
    """

    def __init__(self, message: str = "", *, settings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings = settings


class IndexNotFoundError(BertsearchError):
    """No index exists where one was asked for; `index_dir` is the folder, where the index would be one."""

    def __init__(self, message: str, *, index_dir: str | None = None) -> None:
        super().__init__(message)
        self.index_dir = index_dir


Difference = Literal["model", "chunking", "layout", "format", ""]


class IndexMismatchError(BertsearchError):
    """The index was built with another model or other settings than those in use.

    `differs` says what: the "model", the "chunking", the "layout" (an Elasticsearch index's vector index type,
    shards, replicas), the "format" (made by an older bertsearch), or "" (not a bertsearch index, unreadable).
    """

    def __init__(self, message: str, *, differs: Difference = "") -> None:
        super().__init__(message)
        self.differs = differs


class ModelNotFoundError(BertsearchError):
    """A model path does not hold a usable sentence-transformers model."""


class InvalidQueryError(BertsearchError):
    """A query that cannot be run: empty text, unknown mode, bad k."""


class NoRerankerError(InvalidQueryError):
    """A query asked to be reranked on an index that has no reranker."""


class DatasetError(BertsearchError):
    """A BEIR dataset folder that is missing files or malformed."""


class BackendError(BertsearchError):
    """A storage backend failed in a way the user can act on (unreachable, denied, inconsistent)."""


class ReadOnlyIndexError(BackendError):
    """The index can be searched but not written: its folder or files are read-only to this process."""


class DamagedIndexError(BackendError):
    """The index's database is damaged (truncated, overwritten); it can be rebuilt from the indexed files.

    `index_dir` is the index folder, for the command that tells the user how to repair it.
    """

    def __init__(self, message: str, index_dir: str) -> None:
        super().__init__(message)
        self.index_dir = index_dir


class PartialWriteError(BackendError):
    """Some documents of a write or delete could not be stored; the others were. `failures` maps each to why."""

    def __init__(self, message: str, failures: dict[str, str]) -> None:
        super().__init__(message)
        self.failures = failures
