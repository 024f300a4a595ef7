"""`bertsearch train-reranker` and `bertsearch reranker use`: train a cross-encoder; have an index rerank with it."""

from __future__ import annotations

from pathlib import Path

import click

from bertsearch.cli.options import index_dir_option, json_option, print_json
from bertsearch.rerank import DEFAULT_MAX_LENGTH
from bertsearch.settings import default_index_dir


PSEUDO_QUERY_CAVEAT = (
    "note: this reranker was checked on pseudo-queries made from the corpus only, never on real queries, so its "
    "blend weight is kept low; to check it properly, train it again with a few dozen of your own judged queries: "
    "bertsearch train-reranker --self-supervised --queries FILE --qrels FILE ...")


@click.command(name="train-reranker")
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path),
              help="JSONL/TSV of (query, passage, label 0/1) or (query, positive, negative).")
@index_dir_option
@click.option("--queries", "queries_path", type=click.Path(path_type=Path),
              help="BEIR queries (JSONL) or TSV id, text.")
@click.option("--qrels", "qrels_path", type=click.Path(path_type=Path), help="BEIR qrels TSV: positives for --queries.")
@click.option("--self-supervised", is_flag=True,
              help="Pseudo-queries from the indexed documents (a title or sentence for the rest of its document).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write.")
@click.option("--base", type=click.Path(path_type=Path),
              help="BERT weights to start from [default: the default model].")
@click.option("--epochs", type=click.FloatRange(0.01, 100), default=None,
              help="Passes over the training queries [default: 3 for judgments and pairs, 1 for --self-supervised, "
                   "whose 2,000 pseudo-queries make about as many steps].")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many steps.")
@click.option("--groups-per-step", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Queries per step, each with one positive and --negatives negatives.")
@click.option("--negatives", type=click.IntRange(1, 64), default=7, show_default=True)
@click.option("--lr", "learning_rate", type=click.FloatRange(1e-7, 1.0), default=3e-5, show_default=True)
@click.option("--max-length", type=click.IntRange(16, 512), default=DEFAULT_MAX_LENGTH, show_default=True,
              help="Word pieces of query + passage.")
@click.option("--validation-queries", type=click.IntRange(1), default=100, show_default=True,
              help="Held-out queries to validate on (at most a fifth of the data).")
@click.option("--max-documents", type=click.IntRange(1), default=2000, show_default=True,
              help="With --self-supervised: documents to make pseudo-queries from.")
@click.option("--eval-every", type=click.IntRange(1), help="Validate every N steps [default: 4 times per run].")
@json_option
def train_reranker(pairs_path: Path | None, index_dir: Path | None, queries_path: Path | None,
                   qrels_path: Path | None, self_supervised: bool, output: Path, base: Path | None,
                   epochs: float | None,
                   max_steps: int | None, groups_per_step: int, negatives: int, learning_rate: float,
                   max_length: int, validation_queries: int, max_documents: int, eval_every: int | None,
                   as_json: bool) -> None:
    """Train a cross-encoder reranker from labelled pairs, from judgments against an index, or self-supervised.

    With an index, training ends with a check on held-out queries: first stage alone against the reranker
    and a blend of both; the model folder records it, and a reranker that does not help is refused at use.
    """
    from bertsearch.rerank import prepare_query_reranker
    from bertsearch.reranker_sources import DEFAULT_EPOCHS, TrainingSourceError, choose_source
    from bertsearch.training import TrainingConfig, training_data
    from bertsearch.training import train_reranker as train

    try:
        source = choose_source(pairs_path, queries_path, qrels_path, self_supervised)
    except TrainingSourceError as exc:  # a usage error, worded with the flags as click words its own
        raise click.UsageError("give exactly one of --pairs FILE, --queries FILE --qrels FILE, or --self-supervised"
                               if "pairs" in exc.settings else "--queries and --qrels go together") from None
    if epochs is None:
        epochs = DEFAULT_EPOCHS[source]
    patience = None
    if source == "self-supervised":
        from bertsearch.training.self_supervised import (
            SELF_SUPERVISED_EVAL_EVERY,
            SELF_SUPERVISED_MAX_STEPS,
            SELF_SUPERVISED_PATIENCE,
        )
        max_steps, eval_every = max_steps or SELF_SUPERVISED_MAX_STEPS, eval_every or SELF_SUPERVISED_EVAL_EVERY
        patience = SELF_SUPERVISED_PATIENCE
    config = TrainingConfig(epochs=epochs, max_steps=max_steps, groups_per_step=groups_per_step, negatives=negatives,
                            learning_rate=learning_rate, max_length=max_length, eval_every=eval_every,
                            validation_queries=validation_queries, patience=patience)
    data = training_data(config, pairs_path, index_dir or default_index_dir(), queries_path, qrels_path,
                         self_supervised, max_documents)
    click.echo(f"training on {len(data.groups)} queries from {data.source}", err=True)

    def report(progress) -> None:  # noqa: ANN001 - a TrainingProgress
        if progress.step == 1 or progress.step % 10 == 0 or progress.validation is not None or \
                progress.step == progress.total_steps:
            line = (f"step {progress.step}/{progress.total_steps}  loss {progress.loss:.4f}  "
                    f"{progress.elapsed_s / progress.step:.2f} s/step  ETA {progress.eta_s / 60:.1f} min")
            if progress.validation is not None:
                line += f"  validation {progress.validation:.4f}"
            click.echo(line, err=True)

    metadata = train(data, output, base, config, report)
    prepare_query_reranker(output)
    if as_json:
        print_json(metadata.to_json())
        return
    best = metadata.validation["best_score"]
    click.echo(f"saved {output} (step {metadata.steps}" + (f", validation {best:.4f})" if best is not None else ")"))
    check = metadata.check
    if check is None:
        click.echo("not checked against first-stage retrieval (no index): using it needs --force")
    else:
        verdict = "helps" if check.helps else "does NOT help: it will be refused without --force"
        click.echo(f"check on {check.queries} validation queries, top {check.depth}: first stage nDCG@10 "
                   f"{check.first_stage:.4f}, reranker alone {check.rerank_only:.4f}, blend "
                   f"(weight {check.blend_weight:.2f}) {check.blend:.4f}: {verdict}")
        if not check.judged:
            click.echo(PSEUDO_QUERY_CAVEAT)


@click.group()
def reranker() -> None:
    """The reranker an index uses."""


@reranker.command(name="use")
@click.argument("path", type=click.Path(path_type=Path))
@index_dir_option
@click.option("--depth", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="First-stage hits to rerank.")
@click.option("--force", is_flag=True, help="Use it even if its check says it does not help.")
def reranker_use(path: Path, index_dir: Path | None, depth: int, force: bool) -> None:
    """Rerank this index's queries with the reranker at PATH."""
    from bertsearch.rerank import use_reranker

    folder = index_dir or default_index_dir()
    metadata = use_reranker(folder, path, force, depth)
    check = metadata.check
    detail = f"; validation nDCG@10 {check.first_stage:.4f} → {check.blend:.4f}" if check else ""
    click.echo(f"{folder} now reranks the top {depth} hits with {path}{detail}")
    if check is not None and not check.judged:
        click.echo(PSEUDO_QUERY_CAVEAT)
