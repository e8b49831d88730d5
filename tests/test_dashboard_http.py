"""`coinstream dashboard` over HTTP: the spec, the bundled plotly.js, the live stream, its errors, its stop.

The browser test (test_dashboard_browser.py) checks the rendering; these check the server's
contract with plain HTTP: what `/api/stream` sends for a coin and timeframe (the exact candles of the
known dataset), that bad input is refused before any query, that an unreachable ClickHouse is
reported on the stream without the password, and that SIGTERM ends the process with a stream open.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from coinstream.dashboard.vendor import plotly_js_path, plotly_js_version
from coinstream.metabase.spec import load_spec
from tests.fixtures_clickhouse import TEST_READONLY_PASSWORD
from tests.fixtures_dashboard import start_dashboard

pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_dashboard"]


@pytest.fixture(scope="module")
def dashboard(clickhouse_server: Any, known_dataset_database: str, tmp_path_factory):
    process = start_dashboard(
        clickhouse_server, known_dataset_database, tmp_path_factory.mktemp("dashboard"), "--interval", "0.2"
    )
    try:
        yield process
    finally:
        process.stop()


def first_snapshot(url: str) -> dict[str, Any]:
    """The first `snapshot` event of a stream."""
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "snapshot":
                return json.loads(line[len("data: ") :])
    raise AssertionError("the stream ended without a snapshot")


def test_page_spec_and_bundled_plotly(dashboard):
    assert dashboard.url.startswith("http://127.0.0.1:")
    page = requests.get(dashboard.url + "/", timeout=10)
    assert page.status_code == 200
    assert '<script src="/vendor/plotly.min.js"></script>' in page.text
    assert '<a id="attribution" href="https://www.livecoinwatch.com"' in page.text
    plotly = requests.get(dashboard.url + "/vendor/plotly.min.js", timeout=10)
    assert plotly.status_code == 200
    assert plotly.content == plotly_js_path().read_bytes()
    spec = requests.get(dashboard.url + "/api/spec", timeout=10).json()
    assert spec == {**load_spec().to_public_dict(), "plotly_version": plotly_js_version()}
    assert all("sql" not in card for card in spec["cards"]) and "SELECT" not in json.dumps(spec)


def test_stream_sends_the_cards_of_the_coin_and_timeframe(dashboard):
    snapshot = first_snapshot(dashboard.url + "/api/stream?coin=BTC&timeframe=5m")
    assert (snapshot["coin"], snapshot["timeframe"], snapshot["error"], snapshot["errors"]) == ("BTC", "5m", None, {})
    # The grid's cards, the 5-minute candles, and the overlay's card; no other timeframe.
    assert "candles_5m" in snapshot["cards"] and "ohlc_1m" not in snapshot["cards"]
    assert "candles_1h" not in snapshot["cards"] and "price_mov_avg_60s" in snapshot["cards"]
    assert snapshot["cards"]["candles_5m"] == {
        "columns": ["bucket_start", "code", "open", "high", "low", "close", "samples"],
        "rows": [
            ["2024-03-10 10:00:00", "BTC", 60000.0, 60430.0, 59980.0, 60410.0, 20],
            ["2024-03-10 10:05:00", "BTC", 60500.0, 60930.0, 60480.0, 60910.0, 20],
        ],
    }
    overview = snapshot["cards"]["market_overview"]
    assert [row[:3] for row in overview["rows"]] == [["BTC", "Bitcoin", 60910.0], ["ETH", "Ethereum", 3095.0]]
    assert overview["rows"][0][7] == "2024-03-10 10:09:45"  # updated_at, UTC


def test_a_coin_without_data_gets_empty_cards_not_errors(dashboard):
    snapshot = first_snapshot(dashboard.url + "/api/stream?coin=DOGE&timeframe=1m")
    assert snapshot["errors"] == {} and snapshot["cards"]["ohlc_1m"]["rows"] == []
    assert len(snapshot["cards"]["market_overview"]["rows"]) == 2  # not filtered by coin


@pytest.mark.parametrize(
    "query, reason",
    [
        ("coin=BTC%27%20OR%201%3D1&timeframe=1m", "coin must be 1-32 letters"),
        ("coin=BTC&timeframe=2m", "timeframe must be one of 1m, 5m, 15m, 1h, 4h, 1d"),
    ],
)
def test_bad_choices_are_refused(dashboard, query, reason):
    response = requests.get(f"{dashboard.url}/api/stream?{query}", timeout=10)
    assert response.status_code == 400 and reason in response.text


def test_unreachable_clickhouse_is_shown_on_the_stream_without_the_password(clickhouse_server, tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    process = start_dashboard(
        clickhouse_server, "default", tmp_path, clickhouse_url=f"http://default:x@127.0.0.1:{closed_port}/default"
    )
    try:
        snapshot = first_snapshot(process.url + "/api/stream?coin=BTC&timeframe=1m")
    finally:
        assert process.stop() == 0
    assert snapshot["cards"] == {}
    assert snapshot["error"].startswith(
        f"cannot reach ClickHouse at http://127.0.0.1:{closed_port}/default as dashboard: "
    )
    assert TEST_READONLY_PASSWORD not in json.dumps(snapshot)


def test_sigterm_stops_the_server_with_a_stream_open(clickhouse_server, known_dataset_database, tmp_path: Path):
    process = start_dashboard(clickhouse_server, known_dataset_database, tmp_path)
    response = requests.get(process.url + "/api/stream?coin=ETH&timeframe=1h", stream=True, timeout=30)
    try:
        lines = response.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("event: ")) == "event: snapshot"
        assert process.stop(timeout=10) == 0
    finally:
        response.close()


def test_a_failing_card_is_reported_alone(clickhouse_server, known_dataset_database, tmp_path):
    from coinstream.common.settings import ClickHouseTarget
    from coinstream.dashboard.data import CardSource
    from coinstream.metabase.spec import DEFAULT_SPEC

    text = DEFAULT_SPEC.read_text()
    assert text.count("FROM v_change_by_day_latest") == 1
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace("FROM v_change_by_day_latest", "FROM v_no_such_view"))
    target = ClickHouseTarget(
        "127.0.0.1", clickhouse_server.port, "dashboard", TEST_READONLY_PASSWORD, known_dataset_database, False
    )
    source = CardSource(load_spec(path), target)
    try:
        snapshot = source.snapshot("BTC", "1m")
    finally:
        source.close()
    assert snapshot["error"] is None and list(snapshot["errors"]) == ["changes_latest"]
    assert "v_no_such_view" in snapshot["errors"]["changes_latest"]
    assert TEST_READONLY_PASSWORD not in snapshot["errors"]["changes_latest"]
    assert len(snapshot["cards"]["ohlc_1m"]["rows"]) == 10
