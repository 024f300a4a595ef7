"""BEIR-format datasets, read in one place for evaluation, training and the benchmarks.

A BEIR folder holds `corpus.jsonl[.gz]` (records with `_id`, `title`, `text`), `queries.jsonl[.gz]` (`_id`,
`text`) and `qrels/<split>.tsv` (query-id, corpus-id, score; with or without its header line).
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bertsearch.errors import DatasetError


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR folder: the corpus file, the queries of one split, and their relevance judgments."""

    name: str
    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def open_text(path: Path) -> IO[str]:
    """`path` as UTF-8 text, decompressed if it ends in .gz."""
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def find_file(folder: Path, stem: str) -> Path:
    """`stem`.jsonl or `stem`.jsonl.gz in `folder`, or DatasetError."""
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder} is not a BEIR dataset: {stem}.jsonl or {stem}.jsonl.gz is missing")


def read_queries(path: Path) -> dict[str, str]:
    """query id → text from BEIR queries JSONL (optionally gzipped), or from a TSV of id and text."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"queries file not found: {path}")
    queries: dict[str, str] = {}
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if ".jsonl" in path.name:
                try:
                    record = json.loads(line)
                    queries[str(record["_id"])] = str(record.get("text", ""))
                except (ValueError, KeyError, TypeError):
                    raise DatasetError(f"{path}:{number}: not a JSON record with an _id") from None
            else:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2:
                    raise DatasetError(f"{path}:{number}: expected query id and text separated by a tab")
                queries[parts[0]] = parts[1]
    if not queries:
        raise DatasetError(f"queries file is empty: {path}")
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id → {corpus id: relevance} from a BEIR qrels TSV (with or without its header)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"qrels file not found: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (line_number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(f"{path}:{line_number}: expected query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError:
                raise DatasetError(f"{path}:{line_number}: score {row[2]!r} is not an integer") from None
    return qrels


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """The dataset in `folder`, restricted to the queries judged in `split`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder not found: {folder}")
    corpus = find_file(folder, "corpus")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise DatasetError(f"no qrels for split {split!r} in {folder} (available: {', '.join(available) or 'none'})")
    qrels = read_qrels(qrels_path)
    every_query = read_queries(find_file(folder, "queries"))
    missing = set(qrels) - set(every_query)
    if missing:
        raise DatasetError(
            f"{len(missing)} judged queries are missing from the queries file (e.g. {sorted(missing)[0]})"
        )
    queries = {query_id: text for query_id, text in every_query.items() if query_id in qrels}
    return BeirDataset(name=folder.resolve().name, corpus_path=corpus, queries=queries, qrels=qrels)


def read_corpus(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The first `limit` (all, if None) records of a BEIR corpus file, as `_id`, `title` and `text`."""
    records: list[dict[str, str]] = []
    with open_text(Path(path)) as handle:
        for line in handle:
            if limit is not None and len(records) >= limit:
                break
            if line.strip():
                record = json.loads(line)
                records.append({"_id": str(record["_id"]), "title": record.get("title") or "",
                                "text": record.get("text") or ""})
    return records
