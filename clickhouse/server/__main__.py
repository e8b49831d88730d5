"""`python -m coinstream.clickhouse.server [--port N] [--path DIR]`: the embedded server without the CLI shell.

Users and passwords come from the settings (CLICKHOUSE_USER, CLICKHOUSE_PASSWORD,
CLICKHOUSE_READONLY_USER, CLICKHOUSE_READONLY_PASSWORD), never from the command line, so they do
not show up in process listings; passwords not set there are generated on the first start and
kept in the data directory (common/local_credentials.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from coinstream.clickhouse.server.engine import EngineStartError, ensure_utc_process


def main(argv: list[str] | None = None) -> int:
    ensure_utc_process()  # before anything can load chDB
    from coinstream.clickhouse.server.runner import ServerConfig, options_from_settings, serve, users_from_settings
    from coinstream.common.logging_setup import configure_logging
    from coinstream.common.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"clickhouse server: {error}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m coinstream.clickhouse.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.clickhouse_port, help="0 = any free port")
    parser.add_argument("--path", type=Path, default=settings.clickhouse_data_dir)
    parser.add_argument("--workers", type=int, default=8, help="chDB calls running at once (full user)")
    parser.add_argument(
        "--readonly-workers", type=int, default=4, help="chDB calls running at once for read-only users (dashboards)"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=256 << 20, help="largest request body, as sent and after decompression"
    )
    parser.add_argument(
        "--max-sessions-per-user", type=int, default=100, help="ClickHouse HTTP sessions one user may hold at once"
    )
    parser.add_argument("--port-file", type=Path, default=None, help="write the bound port here")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="shut down when the parent process exits (used by the test launcher)",
    )
    args = parser.parse_args(argv)
    configure_logging(settings.log_level, component="clickhouse")
    path = args.path.resolve()
    config = ServerConfig(
        path=path,
        users=users_from_settings(settings, path),
        host=args.host,
        port=args.port,
        max_workers=args.workers,
        readonly_workers=args.readonly_workers,
        port_file=args.port_file,
        exit_with_parent=args.exit_with_parent,
        options=dataclasses.replace(
            options_from_settings(settings, args.host, args.max_body_bytes),
            max_sessions_per_user=args.max_sessions_per_user,
        ),
    )
    try:
        serve(config)
    except EngineStartError as error:
        print(f"clickhouse server: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"clickhouse server: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
