"""What the `slipstream` commands share: the error line, settings or a clean exit, the key a
client command sends."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from slipstream.config import Settings, load_settings, revealed
from slipstream.errors import ConfigError

console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


def client_key(given: str | None, settings: Settings) -> str | None:
    """The key a client command sends: --api-key, else SLIPSTREAM_CLIENT_KEY. The former
    variable (SLIPSTREAM_API_KEY, a letter away from the server's SLIPSTREAM_API_KEYS) still
    works for now, with a warning, so that scripts written against it keep running while they
    are renamed."""
    key = given or revealed(settings.client_key)
    former = revealed(settings.api_key)
    if key is None and former is not None:
        console.print(
            "[yellow]warning:[/] SLIPSTREAM_API_KEY is now SLIPSTREAM_CLIENT_KEY (the server's "
            "keys are SLIPSTREAM_API_KEYS); rename it, the old name will stop working",
            highlight=False,
        )
        return former
    return key


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        fail(str(exc))
