"""common.metrics_http: one registry on /metrics, loopback by default, port 0 = off, clean stop."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from coinstream.common.metrics_http import MetricsEndpointError, serve_metrics
from coinstream.local_broker import free_port


def _registry(events: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("coinstream_test_events", "Events seen by the test", ["kind"], registry=registry)
    counter.labels("a").inc(events)
    return registry


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


def test_port_zero_serves_nothing():
    assert serve_metrics(_registry(1), 0) is None


def test_serves_only_its_registry_on_loopback_and_stops():
    port = free_port()
    with serve_metrics(_registry(3), port) as server:
        assert (server.host, server.port) == ("127.0.0.1", port)
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        samples = [line for line in _scrape(server.url).splitlines() if not line.startswith("#")]
        assert 'coinstream_test_events_total{kind="a"} 3.0' in samples
        # Only this registry: none of the global registry's process or platform collectors.
        assert {line.split("{")[0] for line in samples} == {
            "coinstream_test_events_total",
            "coinstream_test_events_created",
        }
    # Stopped: nothing listens on the port any more (SO_REUSEADDR: TIME_WAIT is not "in use").
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_a_busy_port_is_reported_with_its_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(MetricsEndpointError) as raised:
            serve_metrics(_registry(1), port)
    assert str(raised.value) == f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use"
