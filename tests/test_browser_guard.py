"""Browser-borne requests against the real servers: the simulated LiveCoinWatch API and the dashboard.

Each test plays one attack a hostile web page open in the user's browser could make on a server on
127.0.0.1: a "simple" cross-origin request (POST with `Content-Type: text/plain`, which needs no
CORS preflight, or a GET) carrying the page's `Origin`, or a DNS-rebinding request carrying the
page's own name in `Host`. Each must get 403 with the exact reason, before any handler runs: no
credit spent, no fault queued or taken, no counter moved. The requests a browser makes for the
server's own page, requests listed in HTTP_ALLOWED_ORIGINS, and requests without an Origin (python
`requests`, the producers) still pass. The rules themselves: test_http_guard.py.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from coinstream.dashboard.vendor import plotly_js_version
from coinstream.metabase.spec import load_spec
from coinstream.producers.sim.launcher import SimApiServer
from tests.fixtures_dashboard import DashboardProcess, start_dashboard
from tests.fixtures_sim_api import cli_env
from tests.test_http_guard import HOST_REFUSED, ORIGIN_REFUSED

pytest_plugins = ["tests.fixtures_clickhouse", "tests.fixtures_dashboard"]

EVIL = "http://evil.example"
LISTED = "http://localhost:3000"  # the HTTP_ALLOWED_ORIGINS of the servers started below
KEY = "test-key"
DAILY_CREDITS = 10_000


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def simple_post(
    url: str, body: str = "{}", origin: str | None = EVIL, host: str | None = None, key: str | None = KEY
) -> requests.Response:
    """A POST a page may send anywhere without a CORS preflight (text/plain), with its headers."""
    headers = {"Content-Type": "text/plain"}
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    if key is not None:
        headers["x-api-key"] = key
    return requests.post(url, data=body, headers=headers, timeout=10)


def assert_refused(response: requests.Response, reason: str) -> None:
    # Not response.text in the message: an unrefused /api/stream would never end.
    assert response.status_code == 403, (response.status_code, response.headers.get("Content-Type"))
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"error": reason}


# ---- the simulated LiveCoinWatch API -------------------------------------------------------------


@pytest.fixture
def sim(sim_api_factory) -> SimApiServer:
    """A simulator with one key that already spent 7 credits today and one 500 fault pending, so a
    refused request that reset, charged or took anything would show."""
    server = sim_api_factory(daily_credits=DAILY_CREDITS)
    server.admin.set_credits_used(KEY, 7)
    server.admin.fail(500, count=1, paths=["/coins/single"])
    return server


def assert_sim_untouched(sim: SimApiServer, before: dict[str, Any]) -> None:
    """The state is as before the attack: read back directly, then over HTTP as a producer would."""
    assert sim.state.stats() == before
    assert before["credits_used"] == 7 and before["faults_pending"] == 1
    assert before["null_rate"] == [] and before["omit"] == []
    # The pending fault is still there (the next /coins/single is the injected 500) ...
    fault = requests.post(f"{sim.base_url}/coins/single", json={"code": "BTC"}, headers={"x-api-key": KEY}, timeout=10)
    assert fault.status_code == 500
    # ... and the key spent 7 credits, plus that request and this one.
    credits = requests.post(f"{sim.base_url}/credits", json={}, headers={"x-api-key": KEY}, timeout=10)
    assert credits.json() == {"dailyCreditsRemaining": DAILY_CREDITS - 9, "dailyCreditsLimit": DAILY_CREDITS}


ADMIN_ATTACKS = [
    ("/_sim/credits", '{"key": "test-key", "used": 10000}'),  # burn the day's credits
    (
        "/_sim/faults",
        '{"faults": [{"kind": "status", "status": 503, "count": 100}], "null_rate": ["ETH"], "omit": ["BTC"]}',
    ),  # break the producers
    ("/_sim/reset", "{}"),  # drop the pending fault
    ("/_sim/stats", "{}"),  # read the counters
]


@pytest.mark.parametrize("path, body", ADMIN_ATTACKS, ids=[path for path, _ in ADMIN_ATTACKS])
def test_sim_admin_refuses_a_foreign_origin(sim, path, body):
    before = sim.state.stats()
    assert_refused(simple_post(f"{sim.base_url}{path}", body, key=None), ORIGIN_REFUSED)
    assert_sim_untouched(sim, before)


CREDIT_ATTACKS = [
    ("/coins/single", '{"code": "BTC"}'),
    ("/coins/map", '{"codes": ["BTC", "ETH"]}'),
    ("/coins/list", '{"limit": 100}'),
    ("/coins/single/history", '{"code": "BTC", "start": 0, "end": 86400000}'),
    ("/credits", "{}"),
    ("/status", "{}"),
]


@pytest.mark.parametrize("path, body", CREDIT_ATTACKS, ids=[path for path, _ in CREDIT_ATTACKS])
def test_sim_credit_spending_endpoints_refuse_a_foreign_origin(sim, path, body):
    before = sim.state.stats()
    assert_refused(simple_post(f"{sim.base_url}{path}", body), ORIGIN_REFUSED)
    assert_sim_untouched(sim, before)


@pytest.mark.parametrize(
    "origin",
    [
        "null",  # a sandboxed iframe or a file:// page
        "http://127.0.0.1:1",  # a page served by another local server is another origin
        "http://localhost:{port}",  # the same server under another name is another origin
        "HTTP://EVIL.EXAMPLE",
    ],
)
def test_sim_refuses_other_foreign_origins(sim, origin):
    before = sim.state.stats()
    origin = origin.format(port=port_of(sim.base_url))
    assert_refused(simple_post(f"{sim.base_url}/coins/map", '{"codes": ["BTC"]}', origin=origin), ORIGIN_REFUSED)
    assert_sim_untouched(sim, before)


@pytest.mark.parametrize("name", ["evil.example", "0.0.0.0", "127.0.0.1.nip.io", "[::]"])
@pytest.mark.parametrize("path, body", [("/coins/single", '{"code": "BTC"}'), ("/_sim/reset", "{}")])
def test_sim_refuses_a_rebinding_host(sim, name, path, body):
    """The rebinding page reads its own origin's answers: no Origin on a GET-like request."""
    before = sim.state.stats()
    host = f"{name}:{port_of(sim.base_url)}"
    assert_refused(simple_post(f"{sim.base_url}{path}", body, origin=None, host=host), HOST_REFUSED)
    assert_sim_untouched(sim, before)


def test_sim_refuses_a_rebinding_host_that_sends_its_own_origin(sim):
    before = sim.state.stats()
    host = f"evil.example:{port_of(sim.base_url)}"
    response = simple_post(f"{sim.base_url}/coins/single", '{"code": "BTC"}', origin=f"http://{host}", host=host)
    assert_refused(response, ORIGIN_REFUSED)
    assert_sim_untouched(sim, before)


def test_sim_allows_its_own_origin_and_clients_without_origin(sim_api_factory):
    sim = sim_api_factory(daily_credits=DAILY_CREDITS)
    own = f"http://127.0.0.1:{port_of(sim.base_url)}"
    assert simple_post(f"{sim.base_url}/coins/single", '{"code": "BTC"}', origin=own).status_code == 200
    assert simple_post(f"{sim.base_url}/coins/single", '{"code": "ETH"}', origin=None).status_code == 200
    named = f"localhost:{port_of(sim.base_url)}"
    assert simple_post(f"{sim.base_url}/coins/single", '{"code": "SOL"}', origin=None, host=named).status_code == 200
    assert (
        simple_post(f"{sim.base_url}/coins/single", '{"code": "SOL"}', origin=f"http://{named}", host=named).status_code
        == 200
    )
    assert sim.state.credits_used(KEY, _now_ms()) == 4
    # The admin client (python requests, no Origin) still works.
    assert sim.admin.stats()["requests"]["/coins/single"] == 4


def test_sim_allows_a_listed_origin(sim_api_factory):
    sim = sim_api_factory(daily_credits=DAILY_CREDITS, allowed_origins=(LISTED,))
    response = simple_post(f"{sim.base_url}/credits", origin=LISTED)
    assert response.status_code == 200
    assert response.json() == {"dailyCreditsRemaining": DAILY_CREDITS - 1, "dailyCreditsLimit": DAILY_CREDITS}
    assert simple_post(f"{sim.base_url}/_sim/reset", origin=LISTED, key=None).status_code == 200
    assert_refused(simple_post(f"{sim.base_url}/credits", origin=EVIL), ORIGIN_REFUSED)
    assert sim.state.credits_used(KEY, _now_ms()) == 0  # reset by the listed page, not charged since


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


@pytest.fixture
def sim_command(tmp_path: Path) -> Iterator[str]:
    """`coinstream sim-api --port 0` with HTTP_ALLOWED_ORIGINS and LCW_BASE_URL set, as in docker
    compose (where the producers call it http://sim-api:8788); its base URL. Stopped after the test."""
    env = cli_env(HTTP_ALLOWED_ORIGINS=f"{LISTED},https://grafana.example.org", LCW_BASE_URL="http://sim-api:8788")
    process = subprocess.Popen(
        [sys.executable, "-m", "coinstream", "sim-api", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        assert "simulated LiveCoinWatch API ready at http://127.0.0.1:" in line, line
        yield line.split(" at ")[1].split()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


def test_sim_api_command_takes_origins_and_host_from_settings(sim_command):
    port = port_of(sim_command)
    url = f"{sim_command}/credits"
    assert simple_post(url, origin=LISTED).status_code == 200
    assert simple_post(url, origin="https://grafana.example.org").status_code == 200
    assert_refused(simple_post(url, origin=EVIL), ORIGIN_REFUSED)
    # The name of LCW_BASE_URL is how the producers reach it in compose; other names are not.
    assert simple_post(url, origin=None, host=f"sim-api:{port}").status_code == 200
    assert_refused(simple_post(url, origin=None, host=f"evil.example:{port}"), HOST_REFUSED)
    assert_refused(simple_post(url, origin=None, host=f"0.0.0.0:{port}"), HOST_REFUSED)
    stats = requests.post(f"{sim_command}/_sim/stats", json={}, timeout=10).json()
    assert stats["credits_used"] == 3 and stats["requests"] == {"/credits": 3}


# ---- the dashboard -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard(clickhouse_server: Any, known_dataset_database: str, tmp_path_factory) -> Iterator[DashboardProcess]:
    """`coinstream dashboard` with HTTP_ALLOWED_ORIGINS=LISTED, over the known dataset."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTTP_ALLOWED_ORIGINS", LISTED)
        process = start_dashboard(
            clickhouse_server, known_dataset_database, tmp_path_factory.mktemp("dashboard"), "--interval", "0.2"
        )
    try:
        yield process
    finally:
        process.stop()


ROUTES = [
    "/",
    "/static/dashboard.js",
    "/static/dashboard.css",
    "/vendor/plotly.min.js",
    "/api/spec",
    "/api/stream?coin=BTC&timeframe=1m",
    "/healthz",
    "/no-such-page",
]
DATA_ROUTES = ["/api/spec", "/api/stream?coin=BTC&timeframe=1m"]


def dashboard_get(
    dashboard: DashboardProcess, route: str, origin: str | None = None, host: str | None = None
) -> requests.Response:
    headers = {key: value for key, value in (("Origin", origin), ("Host", host)) if value}
    return requests.get(dashboard.url + route, headers=headers, timeout=10, stream=True)


def assert_dashboard_alive(dashboard: DashboardProcess) -> None:
    response = requests.get(dashboard.url + "/healthz", timeout=10)
    assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize("route", ROUTES)
def test_dashboard_refuses_a_foreign_origin_on_every_route(dashboard, route):
    with dashboard_get(dashboard, route, origin=EVIL) as response:
        assert_refused(response, ORIGIN_REFUSED)
    assert_dashboard_alive(dashboard)


@pytest.mark.parametrize("route", DATA_ROUTES)
def test_dashboard_refuses_a_text_plain_post_from_a_foreign_origin(dashboard, route):
    """Refused as a foreign request (403), not as a wrong method (405)."""
    with simple_post(dashboard.url + route, key=None) as response:
        assert_refused(response, ORIGIN_REFUSED)
    assert_dashboard_alive(dashboard)


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1:1", "http://localhost:{port}"])
@pytest.mark.parametrize("route", DATA_ROUTES)
def test_dashboard_refuses_other_foreign_origins(dashboard, route, origin):
    origin = origin.format(port=port_of(dashboard.url))
    with dashboard_get(dashboard, route, origin=origin) as response:
        assert_refused(response, ORIGIN_REFUSED)


@pytest.mark.parametrize("name", ["evil.example", "0.0.0.0", "127.0.0.1.nip.io"])
@pytest.mark.parametrize("route", ["/", *DATA_ROUTES])
def test_dashboard_refuses_a_rebinding_host(dashboard, route, name):
    with dashboard_get(dashboard, route, host=f"{name}:{port_of(dashboard.url)}") as response:
        assert_refused(response, HOST_REFUSED)
    assert_dashboard_alive(dashboard)


def test_dashboard_allows_its_own_page_a_listed_origin_and_clients_without_origin(dashboard):
    spec = {**load_spec().to_public_dict(), "plotly_version": plotly_js_version()}
    own = f"http://127.0.0.1:{port_of(dashboard.url)}"
    for origin in (None, own, LISTED):
        with dashboard_get(dashboard, "/api/spec", origin=origin) as response:
            assert response.status_code == 200, origin
            assert response.json() == spec
    named = f"localhost:{port_of(dashboard.url)}"
    with dashboard_get(dashboard, "/api/spec", origin=f"http://{named}", host=named) as response:
        assert response.status_code == 200 and response.json() == spec
    with dashboard_get(dashboard, "/", origin=own) as response:
        assert response.status_code == 200 and "<script" in response.text


def test_dashboard_streams_to_its_own_origin(dashboard):
    own = f"http://127.0.0.1:{port_of(dashboard.url)}"
    with dashboard_get(dashboard, "/api/stream?coin=BTC&timeframe=1m", origin=own) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = response.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("event: ")) == "event: snapshot"
