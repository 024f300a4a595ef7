"""Options and helpers shared by the command modules: where the index lives, and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bertsearch.indexer.partition import Partition, parse_partition
from bertsearch.settings import default_index_dir
from bertsearch.stores import BACKENDS, StoreLocation, resolve_location

index_dir_option = click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Index folder [default: $BERTSEARCH_INDEX_DIR or ./.bertsearch].",
)


class PartitionType(click.ParamType):
    """`I/N`: partition I of N of a corpus (see bertsearch.indexer.partition)."""

    name = "I/N"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Partition:
        if isinstance(value, Partition):
            return value
        try:
            return parse_partition(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


PARTITION = PartitionType()
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


def pop_backend_args(kwargs: dict) -> dict:
    """Take the `backend_options` values out of a command's keyword arguments."""
    names = ("backend", "es_url", "es_index", "es_username", "es_password", "es_api_key", "es_ca_certs", "es_no_verify")
    return {name: kwargs.pop(name) for name in names}


def print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
