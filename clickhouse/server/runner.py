"""Start and stop the embedded ClickHouse HTTP server: engine, users, listening socket, signals.

Both entry points use this: `coinstream clickhouse serve` (the operator's command) and
`python -m coinstream.clickhouse.server` (what the test launcher runs, since a stage must not import
the shell, `coinstream.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from coinstream.clickhouse.server.app import DEFAULT_MAX_BODY_BYTES, ServerOptions
from coinstream.clickhouse.server.auth import User, UserDirectory
from coinstream.clickhouse.server.engine import EngineStartError
from coinstream.common.local_credentials import ensure_credentials
from coinstream.common.settings import Settings, setting_default

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """What the server needs to run; `port=0` picks a free port (written to `port_file`)."""

    path: Path
    users: tuple[User, ...]
    host: str = "127.0.0.1"
    port: int = setting_default("clickhouse_port")
    max_workers: int = 8
    readonly_workers: int = 4
    port_file: Path | None = None
    exit_with_parent: bool = False  # stop when the process that started it dies (tests)
    options: ServerOptions = field(default_factory=ServerOptions)


def users_from_settings(settings: Settings, data_path: Path) -> tuple[User, ...]:
    """The full user and the read-only dashboard user: names from the settings, passwords from the
    settings when set there, else generated on the first start and stored in `data_path`."""
    stored = ensure_credentials(data_path)
    password = settings.clickhouse_password.get_secret_value() or stored.password
    readonly_password = settings.clickhouse_readonly_password.get_secret_value() or stored.readonly_password
    return (
        User(settings.clickhouse_user, password, readonly=False),
        User(settings.clickhouse_readonly_user, readonly_password, readonly=True),
    )


def options_from_settings(settings: Settings, host: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> ServerOptions:
    """The server's protections: allowed web origins from the settings, its own bind host."""
    return ServerOptions(
        max_body_bytes=max_body_bytes,
        allowed_origins=settings.http_allowed_origins,
        extra_hosts=(host,),
    )


async def serve_async(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives, then shut down cleanly."""
    from coinstream.clickhouse.server.app import build_app
    from coinstream.clickhouse.server.engine import Engine

    engine = Engine(config.path, max_workers=config.max_workers, readonly_workers=config.readonly_workers)
    if engine.timezone != "UTC":  # chDB was loaded before TZ could be set (the pipeline stores UTC)
        log.warning("the ClickHouse server time zone is %s, not UTC", engine.timezone)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    watchdog = asyncio.create_task(_watch_parent(stop)) if config.exit_with_parent else None
    if any(not user.password for user in config.users):
        raise EngineStartError("every ClickHouse user needs a password (the embedded server never runs one without)")
    app = build_app(engine, UserDirectory(list(config.users)), options=config.options)
    runner = web.AppRunner(
        app,
        access_log=None,
        auto_decompress=False,
        handle_signals=False,
        shutdown_timeout=5.0,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the bound port when port=0
        port = sockets[0].getsockname()[1] if sockets else config.port
        if config.port_file is not None:
            temporary = config.port_file.with_suffix(".tmp")
            temporary.write_text(str(port))
            os.replace(temporary, config.port_file)
        log.info(
            "ClickHouse HTTP interface on http://%s:%s (chDB %s, data in %s, users: %s)",
            config.host,
            port,
            engine.version,
            engine.path,
            ", ".join(u.name for u in config.users),
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await runner.cleanup()
        engine.close()


async def _watch_parent(stop: asyncio.Event) -> None:
    """Set `stop` once the parent process is gone (we get re-parented), so no test leaves an orphan."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            log.warning("parent process %s exited: shutting down", parent)
            stop.set()


def serve(config: ServerConfig) -> None:
    """Blocking entry point."""
    asyncio.run(serve_async(config))
