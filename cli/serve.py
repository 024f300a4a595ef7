"""`bertsearch serve`: the HTTP API and the search and stats pages, over one index."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import click

from bertsearch.errors import BertsearchError
from bertsearch.cli.options import backend_options, index_dir_option, location_from, pop_backend_args, secret_from, \
    secret_option
from bertsearch.querylog import QUERY_LOG_ENV, QUERY_LOG_MODES, query_log_mode

DEFAULT_PORT = 8000


@click.command()
@index_dir_option
@backend_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes the index to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--reranker", "reranker_path", type=click.Path(path_type=Path),
              help="A reranker folder instead of the index's own (bertsearch reranker use).")
@click.option("--rerank-depth", type=click.IntRange(1, 1000), default=None,
              help="First-stage hits to rerank [default: as recorded, else 20].")
@click.option("--force", is_flag=True, help="Use the reranker even if its check says it does not help.")
@secret_option("api-key", "BERTSEARCH_API_KEY", "the API key",
               "Require this key (Authorization: Bearer KEY, or X-API-Key) for writes.")
@click.option("--protect-reads", is_flag=True, help="Require the API key for searches and reads too.")
@click.option("--query-log", type=click.Choice(QUERY_LOG_MODES), default=None,
              help=f"Log every query (hashed: a digest instead of the text) [default: ${QUERY_LOG_ENV}, else on].")
@click.option("--search-timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Seconds a request may wait for the model before it is answered 503.")
@click.option("--body-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a request's body may take to arrive; a slower one is answered 408 and disconnected.")
def serve(index_dir: Path | None, host: str, port: int, reranker_path: Path | None, rerank_depth: int | None,
          force: bool, api_key: str | None, api_key_file: Path | None, protect_reads: bool, query_log: str | None,
          search_timeout: float, body_timeout: float, **backend: object) -> None:
    """Serve the index over HTTP: the API (schema at /openapi.json), a search page at /, stats at /stats.

    Models load once, before the port answers. One worker runs all model work, batching concurrent queries.
    """
    import uvicorn

    from bertsearch.server.app import create_app
    from bertsearch.server.service import SearchService, ServiceSettings

    api_key = secret_from(api_key, api_key_file, "api-key")
    if protect_reads and not api_key:
        raise click.UsageError("--protect-reads needs --api-key-file, BERTSEARCH_API_KEY or --api-key")
    listener = _listen(host, port)  # before loading models: a taken port fails in a second, not after a minute
    try:
        settings = ServiceSettings(
            location=location_from(index_dir, pop_backend_args(backend)),
            reranker_path=reranker_path,
            rerank_depth=rerank_depth,
            force_reranker=force,
            query_log=query_log_mode(query_log),
            search_timeout=search_timeout,
            body_timeout=body_timeout,
            api_key=api_key,
            protect_reads=protect_reads,
        )
        service = SearchService(settings)
    except BaseException:
        listener.close()
        raise
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _is_loopback(host) and not api_key:
        click.echo(f"warning: listening on {host} without an API key: anyone who reaches it can change the index",
                   err=True)
    if service.store.read_only:
        click.echo(f"warning: {settings.location.describe()} is read-only: searches work, writes are refused (409)",
                   err=True)
    if service.query_log_problem:
        click.echo(f"warning: queries are not logged: {service.query_log_problem}", err=True)
    logged = settings.query_log if service.query_log is not None else "off"
    click.echo(f"serving {settings.location.describe()} at http://{_url_host(host)}:{port}/ "
               f"(API /api, schema /openapi.json, stats /stats; query log {logged})", err=True)
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port`, or a one-line error saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BertsearchError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise BertsearchError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return listener


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
