"""The synthetic probe: publish a marked event, read it back, compare, record the round trip."""

from __future__ import annotations

from slipstream.probe.command import probe_command

__all__ = ["probe_command"]
