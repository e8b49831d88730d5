"""Serve the local dashboard on 127.0.0.1 until SIGTERM or Ctrl-C.

Why not `web.run_app`: the command must print the address it actually bound (with `--port 0` the
operating system picks the port, which tests and supervisors read from that line), and stop the
live streams before waiting for handlers, so a stop takes well under a second.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable

from aiohttp import web

from coinstream.dashboard.app import create_app
from coinstream.dashboard.data import CardSource
from coinstream.metabase.spec import DashboardSpec

SHUTDOWN_TIMEOUT_S = 5.0


async def serve(
    spec: DashboardSpec,
    source: CardSource,
    host: str,
    port: int,
    interval_s: float,
    announce: Callable[[str], None],
    allowed_origins: Iterable[str] = (),
) -> None:
    """Run until a stop signal; call `announce(url)` once the socket listens.

    Requests must name loopback or `host` in their `Host` header, and carry no `Origin` but the
    page's own or one of `allowed_origins` (see `common.http_guard`).
    """
    app = create_app(spec, source, interval_s, extra_hosts=(host,), allowed_origins=allowed_origins)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        announce(f"http://{bound_host}:{bound_port}/")
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
