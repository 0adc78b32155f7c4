"""`slipstream slo …`: turn the SLO spec into Prometheus rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

slo_app = typer.Typer(
    help="Service level objectives: generate Prometheus rules from the spec.",
    no_args_is_help=True,
)


@slo_app.callback()
def slo() -> None:
    """Service level objectives: generate Prometheus rules from the spec."""
    # A callback keeps `generate` a subcommand even while it is the only one.


EXIT_STALE = 1
EXIT_BAD_INPUT = 2


def _shown(path: Path) -> str:
    """The path as the header and messages show it: relative to the working directory when
    inside it, so a generation does not depend on where the checkout lives."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return os.fspath(absolute)


@slo_app.command()
def generate(
    spec: Annotated[Path, typer.Option(help="The SLO spec")] = Path("observability/slo/slos.yaml"),
    out: Annotated[Path, typer.Option(help="Directory for the rule files")] = Path(
        "observability/prometheus/rules"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a rule file is stale")
    ] = False,
) -> None:
    """Write recording rules and burn-rate alerts from the SLO spec."""
    from slipstream.slo.rules import render
    from slipstream.slo.spec import SpecError, load_spec

    try:
        files = render(load_spec(spec), _shown(spec))
    except SpecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if check:
        stale = [name for name, text in files.items() if _read(out / name) != text]
        for name in stale:
            typer.echo(
                f"stale: {_shown(out / name)} differs from a fresh generation from "
                f"{_shown(spec)}; run `slipstream slo generate` and commit the result",
                err=True,
            )
        if stale:
            raise typer.Exit(EXIT_STALE)
        typer.echo(f"up to date: {', '.join(_shown(out / n) for n in files)}")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            typer.echo(f"wrote {_shown(out / name)}")
    except OSError as exc:
        typer.echo(
            f"error: cannot write to {_shown(out)} ({exc.strerror}); pass --out DIR", err=True
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
