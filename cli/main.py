"""The `bertsearch` command: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from bertsearch.errors import BertsearchError
from bertsearch.settings import WRITE_BATCH_PASSAGES, ChunkingSettings, default_index_dir
from bertsearch.stores import VECTOR_INDEX_TYPES
from bertsearch.rerank import DEFAULT_MAX_LENGTH
from bertsearch.search import MODES, SearchResult
from bertsearch.cli.observe import dashboards, log_cli_query, stats
from bertsearch.cli.options import PARTITION, Partition, backend_options, index_dir_option, json_option, \
    location_from, remedy
from bertsearch.cli.options import pop_backend_args as _backend_args, print_json as _print_json
from bertsearch.cli.serve import serve

# Imported by commands when they run, never at start-up: `--help`, `--version` and argument errors answer at once.
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "faiss", "elasticsearch", "fastapi", "pypdf",
                 "onnxruntime")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bertsearch")
@click.pass_context
def cli(context: click.Context) -> None:
    """Semantic search over your own documents."""
    if context.invoked_subcommand != "serve":  # the server logs with timestamps, to its own log
        _print_library_notes()


class _NoteFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kind = "note" if record.levelno < logging.WARNING else "warning"
        return f"{kind}: {record.getMessage()}"


def _print_library_notes() -> None:
    """The library's notes and warnings (a model that runs on torch and why, a damaged file) as one stderr line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoteFormatter())
    library = logging.getLogger("bertsearch")
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    library.propagate = False


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_dir_option
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A sentence-transformers model folder.")
@click.option("--chunk-tokens", type=click.IntRange(16, 8192), help="Maximum word pieces per passage (new indexes).")
@click.option("--chunk-overlap", type=click.IntRange(0, 4096), help="Word pieces repeated between passages.")
@click.option("--prune", is_flag=True, help="Remove indexed documents whose source file vanished.")
@click.option("--batch-passages", type=click.IntRange(1, 1_000_000), default=WRITE_BATCH_PASSAGES, show_default=True,
              help="Passages encoded and committed together; a killed run loses at most one batch.")
@click.option("--partition", type=PARTITION, default=None,
              help="Index (and --prune) only partition I of N of the documents, by a stable hash of their ids, I from "
                   "1 to N: N runs at once, e.g. one per machine, fill one Elasticsearch index.")
@click.option("--rebuild", is_flag=True,
              help="Build a new index from PATHS alone (e.g. with a new --model or --chunk-tokens) beside the live "
                   "one, and swap it in when complete; queries use the old one until then. Elasticsearch only.")
@click.option("--repair", is_flag=True,
              help="If the index's database is damaged, keep it aside and rebuild the index from PATHS, reusing "
                   "every vector still readable in it. Embedded store only.")
@click.option("--es-vector-index", type=click.Choice(VECTOR_INDEX_TYPES), default=None,
              help="Vector index of a new Elasticsearch index: hnsw (float32 graph), int8_hnsw (quantised, ~4x less "
                   "memory) or flat (exact scan of every vector) [default: hnsw].")
@click.option("--es-shards", type=click.IntRange(1, 1024), default=None,
              help="Primary shards of a new Elasticsearch index [default: 1].")
@click.option("--es-replicas", type=click.IntRange(0, 64), default=None,
              help="Replicas of a new Elasticsearch index [default: 0, or 1 once a second node joins].")
@backend_options
@json_option
def index(paths: tuple[Path, ...], index_dir: Path | None, model_path: Path | None, chunk_tokens: int | None,
          chunk_overlap: int | None, prune: bool, batch_passages: int, partition: Partition | None,
          rebuild: bool, repair: bool, es_vector_index: str | None, es_shards: int | None, es_replicas: int | None,
          as_json: bool, **backend: object) -> None:
    """Index files and folders (recursively): new and changed documents are encoded, the rest skipped.

    Documents that could not be stored are listed, and the command exits non-zero; the next run retries them.
    """
    from bertsearch.indexer.pipeline import index_paths
    from bertsearch.indexer.progress import progress_for_terminal
    from bertsearch.indexer.readers import check_paths_exist

    chunking = None
    if chunk_tokens is not None or chunk_overlap is not None:
        defaults = ChunkingSettings()
        chunking = ChunkingSettings(
            max_tokens=chunk_tokens if chunk_tokens is not None else defaults.max_tokens,
            overlap_tokens=chunk_overlap if chunk_overlap is not None else defaults.overlap_tokens,
        )
    index_options = {name: value for name, value in
                     (("vector_index_type", es_vector_index), ("shards", es_shards), ("replicas", es_replicas))
                     if value is not None}
    if rebuild and partition is not None:
        raise click.UsageError("--rebuild builds the whole new index in one run; it cannot take --partition")
    check_paths_exist(paths)
    location = location_from(index_dir, _backend_args(backend))
    if repair:
        from bertsearch.stores import repair_store

        repaired = repair_store(location)
        click.echo(f"repairing {location.describe()}: the damaged database ({repaired.problem}) is kept as "
                   f"{repaired.moved_to}; {repaired.vectors_salvaged} passage vectors saved from it for reuse"
                   if repaired else f"{location.describe()}: the database is not damaged, nothing to repair", err=True)
    summary = index_paths(location, paths, model_path, chunking, index_options, progress_for_terminal(),
                          batch_passages, prune=prune, rebuild=rebuild, partition=partition)
    if as_json:
        _print_json(summary.to_dict())
    else:
        console = _console()
        console.print(
            f"{summary.documents_seen} documents: {summary.documents_added} added, {summary.documents_updated} "
            f"updated, {summary.documents_unchanged} unchanged, {summary.documents_removed} removed, "
            f"{summary.documents_skipped} skipped, {summary.documents_failed} failed"
            + (f", {summary.documents_in_other_partitions} in other partitions" if partition is not None else "")
            + f"; {summary.passages_encoded} passages encoded"
            + (f", {summary.passages_reused} reused" if summary.passages_reused else "")
            + f" in {summary.seconds:.1f}s"
        )
        for kind, entries, name in (("skipped", summary.skipped, "path"), ("failed", summary.failed, "doc_id")):
            for entry in entries[:20]:
                console.print(f"  {kind} {entry[name]}: {entry['reason']}")
            if len(entries) > 20:
                console.print(f"  … and {len(entries) - 20} more {kind} (see --json)")
        if summary.rebuilt:
            console.print(f"rebuilt: {location.describe()} now serves the new index")
    if summary.documents_failed:
        first = summary.failed[0]
        outcome = ("the rebuild was not swapped in, queries still use the old index; fix the cause and re-run to "
                   "resume it") if rebuild else "they are not counted as indexed; fix the cause and re-run to retry them"
        raise BertsearchError(f"{summary.documents_failed} document(s) not stored, first {first['doc_id']!r}: "
                              f"{first['reason']}; {outcome}")


@cli.command()
@click.argument("text")
@index_dir_option
@click.option("-k", "k", default=10, show_default=True, type=int, help="Number of documents to return.")
@click.option("--mode", default="hybrid", show_default=True, help=f"Retriever: {', '.join(MODES)}.")
@click.option("--source-prefix", help="Only documents whose source path starts with this.")
@click.option("--rerank/--no-rerank", default=None,
              help="Rerank the top hits with the cross-encoder [default: if the index has a reranker].")
@click.option("--rerank-depth", type=click.IntRange(1, 1000), default=None,
              help="How many first-stage hits to rerank [default: as recorded, else 20].")
@click.option("--reranker", type=click.Path(path_type=Path),
              help="A reranker folder (bertsearch train-reranker) instead of the index's.")
@click.option("--force", is_flag=True, help="Use a reranker even if its check says it does not help.")
@click.option("--url", envvar="BERTSEARCH_URL",
              help="Send the query to a running `bertsearch serve` at this URL, e.g. http://127.0.0.1:8000, instead "
                   "of opening an index [env BERTSEARCH_URL; API key from BERTSEARCH_API_KEY].")
@backend_options
@json_option
def query(text: str, index_dir: Path | None, k: int, mode: str, source_prefix: str | None, rerank: bool | None,
          rerank_depth: int | None, reranker: Path | None, force: bool, url: str | None, as_json: bool,
          **backend: object) -> None:
    """Search the index: dense, BM25, or hybrid (reciprocal rank fusion of both), then rerank if configured."""
    from bertsearch.search import validate_query
    from bertsearch.stores import SearchFilter

    validate_query(text, k, mode)  # before loading anything, so bad input fails fast
    search_filter = SearchFilter(source_prefix=source_prefix)
    if url:
        from bertsearch.server.client import search_server

        context = click.get_current_context()
        local = [f"--{name.replace('_', '-')}" for name in _LOCAL_INDEX_OPTIONS
                 if context.get_parameter_source(name) == ParameterSource.COMMANDLINE]
        if local:
            raise click.UsageError(f"{', '.join(local)} cannot be used with --url: the server searches its own index "
                                   "with its own reranker")
        result = search_server(url, text, k, mode, search_filter, rerank)
    else:
        from bertsearch.search import open_searcher

        location = location_from(index_dir, _backend_args(backend))
        searcher = open_searcher(location, reranker_path=reranker, force_reranker=force, rerank_depth=rerank_depth)
        with searcher.store:
            result = searcher.search(text, k=k, mode=mode, filter=search_filter, rerank=rerank)
            log_cli_query(result, k, location, searcher.store)
    if as_json:
        _print_json(result.to_dict())
    else:
        _print_hits(result)


# Options of `query` that describe a local index or reranker: meaningless for a query sent to a server.
_LOCAL_INDEX_OPTIONS = ("index_dir", "rerank_depth", "reranker", "force", "backend", "es_url", "es_index")


def _console():  # noqa: ANN202 - a rich Console (rich is imported only by commands that print with it)
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _print_hits(result: SearchResult) -> None:
    from rich.text import Text

    from bertsearch.text import query_terms, snippet

    console = _console()
    if not result.hits:
        console.print("no results")
        return
    terms = query_terms(result.query)
    indent = "    "
    for rank, hit in enumerate(result.hits, start=1):
        console.print(Text.assemble((f"{rank:>2}. ", "bold"), (hit.title or hit.doc_id, "bold cyan"),
                                    (f"  [{hit.doc_id}]  score {hit.score:.4f}", "dim"),
                                    (f"  rerank {hit.scores.rerank:.3f}" if hit.scores.rerank is not None else "",
                                     "dim")))
        excerpt = snippet(hit.passage, terms)
        line = Text(indent + excerpt.text)
        for start, end in excerpt.highlights:
            line.stylize("bold yellow", start + len(indent), end + len(indent))
        console.print(line)
        if hit.source:
            console.print(Text(f"{indent}{hit.source}", style="dim"))


@cli.command(name="eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to evaluate.")
@index_dir_option
@click.option("--pipelines", default=",".join(MODES), show_default=True, help="Comma-separated pipelines to run.")
@click.option("--ignore-identical-ids", is_flag=True, help="Drop hits whose id equals the query id (BEIR convention).")
@click.option("--reranker", "reranker_path", type=click.Path(path_type=Path),
              help="A reranker folder [default: the one the index uses, if any]; adds the hybrid+rerank and "
                   "dense+rerank pipelines.")
@click.option("--rerank-depth", type=click.IntRange(1, 1000), default=None,
              help="First-stage hits to rerank [default: as recorded, else 20].")
@click.option("--force", is_flag=True, help="Use the reranker even if its check says it does not help.")
@backend_options
@json_option
def eval_command(dataset_dir: Path, split: str, index_dir: Path | None, pipelines: str, ignore_identical_ids: bool,
                 reranker_path: Path | None, rerank_depth: int | None, force: bool, as_json: bool,
                 **backend: object) -> None:
    """Evaluate relevance on a BEIR-format dataset: nDCG@10, RR@10, R@100 and latency per pipeline."""
    from bertsearch.beir import load_beir
    from bertsearch.evaluation import evaluate_dataset
    from bertsearch.indexer.progress import progress_for_terminal

    dataset = load_beir(dataset_dir, split)
    backend_args = _backend_args(backend)
    backend_args["es_index"] = backend_args["es_index"] or f"bertsearch-eval-{dataset.name.lower()}"
    location = location_from(index_dir or default_index_dir() / "eval" / dataset.name, backend_args)
    chosen = [p.strip() for p in pipelines.split(",") if p.strip()]
    run = evaluate_dataset(location, dataset, chosen, reranker_path, force, rerank_depth, ignore_identical_ids,
                           progress_for_terminal())
    if as_json:
        _print_json(run.results)
        return
    click.echo(f"index {location.describe()}: {run.index.passages_encoded} passages encoded, "
               f"{run.index.documents_unchanged} documents unchanged", err=True)
    console = _console()
    names = list(next(iter(run.results.values())).keys())
    console.print(f"{dataset.name} ({split}, {len(dataset.queries)} queries)")
    console.print(f"{'pipeline':<14}  " + "  ".join(f"{n:>14}" for n in names))
    for pipeline, metrics in run.results.items():
        console.print(f"{pipeline:<14}  " + "  ".join(f"{metrics[n]:>14.4f}" for n in names))


PSEUDO_QUERY_CAVEAT = (
    "note: this reranker was checked on pseudo-queries made from the corpus only, never on real queries, so its "
    "blend weight is kept low; to check it properly, train it again with a few dozen of your own judged queries: "
    "bertsearch train-reranker --self-supervised --queries FILE --qrels FILE ...")


@cli.command(name="train-reranker")
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path),
              help="JSONL/TSV of (query, passage, label 0/1) or (query, positive, negative).")
@index_dir_option
@click.option("--queries", "queries_path", type=click.Path(path_type=Path), help="BEIR queries (JSONL) or TSV id, text.")
@click.option("--qrels", "qrels_path", type=click.Path(path_type=Path), help="BEIR qrels TSV: positives for --queries.")
@click.option("--self-supervised", is_flag=True,
              help="Pseudo-queries from the indexed documents (a title or sentence for the rest of its document).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Model folder to write.")
@click.option("--base", type=click.Path(path_type=Path), help="BERT weights to start from [default: the default model].")
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
                   qrels_path: Path | None, self_supervised: bool, output: Path, base: Path | None, epochs: float | None,
                   max_steps: int | None, groups_per_step: int, negatives: int, learning_rate: float,
                   max_length: int, validation_queries: int, max_documents: int, eval_every: int | None,
                   as_json: bool) -> None:
    """Train a cross-encoder reranker from labelled pairs, from judgments against an index, or self-supervised.

    With an index, training ends with a check on held-out queries: first stage alone against the reranker
    and a blend of both; the model folder records it, and a reranker that does not help is refused at use.
    """
    from bertsearch.rerank import prepare_query_reranker
    from bertsearch.training import TrainingConfig, training_data
    from bertsearch.training import train_reranker as train

    sources = [pairs_path is not None, queries_path is not None and not self_supervised, self_supervised]
    if sum(sources) != 1:
        raise click.UsageError("give exactly one of --pairs FILE, --queries FILE --qrels FILE, or --self-supervised")
    if (queries_path is None) != (qrels_path is None):
        raise click.UsageError("--queries and --qrels go together")
    if epochs is None:
        epochs = 1.0 if self_supervised else 3.0
    patience = None
    if self_supervised:
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
        _print_json(metadata.to_json())
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


@cli.group()
def reranker() -> None:
    """The reranker an index uses."""


@reranker.command(name="use")
@click.argument("path", type=click.Path(path_type=Path))
@index_dir_option
@click.option("--depth", type=click.IntRange(1, 1000), default=20, show_default=True, help="First-stage hits to rerank.")
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


for command in (serve, stats, dashboards):
    cli.add_command(command)


def main() -> None:
    """Entry point: user-facing failures become one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(standalone_mode=False, prog_name="bertsearch")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("error: interrupted; nothing already written is lost (indexing resumes where it stopped, "
                   "training writes its model only when it completes)", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except BertsearchError as exc:
        click.echo(f"error: {exc}{remedy(exc)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
