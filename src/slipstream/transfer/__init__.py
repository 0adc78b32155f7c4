"""Bulk transfers between a deployment and files: export (and import)."""

from __future__ import annotations

from slipstream.transfer.commands import export_command, import_command

__all__ = ["export_command", "import_command"]
