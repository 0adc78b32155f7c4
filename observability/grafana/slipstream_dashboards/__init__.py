"""The Slipstream Grafana dashboards, as code; generate.py beside this package writes them."""

from __future__ import annotations

import json

from slipstream_dashboards.fleet import fleet
from slipstream_dashboards.overview import overview


def render() -> dict[str, str]:
    """File name → JSON text, sorted keys and a final newline so the output is byte-stable."""
    return {
        f"{board['uid']}.json": json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False)
        + "\n"
        for board in (overview(), fleet())
    }
