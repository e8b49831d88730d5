"""Serve one component's Prometheus registry on `/metrics`.

Why a shared helper: the producers, the ksql engine and the loader each keep their counters in a
registry of their own (so several instances in one process, as in tests, never collide), and each
needs the same small thing around prometheus_client's HTTP server: loopback unless told otherwise
(servers bind 127.0.0.1 by default), port 0 meaning "no endpoint" (an operator who did not ask for a
port gets none), the port actually bound (for logs and tests), a clean stop, and an error that says
which address was refused instead of a bare `OSError`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

LOOPBACK = "127.0.0.1"


class MetricsEndpointError(OSError):
    """The /metrics endpoint could not bind its address (typically: the port is already in use)."""


@dataclass
class MetricsServer:
    """A running /metrics endpoint; `stop()` (or leaving the `with` block) closes it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop answering and release the port (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server, self._thread = None, None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_metrics(registry: CollectorRegistry, port: int, host: str = LOOPBACK) -> MetricsServer | None:
    """Serve `registry` at http://host:port/metrics from a daemon thread; None when `port` is 0.

    Raises `MetricsEndpointError` naming host and port when the address cannot be bound.
    """
    if port == 0:
        return None
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise MetricsEndpointError(f"cannot serve /metrics on {host}:{port}: {reason}") from None
    return MetricsServer(host, server.server_address[1], server, thread)
