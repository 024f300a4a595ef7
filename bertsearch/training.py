"""Training a reranker: training data (labelled pairs, BEIR judgments against an index, or the indexed corpus
itself), a listwise loss over each query's own candidates, validation on held-out queries, and a model folder
written atomically with the check against first-stage retrieval.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import gzip
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bertsearch.device import Runtime, select_runtime
from bertsearch.errors import BertsearchError
from bertsearch.evaluation import read_qrels, score_run
from bertsearch.models.base import PairScorer, TextEncoder
from bertsearch.models.loading import resolve_model_path
from bertsearch.rerank import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_RERANK_DEPTH,
    METADATA_NAME,
    RerankCheck,
    RerankerError,
    RerankerMetadata,
    blend,
    reranker_head,
)
from bertsearch.search import Searcher
from bertsearch.stores import create_store
from bertsearch.types import Document, passage_text

BLEND_WEIGHTS = tuple(round(w * 0.05, 2) for w in range(21))
# Hard negatives come from this deep in the first stage: deep enough for variety, shallow enough to be hard.
MINING_DEPTH = 30


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

    @property
    def data_hash(self) -> str:
        digest = hashlib.sha256()
        for group in self.groups:
            digest.update(json.dumps(asdict(group), sort_keys=True).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TrainingConfig:
    """How long and how hard to train. `max_steps` caps `epochs`; validation runs every `eval_every` steps."""

    epochs: float = 3.0
    max_steps: int | None = None
    groups_per_step: int = 2
    negatives: int = 7
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.1
    max_length: int = DEFAULT_MAX_LENGTH
    eval_every: int | None = None
    validation_queries: int = 100
    seed: int = 13


@dataclass(frozen=True)
class TrainingProgress:
    """Reported after every step; `validation` is set on steps that validated."""

    step: int
    total_steps: int
    loss: float
    elapsed_s: float
    validation: float | None = None

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / max(self.step, 1) * (self.total_steps - self.step)


# ---------------------------------------------------------------- training data


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


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
    with _open_text(path) as handle:
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


def read_queries(path: Path) -> dict[str, str]:
    """query id → text from BEIR queries JSONL (optionally gzipped) or a TSV of id, text."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"queries file not found: {path}")
    queries: dict[str, str] = {}
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if ".jsonl" in path.name:
                try:
                    record = json.loads(line)
                    queries[str(record["_id"])] = str(record.get("text", ""))
                except (ValueError, KeyError, TypeError):
                    raise TrainingDataError(f"{path}:{number}: not a JSON record with an _id") from None
            else:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2:
                    raise TrainingDataError(f"{path}:{number}: expected query id and text separated by a tab")
                queries[parts[0]] = parts[1]
    if not queries:
        raise TrainingDataError(f"queries file is empty: {path}")
    return queries


def _split(items: list, count: int, seed: int) -> tuple[list, list]:
    """(train, held out): `count` items held out at random, never more than a fifth."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    held = min(count, len(shuffled) // 5)
    return shuffled[held:], shuffled[:held]


def pairs_data(path: Path, config: TrainingConfig) -> TrainingData:
    """Training data from a pairs file; validation is on held-out groups (no first stage to compare with)."""
    groups = read_pairs(path)
    train, held = _split(groups, config.validation_queries, config.seed)
    return TrainingData(source=f"pairs:{Path(path).resolve()}", groups=train, validation_groups=held)


def _candidates(searcher: Searcher, query: str, depth: int) -> list:
    return searcher.search(query, k=depth, mode="hybrid", rerank=False).hits


def judged_validation(searcher: Searcher, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                      depth: int = DEFAULT_RERANK_DEPTH) -> list[ValidationQuery]:
    """Validation queries from judgments: the first stage's top `depth` for each judged query."""
    validation = []
    for query_id, relevant in qrels.items():
        text = queries.get(query_id, "").strip()
        if not text or not any(score > 0 for score in relevant.values()):
            continue
        hits = _candidates(searcher, text, depth)
        validation.append(ValidationQuery(text, tuple((h.doc_id, passage_text(h.title, h.passage)) for h in hits),
                                          dict(relevant)))
    return validation


def read_judgments(queries_path: Path, qrels_path: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Queries and the judgments of those queries (BEIR qrels TSV)."""
    queries = read_queries(queries_path)
    if not Path(qrels_path).is_file():
        raise TrainingDataError(f"qrels file not found: {qrels_path}")
    qrels = {q: docs for q, docs in read_qrels(Path(qrels_path)).items() if q in queries}
    if not qrels:
        raise TrainingDataError(f"no judged query in {qrels_path} is in {queries_path}")
    return queries, qrels


def judgments_data(searcher: Searcher, queries_path: Path, qrels_path: Path, config: TrainingConfig) -> TrainingData:
    """Positives from qrels, hard negatives from the index (first-stage hits not judged relevant)."""
    queries, qrels = read_judgments(queries_path, qrels_path)
    train_ids, held_ids = _split(sorted(qrels), config.validation_queries, config.seed)
    groups = []
    for query_id in train_ids:
        text = queries[query_id].strip()
        judged = qrels[query_id]
        if not text:
            continue
        hits = _candidates(searcher, text, MINING_DEPTH)
        by_id = {h.doc_id: passage_text(h.title, h.passage) for h in hits}
        positives = []
        for doc_id, score in judged.items():
            if score <= 0:
                continue
            if doc_id in by_id:
                positives.append(by_id[doc_id])
            elif (document := searcher.store.get_document(doc_id)) is not None:
                positives.append(passage_text(document.title, document.text))
        negatives = tuple(t for d, t in by_id.items() if d not in judged)
        if positives:
            groups.append(TrainingGroup(text, tuple(positives), negatives))
    if not groups:
        raise TrainingDataError(f"none of the documents judged relevant in {qrels_path} is in the index")
    validation = judged_validation(searcher, queries, {q: qrels[q] for q in held_ids})
    return TrainingData(source=f"qrels:{Path(qrels_path).resolve()}", groups=groups, validation_queries=validation)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from a document, and that document without the words the query was taken from."""

    query: str
    doc_id: str
    positive: Document

    @property
    def is_title(self) -> bool:
        return not self.positive.title


def pseudo_query(document: Document, rng: random.Random) -> PseudoQuery | None:
    """Inverse cloze: the title (half the time, when it has 3+ words) or one sentence of 5+ words becomes the
    query, and the document without it the positive, so the two share meaning but not the query's own words.
    None for documents too short to leave a meaningful rest (fewer than 3 sentences, and no usable title)."""
    sentences = [s for s in _SENTENCE.split(document.text.strip()) if len(s.split()) >= 5]
    use_title = len(document.title.split()) >= 3 and (len(sentences) < 3 or rng.random() < 0.5)
    if use_title and document.text.strip():
        return PseudoQuery(document.title, document.doc_id, dataclasses.replace(document, title=""))
    if len(sentences) < 3:
        return None
    chosen = rng.randrange(len(sentences))
    rest = " ".join(s for i, s in enumerate(sentences) if i != chosen)
    return PseudoQuery(sentences[chosen], document.doc_id, dataclasses.replace(document, text=rest))


def _reader_text(title: str, text: str, title_is_query: bool) -> str:
    """A passage as the reranker reads it; without titles in a group whose query is a title, so that a missing
    title never marks the positive."""
    return text if title_is_query else passage_text(title, text)


def pseudo_query_validation(searcher: Searcher, held: Sequence[PseudoQuery],
                            depth: int = DEFAULT_RERANK_DEPTH) -> list[ValidationQuery]:
    """Held-out pseudo-queries with a first stage that has not seen them.

    In the index, each source document still holds its query's sentence (or title), so retrieval finds it
    trivially and would beat any reranker. The first stage here is the same hybrid search run over a
    temporary index of the queries' candidate pools in which every source document is replaced by its
    positive (the document without the query's words). `searcher` must encode with torch (a `TextEncoder`): the
    temporary index is encoded with it.
    """
    from bertsearch.indexer.pipeline import Indexer  # applications may use the indexer; the core may not

    encoder = searcher.encoder
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"pseudo-query validation indexes passages: it needs a TextEncoder, not {type(encoder)}")
    pool: dict[str, Document] = {}
    for example in held:
        for hit in _candidates(searcher, example.query[:1000], MINING_DEPTH):
            if hit.doc_id not in pool and (document := searcher.store.get_document(hit.doc_id)) is not None:
                pool[hit.doc_id] = document
    pool.update({example.doc_id: example.positive for example in held})
    settings = dataclasses.replace(searcher.store.settings, backend="embedded", backend_options={})
    validation = []
    with tempfile.TemporaryDirectory(prefix="bertsearch-validation-") as folder:
        with create_store(Path(folder), settings) as store:
            Indexer(store, encoder, settings.chunking).index_documents(list(pool.values()))
            pool_searcher = Searcher(store, encoder)
            for example in held:
                hits = _candidates(pool_searcher, example.query[:1000], depth)
                candidates = tuple((h.doc_id, _reader_text(h.title, h.passage, example.is_title)) for h in hits)
                validation.append(ValidationQuery(example.query, candidates, {example.doc_id: 1}))
    return validation


def self_supervised_data(searcher: Searcher, config: TrainingConfig, max_documents: int = 2000,
                         validation: list[ValidationQuery] | None = None) -> TrainingData:
    """Pseudo-queries from up to `max_documents` indexed documents, with hard negatives from the index.

    Validation is on `validation` (judged queries) if given, else on held-out pseudo-queries checked
    against a first stage that has not seen them (`pseudo_query_validation`).
    """
    rng = random.Random(config.seed)
    doc_ids = sorted(searcher.store.stored_documents())
    if not doc_ids:
        raise TrainingDataError("the index holds no documents to train on")
    rng.shuffle(doc_ids)
    want_held = 0 if validation is not None else min(config.validation_queries, max_documents // 5)
    examples: list[PseudoQuery] = []
    for doc_id in doc_ids:
        if len(examples) >= max_documents + want_held:
            break
        document = searcher.store.get_document(doc_id)
        if document is not None and (example := pseudo_query(document, rng)) is not None:
            examples.append(example)
    held, training = examples[:want_held], examples[want_held:]
    groups = []
    for example in training:
        hits = _candidates(searcher, example.query[:1000], MINING_DEPTH)
        negatives = tuple(_reader_text(h.title, h.passage, example.is_title) for h in hits if h.doc_id != example.doc_id)
        positive = _reader_text(example.positive.title, example.positive.text, example.is_title)
        groups.append(TrainingGroup(example.query, (positive,), negatives))
    if not groups:
        raise TrainingDataError("no document in the index is long enough to make a pseudo-query from")
    if validation is None:
        validation = pseudo_query_validation(searcher, held)
    return TrainingData(source=f"self-supervised:{searcher.store.settings.model_fingerprint}", groups=groups,
                        validation_queries=validation)


# ---------------------------------------------------------------- validation


def rerank_check(cross_encoder: PairScorer, queries: Sequence[ValidationQuery]) -> RerankCheck:
    """nDCG@10 of the first stage, the reranker alone, and the best blend of the two (weight chosen here)."""
    qrels = {str(i): q.relevant for i, q in enumerate(queries)}
    ce_scores = [cross_encoder.score(q.query, [text for _, text in q.candidates]) for q in queries]

    def ndcg(weight: float) -> float:
        run = {}
        for i, (query, scores) in enumerate(zip(queries, ce_scores)):
            final = blend(scores, weight)
            order = sorted(range(len(final)), key=lambda j: (-final[j], j))
            run[str(i)] = {query.candidates[j][0]: float(len(order) - rank) for rank, j in enumerate(order)}
        return score_run(qrels, run)["nDCG@10"]

    by_weight = {w: ndcg(w) for w in BLEND_WEIGHTS}
    best = max(BLEND_WEIGHTS, key=lambda w: (by_weight[w], -w))
    depth = max((len(q.candidates) for q in queries), default=0)
    return RerankCheck(queries=len(queries), depth=depth, first_stage=round(by_weight[0.0], 4),
                       rerank_only=round(by_weight[1.0], 4), blend=round(by_weight[best], 4), blend_weight=best)


def pairwise_accuracy(cross_encoder: PairScorer, groups: Sequence[TrainingGroup]) -> float:
    """How often a held-out positive scores above a negative of the same query."""
    wins = total = 0
    for group in groups:
        if not group.negatives:
            continue
        scores = cross_encoder.score(group.query, [*group.positives, *group.negatives])
        pos, neg = scores[: len(group.positives)], scores[len(group.positives):]
        wins += int((pos[:, None] > neg[None, :]).sum())
        total += pos.size * neg.size
    return wins / total if total else 0.0


def validate(cross_encoder: PairScorer, data: TrainingData) -> tuple[float, RerankCheck | None]:
    """What checkpoints are chosen by: the best blend's nDCG@10 (with its check), or pairwise accuracy
    on held-out groups when there is no index."""
    if data.validation_queries:
        check = rerank_check(cross_encoder, data.validation_queries)
        return check.blend, check
    return pairwise_accuracy(cross_encoder, data.validation_groups), None


# ---------------------------------------------------------------- training


def _listwise_batch(groups: Sequence[TrainingGroup], all_passages: Sequence[str], negatives: int,
                    rng: random.Random) -> tuple[list[str], list[str], int]:
    """Queries and passages for a step: each group contributes one positive then `negatives` negatives
    (its own hard negatives first, topped up with random passages)."""
    queries, passages = [], []
    for group in groups:
        own = list(group.negatives)
        chosen = rng.sample(own, min(negatives, len(own)))
        while len(chosen) < negatives:
            extra = rng.choice(all_passages)
            if extra not in group.positives:
                chosen.append(extra)
        queries += [group.query] * (1 + negatives)
        passages += [rng.choice(group.positives), *chosen]
    return queries, passages, 1 + negatives


def _replace_folder(tmp: Path, output: Path) -> None:
    """Move the finished `tmp` folder to `output`, replacing an older reranker there."""
    old = output.with_name(f".{output.name}.old-{os.getpid()}")
    if output.exists():
        os.replace(output, old)
    os.replace(tmp, output)
    shutil.rmtree(old, ignore_errors=True)


def train_reranker(
    data: TrainingData,
    output: Path,
    base: str | Path | None = None,
    config: TrainingConfig = TrainingConfig(),
    progress: Callable[[TrainingProgress], None] | None = None,
    runtime: Runtime | None = None,
) -> RerankerMetadata:
    """Train a cross-encoder from `base` (default: the default model's BERT weights) and save it to `output`.

    The loss is a softmax over each query's positive and its negatives. The checkpoint that validates best
    is kept; at the end it is checked against the first stage and the folder is written to a temporary
    sibling and renamed into place, so an interrupted run never leaves a broken model folder.

    Args:
        data: training groups and validation data.
        output: the model folder to write (an older reranker there is replaced).
        base: BERT weights to start from.
        config: steps, batch, learning rate, max length.
        progress: called after every step.
    Returns:
        The metadata written to the folder.
    """
    import torch

    from bertsearch.models.cross_encoder import CrossEncoder

    output = Path(output).expanduser().resolve()
    if output.exists() and any(output.iterdir()) and not (output / METADATA_NAME).is_file():
        raise RerankerError(f"{output} exists and is not a reranker folder: choose a new --output")
    base_folder = resolve_model_path(base)
    runtime = runtime or select_runtime()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)

    scale, bias = reranker_head(base_folder)
    cross_encoder = CrossEncoder(base_folder, config.max_length, runtime, scale, bias)
    network = cross_encoder.network
    steps_per_epoch = math.ceil(len(data.groups) / config.groups_per_step)
    total = max(1, int(steps_per_epoch * config.epochs))
    if config.max_steps:
        total = min(total, config.max_steps)
    eval_every = config.eval_every or max(1, total // 4)
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in network.named_parameters() if n.startswith("bert.")], "weight_decay": 0.01},
        {"params": [network.scale, network.bias], "lr": config.learning_rate * 100, "weight_decay": 0.0},
    ], lr=config.learning_rate)
    warmup = max(1, int(total * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    scaler = torch.amp.GradScaler("cuda") if runtime.precision == "fp16" else None
    all_passages = [p for g in data.groups for p in (*g.positives, *g.negatives)]

    has_validation = bool(data.validation_queries or data.validation_groups)
    best_score, best_check = validate(cross_encoder, data) if has_validation else (float("-inf"), None)
    best_state, best_step = copy.deepcopy(network.state_dict()), 0
    history = [{"step": 0, "score": round(best_score, 4)}] if has_validation else []
    order: list[TrainingGroup] = []
    started = time.perf_counter()
    validation_seconds = 0.0
    for step in range(1, total + 1):
        network.train()
        batch = []
        for _ in range(config.groups_per_step):
            if not order:
                order = list(data.groups)
                rng.shuffle(order)
            batch.append(order.pop())
        queries, passages, width = _listwise_batch(batch, all_passages, config.negatives, rng)
        with runtime.autocast():
            scores = network(**cross_encoder.tokenize(queries, passages)).float().view(-1, width)
        loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(batch), dtype=torch.long,
                                                                     device=scores.device))
        optimizer.zero_grad()
        if scaler is not None:  # fp16 on CUDA: gradients are scaled, so unscale them before clipping
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
        scheduler.step()
        validated = None
        if has_validation and (step % eval_every == 0 or step == total):
            network.eval()
            validation_started = time.perf_counter()
            validated, check = validate(cross_encoder, data)
            validation_seconds += time.perf_counter() - validation_started
            history.append({"step": step, "score": round(validated, 4), "loss": round(loss.item(), 4)})
            if validated > best_score:
                best_score, best_check, best_step = validated, check, step
                best_state = copy.deepcopy(network.state_dict())
        elif not has_validation:
            best_state, best_step = network.state_dict(), step
        if progress:
            progress(TrainingProgress(step, total, loss.item(), time.perf_counter() - started, validated))
    seconds = time.perf_counter() - started

    network.load_state_dict(best_state)
    network.eval()
    validation = {"history": history, "best_step": best_step,
                  "best_score": round(best_score, 4) if has_validation else None}
    if data.validation_groups:
        validation["metric"] = "pairwise_accuracy"
        validation["groups"] = len(data.validation_groups)
    metadata = RerankerMetadata(
        base_model=str(base_folder), data_source=data.source, data_hash=data.data_hash, steps=best_step,
        max_length=config.max_length, scale=network.scale.item(), bias=network.bias.item(), check=best_check,
        validation=validation,
        training={**asdict(config), "groups": len(data.groups), "total_steps": total, "seconds": round(seconds, 1),
                  "validation_seconds": round(validation_seconds, 1),
                  "device": runtime.device, "precision": runtime.precision},
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        network.bert.save_pretrained(str(tmp))
        cross_encoder.tokenizer.save_pretrained(str(tmp))
        (tmp / METADATA_NAME).write_text(json.dumps(metadata.to_json(), indent=2))
        _replace_folder(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return metadata

