"""Settings of a process that serves the API, applied by what starts it (the CLI's `up` and
`api`, and the ASGI factory), never by the app: tests build many apps in one process.

What exists once the server has started (modules, the app, the catalog, the backends' clients)
lives as long as the process. Frozen, it is left out of full collections, which otherwise
rescan all of it and showed up as 40–60 ms pauses in the tail of read latency.

The switch interval is how long a thread that wants the GIL waits before the holder is asked to
let go. The event loop holds it while it serves requests; the store's lookup thread needs it for
a moment after every query to hand the rows over. At the default 5 ms the lookups queued up
behind the loop; at 0.5 ms reads by id served 15 % more requests per second with a lower p99 on
2 cores (docs/performance.md).
"""

from __future__ import annotations

import gc
import socket
import sys

import uvicorn

SWITCH_INTERVAL = 0.0005  # seconds


def tune_server_process() -> None:
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)


class TunedServer(uvicorn.Server):
    """uvicorn's server, which tunes the process once the app has started (its backends open,
    its heap in place) and before the first request."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            tune_server_process()
