"""The training loop: a listwise softmax over each query's positive and its negatives, validated as it goes."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bertsearch.device import Runtime, select_runtime
from bertsearch.models.loading import resolve_model_path
from bertsearch.rerank import RerankerMetadata, reranker_head
from bertsearch.training.artifact import check_output_folder, save_reranker
from bertsearch.training.config import TrainingConfig
from bertsearch.training.data import TrainingData, TrainingGroup
from bertsearch.training.validation import validate


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
    is kept (training stops early after `config.patience` validations without a better one); at the end it is
    checked against the first stage and the folder is written to a temporary sibling and renamed into place, so
    an interrupted run never leaves a broken model folder.

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

    output = check_output_folder(output)
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
    stale, stopped_at = 0, None  # validations in a row without improvement; the step training stopped early at
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
                stale = 0
            else:
                stale += 1
        elif not has_validation:
            best_state, best_step = network.state_dict(), step
        if progress:
            progress(TrainingProgress(step, total, loss.item(), time.perf_counter() - started, validated))
        if config.patience is not None and stale >= config.patience:
            stopped_at = step
            break
    seconds = time.perf_counter() - started

    network.load_state_dict(best_state)
    network.eval()
    validation = {"history": history, "best_step": best_step, "stopped_early_at": stopped_at,
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
    save_reranker(network.bert, cross_encoder.tokenizer, metadata, output)
    return metadata
