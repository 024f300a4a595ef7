"""Partitions of a corpus by document id, so several machines index one corpus at once with no coordinator.

Partition `I/N` (I from 1 to N) holds the documents whose id hashes to I - 1 modulo N. The hash is BLAKE2b of
the id's UTF-8 bytes: the same on every machine, process and Python version (Python's own `hash()` of a
string is salted per process). Every run reads the whole corpus but encodes and writes only its own share,
and the N shares are disjoint and cover every document, so N runs together write exactly what one run writes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_FORMAT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Partition:
    """Share `number` (from 1) of `count` shares of a corpus."""

    number: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"partition {self}: N, the number of partitions, must be at least 1")
        if not 1 <= self.number <= self.count:
            raise ValueError(f"partition {self} does not exist: I must be from 1 to {self.count}")

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"

    def holds(self, key: str) -> bool:
        """True if the document (or skipped file) named `key` falls in this partition."""
        return partition_slot(key, self.count) == self.number - 1


def partition_slot(key: str, count: int) -> int:
    """`key`'s slot from 0 to `count` - 1, stable everywhere. Lone surrogates (ids made from file names that
    are not UTF-8) are hashed as their code points, so no id fails to hash."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_partition(text: str) -> Partition:
    """`I/N` as a Partition; ValueError saying what is wrong otherwise."""
    match = _FORMAT.fullmatch(text)
    if match is None:
        raise ValueError(f"a partition is I/N with whole numbers, I from 1 to N (e.g. 1/4), not {text!r}")
    return Partition(int(match.group(1)), int(match.group(2)))
