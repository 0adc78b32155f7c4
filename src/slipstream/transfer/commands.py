"""`slipstream export` (and, with it, the bulk transfers' commands): thin typer commands over
their modules."""

from __future__ import annotations

from typing import Annotated

import typer

from slipstream.cli_support import client_key, console, fail, settings_or_exit
from slipstream.errors import ConfigError


def export_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. flights")],
    output: Annotated[
        str, typer.Argument(help="A file, - for standard output, or s3://BUCKET/KEY")
    ],
    since: Annotated[str | None, typer.Option(help="Event time from (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option(help="Event time up to, excluded (RFC 3339)")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="FIELD=VALUE: only events whose field is the value")
    ] = None,
    format: Annotated[str, typer.Option(help="parquet or ndjson")] = "parquet",
    url: Annotated[str, typer.Option(help="Base URL of a running API")] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Key with the read scope [default: SLIPSTREAM_CLIENT_KEY]"),
    ] = None,
) -> None:
    """Write a dataset's events (a time range, filters) from a running API as Parquet or NDJSON."""
    from slipstream.transfer.download import FORMATS, ExportFailed, export, export_url, parameters

    if format not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        params = parameters(since, until, where or [])
        key = client_key(api_key, settings_or_exit())
        outcome = export(export_url(url, dataset), params, output, format, key)
    except (ConfigError, ExportFailed) as exc:
        fail(str(exc))
    if output != "-":
        console.print(f"wrote {outcome.size:,} bytes of {format} to {output}", highlight=False)
