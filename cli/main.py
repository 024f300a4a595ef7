"""The `bertsearch` command: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from bertsearch.errors import BertsearchError
from bertsearch.settings import WRITE_BATCH_PASSAGES, ChunkingSettings
from bertsearch.stores import VECTOR_INDEX_TYPES
from bertsearch.stores.embedded.vectors import ANN_THRESHOLD, VECTOR_INDEX_CHOICES, VECTOR_INDEX_OPTION
from bertsearch.search import MODES, SearchResult
from bertsearch.cli.observe import dashboards, log_cli_query, stats
from bertsearch.cli.errors import error_line
from bertsearch.cli.options import PARTITION, Partition, backend_options, index_dir_option, json_option, \
    location_from
from bertsearch.cli.options import pop_backend_args as _backend_args, print_json as _print_json
from bertsearch.cli.rerankers import reranker, train_reranker
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
@click.option("--vector-index", type=click.Choice(VECTOR_INDEX_CHOICES), default=None,
              help=f"Vector index of a new embedded index: exact, ivf, ivf-sq8 (8-bit, 4x smaller) or auto (exact "
                   f"below {ANN_THRESHOLD:,} passages, ivf-sq8 above) [default: auto].")
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
          rebuild: bool, repair: bool, vector_index: str | None, es_vector_index: str | None, es_shards: int | None,
          es_replicas: int | None, as_json: bool, **backend: object) -> None:
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
                     ((VECTOR_INDEX_OPTION, vector_index), ("vector_index_type", es_vector_index),
                      ("shards", es_shards), ("replicas", es_replicas))
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
                   "resume it") if rebuild else ("they are not counted as indexed; fix the cause and re-run to "
                                                 "retry them")
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
    from bertsearch.evaluation import eval_index_dir, eval_index_name, evaluate_dataset, parse_pipelines
    from bertsearch.indexer.progress import progress_for_terminal

    dataset = load_beir(dataset_dir, split)
    backend_args = _backend_args(backend)
    backend_args["es_index"] = backend_args["es_index"] or eval_index_name(dataset)
    location = location_from(index_dir or eval_index_dir(dataset), backend_args)
    run = evaluate_dataset(location, dataset, parse_pipelines(pipelines), reranker_path, force, rerank_depth,
                           ignore_identical_ids, progress_for_terminal())
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


for command in (train_reranker, reranker, serve, stats, dashboards):
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
        click.echo(error_line(exc), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
