"""The synthetic probe: publish a marked event, read it back, record the round trip."""

from __future__ import annotations

import typer


def probe_command() -> None:
    """Publish a probe event, read it back and compare; record round-trip time and correctness."""
    raise typer.Exit(1)
