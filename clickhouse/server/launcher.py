"""Run the embedded ClickHouse server as a child process: for tests, benchmarks and the local stack.

Why a subprocess: chDB allows one engine per process and one process per data directory, so a test
(or a supervisor) that wants a server next to its own chDB-free code starts one, talks HTTP to it
with clickhouse-connect like any client, and stops it. The server binds port 0 and reports the
port it got through a file, so there is no race between picking a free port and binding it.

    server = start_server(tmp_path / "ch")
    try:
        client = server.client()
        ...
    finally:
        server.stop()

or `with start_server(path) as server: ...`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

from coinstream.common.processes import terminate
from coinstream.common.readiness import NotReady, ProcessExited, wait_until_ready

_REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_USER = "default"
DEFAULT_READONLY_USER = "dashboard"


class ServerStartError(RuntimeError):
    """The server process exited or did not answer /ping in time; carries its log's tail."""


@dataclass
class RunningServer:
    """A server child process and how to reach it. Stop it with `stop()` (or use `with`)."""

    process: subprocess.Popen
    path: Path
    host: str
    port: int
    user: str
    password: str
    readonly_user: str
    readonly_password: str
    log_path: Path
    _log_file: Any = field(default=None, repr=False)
    _scratch: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The base URL, without credentials."""
        return f"http://{self.host}:{self.port}"

    def dsn(self, readonly: bool = False, database: str = "default") -> str:
        """A CLICKHOUSE_URL-style DSN with credentials (keep it out of logs)."""
        from urllib.parse import quote

        user, password = self.credentials(readonly)
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{database}"

    def credentials(self, readonly: bool = False) -> tuple[str, str]:
        return (self.readonly_user, self.readonly_password) if readonly else (self.user, self.password)

    def client(self, readonly: bool = False, **kwargs: Any) -> Client:
        """A clickhouse-connect client for this server (full user, or the read-only one)."""
        import clickhouse_connect

        user, password = self.credentials(readonly)
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": user,
            "password": password,
        }
        options.update(kwargs)
        return clickhouse_connect.get_client(**options)

    def env(self, readonly: bool = False, database: str = "default") -> dict[str, str]:
        """Environment variables pointing coinstream's settings at this server."""
        return {"CLICKHOUSE_URL": self.dsn(readonly, database)}

    def ping(self, timeout: float = 1.0) -> bool:
        return _ping(self.url, timeout)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time. Idempotent."""
        code = terminate(self.process, timeout)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs in the server."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        self._close_log()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (available until `stop()` unless `log_path` was given)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._scratch is not None:
            # The scratch directory holds the port file, and the log unless one was asked for.
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _ping(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200 and response.read().startswith(b"Ok.")
    except (urllib.error.URLError, OSError):
        return False


def start_server(
    path: Path | str,
    *,
    port: int = 0,
    user: str = DEFAULT_USER,
    password: str | None = None,
    readonly_user: str = DEFAULT_READONLY_USER,
    readonly_password: str | None = None,
    workers: int = 8,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    startup_timeout: float = 60.0,
) -> RunningServer:
    """Start `python -m coinstream.clickhouse.server` on 127.0.0.1 owning `path`; return once /ping answers.

    `port=0` (the default) lets the server pick a free port; `extra_args` go to its command line
    (`--max-body-bytes N`, `--readonly-workers N`, `--max-sessions-per-user N`). Credentials are passed through the
    child's environment (the settings), never on its command line; passwords not given are
    generated here. The child runs in a scratch working directory so a developer's `.env` cannot
    change what a test gets.
    """
    password = password or secrets.token_urlsafe(18)
    readonly_password = readonly_password or secrets.token_urlsafe(18)
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ch-server-"))
    port_file = scratch / "port"
    log_path = Path(log_path) if log_path else scratch / "server.log"
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("CLICKHOUSE_")}
    child_env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
            "TZ": "UTC",
            "CLICKHOUSE_USER": user,
            "CLICKHOUSE_PASSWORD": password,
            "CLICKHOUSE_READONLY_USER": readonly_user,
            "CLICKHOUSE_READONLY_PASSWORD": readonly_password,
        }
    )
    child_env.update(env or {})
    command = [
        sys.executable,
        "-m",
        "coinstream.clickhouse.server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--path",
        str(path),
        "--workers",
        str(workers),
        "--port-file",
        str(port_file),
        "--exit-with-parent",
        *extra_args,
    ]
    log_file = open(log_path, "ab")  # noqa: SIM115 -- kept open by RunningServer, closed on stop
    process = subprocess.Popen(
        command,
        cwd=scratch,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(
        process,
        path,
        "127.0.0.1",
        port,
        user,
        password,
        readonly_user,
        readonly_password,
        log_path,
        log_file,
        scratch,
    )

    def answers() -> bool:
        text = port_file.read_text().strip() if port_file.exists() else ""
        if not text.isdigit():
            return False
        server.port = int(text)
        return server.ping(timeout=1.0)

    try:
        wait_until_ready(answers, startup_timeout, process)
    except ProcessExited as exited:
        tail = server.log_tail()
        server._close_log()
        raise ServerStartError(f"ClickHouse server exited with code {exited.returncode}:\n{tail}") from None
    except NotReady:
        tail = server.log_tail()
        server.kill()
        raise ServerStartError(
            f"ClickHouse server did not answer /ping within {startup_timeout:g} s:\n{tail}"
        ) from None
    return server
