"""The live dashboard in headless Chromium, over ClickHouse holding the known dataset.

The page is opened on an empty database first (its empty state must say so), then the known dataset
(tests/fixtures_dashboard.py) is inserted and the page must pick it up by itself: the overview shows
BTC's latest rate, the candlestick chart the expected number of candles for each coin and
timeframe, with the moving average over them. Everything the page loads comes from the dashboard
server (plotly.js included). Screenshots are saved to test-artifacts/dashboard-empty.png and
test-artifacts/dashboard.png.

Chromium is Debian's (`apt-get install chromium`, done by `COINSTREAM_SETUP_BROWSER=1
scripts/setup.sh`), driven by Playwright without any browser download.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from coinstream.clickhouse.indicators.maintainer import IndicatorMaintainer
from tests.fixtures_dashboard import load_known_dataset, start_dashboard

pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_dashboard"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed: run COINSTREAM_SETUP_BROWSER=1 "
            "scripts/setup.sh (or apt-get install chromium)"
        )
    return path


@pytest.fixture
def dashboard(clickhouse_server: Any, migrated_database: str, tmp_path: Path):
    process = start_dashboard(clickhouse_server, migrated_database, tmp_path, "--interval", "0.3")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def wait_for_candles(page: Any, coin: str, timeframe: str, state: str = "ready", **expected: str) -> dict[str, str]:
    """The chart's counts once it shows `coin`/`timeframe` in `state` with the `expected` counts.

    The dataset lands table by table and the page refreshes every 0.3 s, so a refresh may see the
    candles before their moving average: the wait is for the expected picture, and when it never
    comes the counts the page last showed are returned for the assertion to report.
    """
    base = f'#candles[data-state="{state}"][data-coin="{coin}"][data-timeframe="{timeframe}"]'
    wanted = "".join(f'[data-{name.replace("_", "-")}="{value}"]' for name, value in expected.items())
    names = ("candle-count", "overlay-count")
    try:
        element = page.wait_for_selector(base + wanted, state="attached", timeout=WAIT_MS)
    except Exception:  # playwright's TimeoutError: report what the page shows instead
        if not wanted:
            raise
        element = page.wait_for_selector(base, state="attached", timeout=WAIT_MS)
    return {name: element.get_attribute(f"data-{name}") for name in names}


def test_live_dashboard_in_chromium(clickhouse_server, migrated_database, dashboard, page):
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)

    page.goto(dashboard.url + "/")
    # Before any data: a clear empty state, not an empty chart.
    wait_for_candles(page, "BTC", "1m", state="empty")
    assert page.inner_text("#candles-empty").startswith("No 1m candles for BTC yet.")
    overview = page.wait_for_selector('[data-card="market_overview"][data-state="empty"]', timeout=WAIT_MS)
    assert overview.inner_text().endswith("No data yet.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-empty.png"))

    client = clickhouse_server.client(database=migrated_database)
    try:
        load_known_dataset(client)
    finally:
        client.close()

    # The page picks the data up by itself: ten 1-minute candles, 21 moving-average points.
    assert wait_for_candles(page, "BTC", "1m", candle_count="10", overlay_count="21") == {
        "candle-count": "10",
        "overlay-count": "21",
    }
    page.wait_for_selector('[data-card="market_overview"][data-state="ready"]', timeout=WAIT_MS)
    rate = page.locator('[data-card="market_overview"] tr[data-code="BTC"] td[data-column="rate"]')
    assert rate.inner_text() == "$60,910.00"
    assert rate.get_attribute("data-value") == "60910"
    codes = page.locator('[data-card="market_overview"] tbody tr').evaluate_all(
        "rows => rows.map(row => row.dataset.code)"
    )
    assert codes == ["BTC", "ETH"]  # by market cap
    assert page.inner_text('[data-card="latest_rate"] .scalar') == "$60,910.00"
    assert page.locator("#coin option").evaluate_all("options => options.map(o => o.value)") == ["BTC", "ETH"]
    page.wait_for_selector('[data-card="price_mov_avg_60s"][data-state="ready"] .main-svg', timeout=WAIT_MS)

    page.select_option("#timeframe", "5m")
    assert wait_for_candles(page, "BTC", "5m", candle_count="2")["candle-count"] == "2"
    page.select_option("#coin", "ETH")
    assert wait_for_candles(page, "ETH", "5m", candle_count="2")["candle-count"] == "2"
    assert page.inner_text('[data-card="latest_rate"] .scalar') == "$3,095.00"
    page.select_option("#timeframe", "1d")
    # One daily candle; the 10-day average of the 12:00 closes drawn within its range (03-09 12:00).
    assert wait_for_candles(page, "ETH", "1d", candle_count="1", overlay_count="1") == {
        "candle-count": "1",
        "overlay-count": "1",
    }
    assert page.url.endswith("?coin=ETH&timeframe=1d")

    page.goto(dashboard.url + "/?coin=BTC&timeframe=1m")
    assert wait_for_candles(page, "BTC", "1m", candle_count="10")["candle-count"] == "10"
    page.wait_for_selector('[data-card="daily_close_10d"][data-state="ready"] .main-svg', timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    link = page.locator("a#attribution")
    assert link.get_attribute("href") == "https://www.livecoinwatch.com" and link.is_visible()
    assert [url for url in requested if not url.startswith(dashboard.url + "/")] == []
    assert dashboard.url + "/vendor/plotly.min.js" in requested
    assert problems == []


def test_indicator_panels_under_the_candles(clickhouse_server, migrated_database, dashboard, page):
    """40 one-minute candles of a coin: the chosen indicators are drawn from their first defined value.

    Expected points are TA-Lib's lookbacks, not the page's output: a value exists from bucket
    index 14 for RSI(14) (40 - 14 = 26 points), 17 for the slow stochastic (23), 33 for MACD
    (7) and 19 for the Bollinger Bands (21); nothing is drawn for an undefined value.
    """
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    from tests.fixtures_dashboard import OHLC_COLUMNS, START

    rows = []
    for minute in range(40):
        start = START + dt.timedelta(minutes=minute)
        close = 100.0 + (minute * 7) % 11 - (minute * 3) % 5
        rows.append(
            [
                "SOL",
                start,
                close - 1,
                close + 2,
                close - 3,
                close,
                "ohlc_by_minute",
                0,
                minute,
                start + dt.timedelta(seconds=59),
                f"SOL@{minute}",
            ]
        )
    client = clickhouse_server.client(database=migrated_database)
    try:
        client.insert("ohlc_by_minute", rows, column_names=OHLC_COLUMNS)
        IndicatorMaintainer(client).run_once()  # as `coinstream indicators` does
    finally:
        client.close()

    page.goto(dashboard.url + "/?coin=SOL&timeframe=1m&indicators=rsi,stoch,macd,bb")
    assert wait_for_candles(page, "SOL", "1m", candle_count="40")["candle-count"] == "40"
    chart = page.wait_for_selector('#candles[data-state="ready"][data-indicators="rsi,stoch,macd,bb"]')
    assert json.loads(chart.get_attribute("data-indicator-points")) == {"rsi": 26, "stoch": 23, "macd": 7, "bb": 21}
    # Three panels under the candles, one time axis: four y axes, one x axis.
    axes = page.evaluate("() => Object.keys(document.getElementById('candles').layout).sort()")
    assert [a for a in axes if a.startswith(("xaxis", "yaxis"))] == ["xaxis", "yaxis", "yaxis2", "yaxis3", "yaxis4"]

    # Unticking RSI redraws without it.
    page.click("#indicator-picker summary")
    page.uncheck('#indicators input[value="rsi"]')
    chart = page.wait_for_selector('#candles[data-state="ready"][data-indicators="stoch,macd,bb"]')
    assert json.loads(chart.get_attribute("data-indicator-points")) == {"stoch": 23, "macd": 7, "bb": 21}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-indicators.png"), full_page=True)
    assert problems == []
