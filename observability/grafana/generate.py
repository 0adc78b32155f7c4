"""Write the Grafana dashboards in dashboards/ from the package slipstream_dashboards beside it.

    python observability/grafana/generate.py          # rewrite the JSON files
    python observability/grafana/generate.py --check  # exit 1 when a file differs

The JSON is generated so that three dozen panels keep one selector, one layout rule and one
style; the committed files are what Grafana provisions, and a test checks they equal this output.
Every query is driven by the `env` and `system` target labels: one panel serves the whole fleet.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
sys.path.insert(0, str(HERE))

from slipstream_dashboards import render  # noqa: E402  (found through the path set above)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, text in render().items():
        path = DASHBOARDS / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DASHBOARDS.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
