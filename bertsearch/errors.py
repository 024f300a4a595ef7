"""One exception family for failures a user can fix; the CLI prints them as one line."""


class BertsearchError(Exception):
    """A user-facing failure: bad input, missing index, unreachable service."""


class IndexNotFoundError(BertsearchError):
    """No index exists where one was asked for."""


class IndexMismatchError(BertsearchError):
    """The index was built with another model or other settings than those in use."""


class ModelNotFoundError(BertsearchError):
    """A model path does not hold a usable sentence-transformers model."""


class InvalidQueryError(BertsearchError):
    """A query that cannot be run: empty text, unknown mode, bad k."""


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
