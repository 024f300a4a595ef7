"""What a reranker trains and validates on, and labelled pairs read from a file."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bertsearch.beir import open_text
from bertsearch.errors import BertsearchError
from bertsearch.training.config import TrainingConfig


class TrainingDataError(BertsearchError):
    """Training data that cannot be used: missing or empty file, wrong columns, labels out of range."""


@dataclass(frozen=True)
class TrainingGroup:
    """One query with passages known to be relevant and passages known (or mined) not to be."""

    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationQuery:
    """A held-out query with the first stage's candidates (doc id, text), best first, and its judgments."""

    query: str
    candidates: tuple[tuple[str, str], ...]
    relevant: dict[str, int]


@dataclass(frozen=True)
class TrainingData:
    """Groups to train on, and what to validate on: first-stage candidates if there is an index, else groups."""

    source: str
    groups: list[TrainingGroup]
    validation_queries: list[ValidationQuery] = field(default_factory=list)
    validation_groups: list[TrainingGroup] = field(default_factory=list)
    # What `validation_queries` are: "judged" (real queries) or "pseudo-queries" (made from the corpus).
    validation_evidence: str = "judged"

    @property
    def data_hash(self) -> str:
        digest = hashlib.sha256()
        for group in self.groups:
            digest.update(json.dumps(asdict(group), sort_keys=True).encode())
        return digest.hexdigest()[:16]


def split_held_out(items: list, count: int, seed: int) -> tuple[list, list]:
    """(train, held out): `count` items held out at random, never more than a fifth."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    held = min(count, len(shuffled) // 5)
    return shuffled[held:], shuffled[:held]


def _label(value: object, where: str) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TrainingDataError(f"{where}: label {value!r} is not a number (use 0 or 1)") from None
    if number not in (0.0, 1.0):
        raise TrainingDataError(f"{where}: label {value!r} is out of range (use 0 or 1)")
    return int(number)


def _rows(path: Path) -> list[tuple[str, str, str | int, str]]:
    """(query, passage, label) or (query, positive, negative) rows, each tagged "label" or "triplet"."""
    rows: list[tuple[str, str, str | int, str]] = []
    is_jsonl = ".jsonl" in path.name or ".json" in path.name
    with open_text(path) as handle:
        if is_jsonl:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except ValueError:
                    raise TrainingDataError(f"{where}: not a JSON record") from None
                if isinstance(record, dict) and {"query", "passage", "label"} <= record.keys():
                    rows.append((str(record["query"]), str(record["passage"]), _label(record["label"], where), "label"))
                elif isinstance(record, dict) and {"query", "positive", "negative"} <= record.keys():
                    rows.append((str(record["query"]), str(record["positive"]), str(record["negative"]), "triplet"))
                else:
                    raise TrainingDataError(
                        f"{where}: expected keys query, passage, label or query, positive, negative")
        else:
            for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
                if not row or not "".join(row).strip():
                    continue
                where = f"{path}:{number}"
                if len(row) != 3:
                    raise TrainingDataError(
                        f"{where}: expected 3 tab-separated columns (query, passage, label) or "
                        f"(query, positive, negative), got {len(row)}")
                if number == 1 and row[0].strip().lower() == "query":
                    continue
                kind = "label" if re.fullmatch(r"\s*-?[\d.]+\s*", row[2]) else "triplet"
                third: str | int = _label(row[2], where) if kind == "label" else row[2]
                rows.append((row[0], row[1], third, kind))
    return rows


def read_pairs(path: Path) -> list[TrainingGroup]:
    """Groups from a JSONL or TSV file of (query, passage, label ∈ {0, 1}) or (query, positive, negative) rows."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"pairs file not found: {path}")
    rows = _rows(path)
    if not rows:
        raise TrainingDataError(f"pairs file is empty: {path}")
    positives: dict[str, list[str]] = {}
    negatives: dict[str, list[str]] = {}
    for query, passage, third, kind in rows:
        if not query.strip() or not passage.strip():
            continue
        if kind == "triplet":
            positives.setdefault(query, []).append(passage)
            negatives.setdefault(query, []).append(str(third))
        else:
            (positives if third == 1 else negatives).setdefault(query, []).append(passage)
    groups = [TrainingGroup(q, tuple(dict.fromkeys(p)), tuple(dict.fromkeys(negatives.get(q, ()))))
              for q, p in positives.items()]
    if not groups:
        raise TrainingDataError(f"no positive pairs in {path}: at least one row needs label 1 or a positive")
    return groups


def pairs_data(path: Path, config: TrainingConfig) -> TrainingData:
    """Training data from a pairs file; validation is on held-out groups (no first stage to compare with)."""
    groups = read_pairs(path)
    train, held = split_held_out(groups, config.validation_queries, config.seed)
    return TrainingData(source=f"pairs:{Path(path).resolve()}", groups=train, validation_groups=held)
