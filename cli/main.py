"""The `bertsearch` command: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from bertsearch.errors import BertsearchError
from bertsearch.indexer.pipeline import WRITE_BATCH_PASSAGES
from bertsearch.settings import ChunkingSettings, default_index_dir
from bertsearch.stores import BACKENDS, StoreLocation, resolve_location
from bertsearch.search import MODES
from bertsearch.text import highlight_spans, query_terms, snippet

index_dir_option = click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Index folder [default: $BERTSEARCH_INDEX_DIR or ./.bertsearch].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


def backend_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """Where the index lives. Secrets are best given by environment variable, never shown in output."""
    options = [
        click.option("--backend", type=click.Choice(BACKENDS), default=None,
                     help="Store [default: as recorded in --index-dir, else embedded]."),
        click.option("--es-url", envvar="BERTSEARCH_ES_URL", help="Elasticsearch URL [env BERTSEARCH_ES_URL]."),
        click.option("--es-index", envvar="BERTSEARCH_ES_INDEX", help="Elasticsearch index (alias) name [default: bertsearch]."),
        click.option("--es-username", envvar="BERTSEARCH_ES_USERNAME", help="[env BERTSEARCH_ES_USERNAME]"),
        click.option("--es-password", envvar="BERTSEARCH_ES_PASSWORD", help="[env BERTSEARCH_ES_PASSWORD]"),
        click.option("--es-api-key", envvar="BERTSEARCH_ES_API_KEY", help="[env BERTSEARCH_ES_API_KEY]"),
        click.option("--es-ca-certs", envvar="BERTSEARCH_ES_CA_CERTS", type=click.Path(dir_okay=False),
                     help="CA bundle for https [env BERTSEARCH_ES_CA_CERTS]."),
        click.option("--es-no-verify", is_flag=True, help="Do not verify the cluster's TLS certificate."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def location_from(index_dir: Path | None, backend_args: dict) -> StoreLocation:
    """The store the options point at; `index_dir` defaults to $BERTSEARCH_INDEX_DIR or ./.bertsearch."""
    return resolve_location(
        index_dir or default_index_dir(),
        backend=backend_args["backend"],
        es_url=backend_args["es_url"],
        es_index=backend_args["es_index"],
        es_username=backend_args["es_username"],
        es_password=backend_args["es_password"],
        es_api_key=backend_args["es_api_key"],
        es_ca_certs=backend_args["es_ca_certs"],
        es_verify_certs=not backend_args["es_no_verify"],
    )


def _backend_args(kwargs: dict) -> dict:
    names = ("backend", "es_url", "es_index", "es_username", "es_password", "es_api_key", "es_ca_certs", "es_no_verify")
    return {name: kwargs.pop(name) for name in names}


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bertsearch")
def cli() -> None:
    """Semantic search over your own documents."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_dir_option
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A sentence-transformers model folder.")
@click.option("--chunk-tokens", type=click.IntRange(16, 8192), help="Maximum word pieces per passage (new indexes).")
@click.option("--chunk-overlap", type=click.IntRange(0, 4096), help="Word pieces repeated between passages.")
@click.option("--prune", is_flag=True, help="Remove indexed documents whose source file vanished.")
@click.option("--batch-passages", type=click.IntRange(1, 1_000_000), default=WRITE_BATCH_PASSAGES, show_default=True,
              help="Passages encoded and committed together; a killed run loses at most one batch.")
@backend_options
@json_option
def index(paths: tuple[Path, ...], index_dir: Path | None, model_path: Path | None, chunk_tokens: int | None,
          chunk_overlap: int | None, prune: bool, batch_passages: int, as_json: bool, **backend: object) -> None:
    """Index files and folders (recursively): new and changed documents are encoded, the rest skipped."""
    from bertsearch.indexer.pipeline import Indexer, open_index_for_writing
    from bertsearch.indexer.progress import progress_for_terminal
    from bertsearch.indexer.readers import check_paths_exist

    chunking = None
    if chunk_tokens is not None or chunk_overlap is not None:
        defaults = ChunkingSettings()
        chunking = ChunkingSettings(
            max_tokens=chunk_tokens if chunk_tokens is not None else defaults.max_tokens,
            overlap_tokens=chunk_overlap if chunk_overlap is not None else defaults.overlap_tokens,
        )
    check_paths_exist(paths)
    location = location_from(index_dir, _backend_args(backend))
    store, encoder, chunking = open_index_for_writing(location, model_path, chunking)
    with store:
        indexer = Indexer(store, encoder, chunking, progress_for_terminal(), batch_passages=batch_passages,
                          exclude=[location.index_dir])
        summary = indexer.index(list(paths), prune=prune)
    if as_json:
        _print_json(summary.to_dict())
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"{summary.documents_seen} documents: {summary.documents_added} added, {summary.documents_updated} updated, "
        f"{summary.documents_unchanged} unchanged, {summary.documents_removed} removed, "
        f"{summary.documents_skipped} skipped; {summary.passages_encoded} passages encoded in {summary.seconds:.1f}s"
    )
    for skipped in summary.skipped[:20]:
        console.print(f"  skipped {skipped['path']}: {skipped['reason']}")
    if len(summary.skipped) > 20:
        console.print(f"  … and {len(summary.skipped) - 20} more (see --json)")


@cli.command()
@click.argument("text")
@index_dir_option
@click.option("-k", "k", default=10, show_default=True, type=int, help="Number of documents to return.")
@click.option("--mode", default="hybrid", show_default=True, help=f"Retriever: {', '.join(MODES)}.")
@click.option("--source-prefix", help="Only documents whose source path starts with this.")
@backend_options
@json_option
def query(text: str, index_dir: Path | None, k: int, mode: str, source_prefix: str | None, as_json: bool,
          **backend: object) -> None:
    """Search the index: dense, BM25, or hybrid (reciprocal rank fusion of both)."""
    from bertsearch.search import open_searcher, validate_query
    from bertsearch.stores import SearchFilter

    validate_query(text, k, mode)  # before loading anything, so bad input fails fast
    searcher = open_searcher(location_from(index_dir, _backend_args(backend)))
    with searcher.store:
        result = searcher.search(text, k=k, mode=mode, filter=SearchFilter(source_prefix=source_prefix))
    if as_json:
        _print_json(result.to_dict())
        return
    console = Console(highlight=False, soft_wrap=True)
    if not result.hits:
        console.print("no results")
        return
    terms = query_terms(text)
    for rank, hit in enumerate(result.hits, start=1):
        console.print(Text.assemble((f"{rank:>2}. ", "bold"), (hit.title or hit.doc_id, "bold cyan"),
                                    (f"  [{hit.doc_id}]  score {hit.score:.4f}", "dim")))
        excerpt = Text("    " + snippet(hit.passage, terms))
        for start, end in highlight_spans(excerpt.plain, terms):
            excerpt.stylize("bold yellow", start, end)
        console.print(excerpt)
        if hit.source:
            console.print(Text(f"    {hit.source}", style="dim"))


@cli.command(name="eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to evaluate.")
@index_dir_option
@click.option("--pipelines", default=",".join(MODES), show_default=True, help="Comma-separated pipelines to run.")
@click.option("--ignore-identical-ids", is_flag=True, help="Drop hits whose id equals the query id (BEIR convention).")
@backend_options
@json_option
def eval_command(dataset_dir: Path, split: str, index_dir: Path | None, pipelines: str, ignore_identical_ids: bool,
                 as_json: bool, **backend: object) -> None:
    """Evaluate relevance on a BEIR-format dataset: nDCG@10, RR@10, R@100 and latency per pipeline."""
    from bertsearch.evaluation import evaluate, load_beir
    from bertsearch.indexer.pipeline import Indexer, open_index_for_writing
    from bertsearch.indexer.progress import progress_for_terminal
    from bertsearch.search import Searcher

    chosen = tuple(p.strip() for p in pipelines.split(",") if p.strip())
    unknown = [p for p in chosen if p not in MODES]
    if unknown or not chosen:
        raise BertsearchError(f"unknown pipeline {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
    dataset = load_beir(dataset_dir, split)
    backend_args = _backend_args(backend)
    backend_args["es_index"] = backend_args["es_index"] or f"bertsearch-eval-{dataset.name.lower()}"
    location = location_from(index_dir or default_index_dir() / "eval" / dataset.name, backend_args)
    store, encoder, chunking = open_index_for_writing(location)
    with store:
        summary = Indexer(store, encoder, chunking, progress_for_terminal()).index([dataset.corpus_path], prune=True)
        if not as_json:
            click.echo(f"index {location.describe()}: {summary.passages_encoded} passages encoded, "
                       f"{summary.documents_unchanged} documents unchanged", err=True)
        results = evaluate(Searcher(store, encoder), dataset, chosen, ignore_identical_ids)
    if as_json:
        _print_json(results)
        return
    console = Console(highlight=False, soft_wrap=True)
    names = list(next(iter(results.values())).keys())
    console.print(f"{dataset.name} ({split}, {len(dataset.queries)} queries)")
    console.print("pipeline  " + "  ".join(f"{n:>14}" for n in names))
    for pipeline, metrics in results.items():
        console.print(f"{pipeline:<8}  " + "  ".join(f"{metrics[n]:>14.4f}" for n in names))


def main() -> None:
    """Entry point: user-facing failures become one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(standalone_mode=False, prog_name="bertsearch")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("error: interrupted (every batch written so far is kept; re-run to resume)", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except BertsearchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
