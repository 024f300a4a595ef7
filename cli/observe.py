"""Watching search: `bertsearch stats`, `bertsearch dashboards install`, and the query log hook of `query`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from rich.console import Console, JustifyMethod
from rich.table import Table

from bertsearch.cli.options import backend_options, index_dir_option, json_option, location_from, pop_backend_args, \
    print_json, secret_from, secret_option
from bertsearch.errors import BertsearchError
from bertsearch.querystats import QueryStats
from bertsearch.search import SearchResult
from bertsearch.stores import Store, StoreLocation

BAR_WIDTH = 40
MAX_BUCKETS_SHOWN = 48


def log_cli_query(result: SearchResult, k: int, location: StoreLocation, store: Store) -> None:
    """Log a `bertsearch query` as configured by $BERTSEARCH_QUERY_LOG; a failure is a warning, never an error."""
    from bertsearch.querylog import open_query_log, query_event, query_log_mode

    mode = query_log_mode()
    if mode == "off":
        return
    try:
        log = open_query_log(location)
        try:
            log.write([query_event(result, k, location, origin="cli", hash_key=log.hash_key() if mode == "hashed"
                                   else None, index_stats=store.stats())])
        finally:
            log.close()
    except BertsearchError as exc:
        click.echo(f"warning: query not logged: {exc}", err=True)


@click.command()
@index_dir_option
@backend_options
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Only queries of the last DAYS days.")
@json_option
def stats(index_dir: Path | None, days: float, as_json: bool, **backend: object) -> None:
    """The index's size and its query log's figures: queries over time, latency per stage, zero results, reranking."""
    from bertsearch.querylog import open_query_log
    from bertsearch.querystats import read_query_stats
    from bertsearch.stores import open_store

    location = location_from(index_dir, pop_backend_args(backend))
    since = datetime.now(timezone.utc) - timedelta(days=days)
    with open_store(location) as store:
        index = store.stats()
    log = open_query_log(location, read_only=True)
    try:
        figures = read_query_stats(log, index, since)
    finally:
        log.close()
    if as_json:
        print_json(figures.to_dict())
        return
    _print_stats(figures, days)


def _print_stats(figures: QueryStats, days: float) -> None:
    console = Console(highlight=False, soft_wrap=True)
    index = figures.index
    if index is not None:
        size = index.details.get("bytes_on_disk")
        console.print(f"[bold]index[/bold] ({index.backend}): {index.documents:,} documents, "
                      f"{index.passages:,} passages"
                      + (f", {size / 1e6:,.1f} MB on disk" if size is not None else ""))
    console.print(f"[bold]queries[/bold] in the last {days:g} days: {figures.queries_in_window:,}"
                  + (f" ({', '.join(f'{mode} {n}' for mode, n in figures.modes.items())})" if figures.modes else ""))
    if figures.queries_in_window > figures.queries:
        console.print(f"  [yellow]the figures below come from the newest {figures.queries:,} of them[/yellow]")
    if not figures.queries:
        return
    console.print(f"\n[bold]queries per {figures.bucket}[/bold] (red: no results)")
    buckets = figures.over_time[-MAX_BUCKETS_SHOWN:]
    most = max(bucket.queries for bucket in buckets) or 1
    for bucket in buckets:
        label = bucket.start.strftime("%Y-%m-%d %Hh" if figures.bucket == "hour" else "%Y-%m-%d")
        zero = round(BAR_WIDTH * bucket.zero_results / most)
        rest = round(BAR_WIDTH * bucket.queries / most) - zero
        console.print(f"  {label}  [red]{'█' * zero}[/red][blue]{'█' * rest}[/blue] {bucket.queries}"
                      + (f" ({bucket.zero_results} with no results)" if bucket.zero_results else ""))
    latency = Table(title="latency per stage (ms)", title_justify="left", box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("stage", "left"), ("queries", "right"), ("p50", "right"), ("p95", "right"), ("", "left"))
    for name, justify in columns:
        latency.add_column(name, justify=justify)
    slowest = max(stage.p95_ms for stage in figures.latency) or 1.0
    for stage in figures.latency:
        latency.add_row(stage.stage, str(stage.queries), f"{stage.p50_ms:.1f}", f"{stage.p95_ms:.1f}",
                        "[blue]" + "▇" * max(1, round(BAR_WIDTH * stage.p95_ms / slowest)) + "[/blue]")
    console.print()
    console.print(latency)
    console.print(f"\n[bold]zero-result rate[/bold]: {100 * (figures.zero_result_rate or 0):.1f}%")
    for query, count in figures.top_zero_result_queries:
        console.print(f"  {count:>5}  {query}")
    rerank = figures.rerank
    console.print(f"\n[bold]reranking[/bold]: {rerank.queries} queries ({100 * rerank.share:.1f}%)")
    if rerank.queries:
        changed = "–" if rerank.changed_top_rate is None else f"{100 * rerank.changed_top_rate:.1f}%"
        mean_rank = "–" if rerank.mean_top_first_stage_rank is None else f"{rerank.mean_top_first_stage_rank:.2f}"
        console.print(f"  top hit changed in {changed} of them; the new top hit's mean first-stage rank {mean_rank}")
        if rerank.p50_ms is not None:
            console.print(f"  rerank latency p50 {rerank.p50_ms:.1f} ms, p95 {rerank.p95_ms:.1f} ms")


@click.group()
def dashboards() -> None:
    """Kibana dashboards over the query log (Elasticsearch backend)."""


@dashboards.command(name="install")
@click.option("--kibana-url", envvar="BERTSEARCH_KIBANA_URL", required=True,
              help="Kibana's base URL, e.g. http://localhost:5601 [env BERTSEARCH_KIBANA_URL].")
@click.option("--space", help="Kibana space to import into [default: the default space].")
@click.option("--kibana-username", envvar="BERTSEARCH_KIBANA_USERNAME",
              help="[env BERTSEARCH_KIBANA_USERNAME, else BERTSEARCH_ES_USERNAME]")
@secret_option("kibana-password", "BERTSEARCH_KIBANA_PASSWORD", "Kibana's password (else $BERTSEARCH_ES_PASSWORD)")
@secret_option("kibana-api-key", "BERTSEARCH_KIBANA_API_KEY", "a Kibana API key")
@click.option("--ca-certs", type=click.Path(dir_okay=False), help="CA bundle for an https Kibana.")
@click.option("--no-verify", is_flag=True, help="Do not verify Kibana's TLS certificate.")
@click.option("--no-overwrite", is_flag=True, help="Keep objects that already exist instead of replacing them.")
@json_option
def dashboards_install(kibana_url: str, space: str | None, kibana_username: str | None, kibana_password: str | None,
                       kibana_password_file: Path | None, kibana_api_key: str | None, kibana_api_key_file: Path | None,
                       ca_certs: str | None, no_verify: bool, no_overwrite: bool, as_json: bool) -> None:
    """Import the bertsearch dashboards (data view, visualizations, dashboard) into Kibana."""
    import os

    from bertsearch.dashboards.kibana import KibanaConnection, install_dashboards

    kibana_password = secret_from(kibana_password, kibana_password_file, "kibana-password")
    kibana_api_key = secret_from(kibana_api_key, kibana_api_key_file, "kibana-api-key")

    if kibana_username is None and kibana_api_key is None and os.environ.get("BERTSEARCH_ES_USERNAME"):
        kibana_username = os.environ["BERTSEARCH_ES_USERNAME"]
        kibana_password = kibana_password or os.environ.get("BERTSEARCH_ES_PASSWORD")
    kibana = KibanaConnection(url=kibana_url, username=kibana_username, password=kibana_password,
                              api_key=kibana_api_key, space=space, ca_certs=ca_certs, verify_certs=not no_verify)
    result = install_dashboards(kibana, overwrite=not no_overwrite)
    if as_json:
        print_json({"imported": result.imported, "sent": result.sent, "url": result.url})
        return
    click.echo(f"imported {result.imported} of {result.sent} saved objects into Kibana at {result.url}: "
               "open Dashboards → \"bertsearch: search health\"")
