"""Options and helpers shared by the command modules: where the index lives, and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

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


def secret_option(name: str, envvar: str, what: str, description: str | None = None):  # noqa: ANN201 - a decorator
    """`--NAME` for a secret (`what`, which `description` may say more about), also read from `envvar`, and
    `--NAME-file FILE`, which reads it from a file; pass both values to `secret_from`. Typed on the command line, it
    works but warns: every user of the machine can read a process's arguments (`ps`, /proc/PID/cmdline)."""

    def warn_if_typed(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            click.echo(f"warning: --{name} on the command line can be read by every user of this machine "
                       f"(ps, /proc/PID/cmdline); set ${envvar} or use --{name}-file instead", err=True)
        return value

    def decorate(command):  # noqa: ANN001, ANN202 - a click command
        command = click.option(f"--{name}-file", type=click.Path(dir_okay=False, path_type=Path),
                               help=f"Read {what} from this file (its first line).")(command)
        described = description or f"{what[0].upper()}{what[1:]}."
        return click.option(f"--{name}", envvar=envvar, callback=warn_if_typed,
                            help=f"{described} [env {envvar}: better there or in --{name}-file than typed, where "
                                 "other users can see it]")(command)

    return decorate


def secret_from(value: str | None, file: Path | None, name: str) -> str | None:
    """The secret given as `--NAME` (or its variable) or in `--NAME-file`, whichever was given; both is an error."""
    if file is None:
        return value
    if value:
        raise click.UsageError(f"give --{name} or --{name}-file, not both")
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read --{name}-file {file}: {getattr(exc, 'strerror', None) or exc}") from None
    if not lines or not lines[0].strip():
        raise click.UsageError(f"--{name}-file {file} is empty")
    return lines[0].strip()


def backend_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """Where the index lives. Secrets are best given by environment variable or file, never shown in output."""
    options = [
        click.option("--backend", type=click.Choice(BACKENDS), default=None,
                     help="Store [default: as recorded in --index-dir, else embedded]."),
        click.option("--es-url", envvar="BERTSEARCH_ES_URL", help="Elasticsearch URL [env BERTSEARCH_ES_URL]."),
        click.option("--es-index", envvar="BERTSEARCH_ES_INDEX",
                     help="Elasticsearch index (alias) name [default: bertsearch]."),
        click.option("--es-username", envvar="BERTSEARCH_ES_USERNAME", help="[env BERTSEARCH_ES_USERNAME]"),
        secret_option("es-password", "BERTSEARCH_ES_PASSWORD", "the Elasticsearch password"),
        secret_option("es-api-key", "BERTSEARCH_ES_API_KEY", "an Elasticsearch API key"),
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
        es_password=secret_from(backend_args["es_password"], backend_args["es_password_file"], "es-password"),
        es_api_key=secret_from(backend_args["es_api_key"], backend_args["es_api_key_file"], "es-api-key"),
        es_ca_certs=backend_args["es_ca_certs"],
        es_verify_certs=not backend_args["es_no_verify"],
    )


def pop_backend_args(kwargs: dict) -> dict:
    """Take the `backend_options` values out of a command's keyword arguments."""
    names = ("backend", "es_url", "es_index", "es_username", "es_password", "es_password_file", "es_api_key",
             "es_api_key_file", "es_ca_certs", "es_no_verify")
    return {name: kwargs.pop(name) for name in names}


def print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))

