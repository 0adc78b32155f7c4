"""`slipstream slo …`: turn the SLO spec into Prometheus rules."""

from __future__ import annotations

import typer

slo_app = typer.Typer(help="Service level objectives: generate Prometheus rules from the spec.")


@slo_app.command()
def generate() -> None:
    """Write recording rules and burn-rate alerts from observability/slo/slos.yaml."""
    raise typer.Exit(1)
