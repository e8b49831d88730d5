"""The simulated LiveCoinWatch API: endpoints, errors, credits, faults, and the documented price walk."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from coinstream.producers.sim import walk
from coinstream.producers.sim.catalog import COINS
from coinstream.producers.sim.launcher import SimApiProcess
from coinstream.producers.sim.state import Fault, SimState, parse_fault_spec
from tests.fixtures_sim_api import SIM_SEED, WRONG_KEY, cli_env, reference_rate

KEY = {"x-api-key": "test-key"}
DAY_MS = 86_400_000
META_FIELDS = {
    "name",
    "symbol",
    "rank",
    "age",
    "color",
    "png32",
    "png64",
    "webp32",
    "webp64",
    "exchanges",
    "markets",
    "pairs",
    "allTimeHighUSD",
    "circulatingSupply",
    "totalSupply",
    "maxSupply",
    "categories",
}
COIN_FIELDS = {"code", "rate", "volume", "cap", "liquidity", "delta"}
DEFAULT_TEN = ["USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE"]


def post(sim, path: str, body: dict | None = None, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"{sim.base_url}{path}",
        json=body if body is not None else {},
        headers=KEY if headers is None else headers,
        timeout=10,
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def noon_utc(days_ago: int) -> int:
    today = now_ms() // DAY_MS * DAY_MS
    return today - days_ago * DAY_MS + 12 * 3_600_000


def error_of(response: requests.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "status", "description"}
    assert body["error"]["code"] == response.status_code
    return body["error"]


# ---- the price walk ------------------------------------------------------------------------------


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from(sorted(COINS)), t_ms=st.integers(min_value=-10 * 365 * DAY_MS, max_value=100 * 365 * DAY_MS)
)
def test_walk_is_the_documented_formula(code, t_ms):
    spec = COINS[code]
    assert walk.rate_at(SIM_SEED, code, spec.price, spec.volatility, t_ms) == reference_rate(code, t_ms)


def test_walk_is_constant_within_a_step_and_depends_on_seed():
    t = 1_700_000_000_000
    assert reference_rate("BTC", t) == reference_rate("BTC", t + 999)
    assert reference_rate("BTC", t) != reference_rate("BTC", t + 1000)
    assert reference_rate("BTC", t, seed=1) != reference_rate("BTC", t, seed=2)


def test_prices_stay_at_realistic_levels():
    instants = [1_700_000_000_000 + i * 7 * 3_600_000 for i in range(1500)]  # ~14 months
    for code in ["USDT", "USDC", "FDUSD", "DAI"]:
        assert all(abs(reference_rate(code, t) - 1) < 0.005 for t in instants), code
    for code, low, high in [("BTC", 20_000, 200_000), ("ETH", 1_000, 10_000), ("SOL", 30, 700)]:
        rates = [reference_rate(code, t) for t in instants]
        assert low < min(rates) and max(rates) < high, (code, min(rates), max(rates))


def test_catalog_has_over_a_hundred_coins_with_the_default_ten_and_long_codes():
    assert len(COINS) >= 100
    assert set(DEFAULT_TEN) <= set(COINS)
    assert {"WSTETH", "FARTCOIN", "POPCAT", "RENDER"} <= set(COINS)
    assert [spec.rank for spec in COINS.values()] == list(range(1, len(COINS) + 1))


# ---- endpoints -----------------------------------------------------------------------------------


def test_coins_map_returns_requested_known_coins_at_the_documented_rate(sim_api):
    codes = DEFAULT_TEN + ["NOPE", "MATIC", "WSTETH"]
    response = post(sim_api, "/coins/map", {"codes": codes, "currency": "USD", "meta": True})
    arrived = now_ms()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    coins = response.json()
    by_code = {coin["code"]: coin for coin in coins}
    assert set(by_code) == set(codes) - {"NOPE"}
    for code, coin in by_code.items():
        assert set(coin) == COIN_FIELDS | META_FIELDS
        assert coin["rate"] == reference_rate(code, arrived)
        assert coin["cap"] == round(coin["rate"] * COINS[code].circulating)
        assert coin["delta"]["day"] == round(coin["rate"] / reference_rate(code, arrived - DAY_MS), 4)
        assert coin["name"] == COINS[code].name and coin["rank"] == COINS[code].rank
    # Default sort: rank ascending.
    assert [coin["rank"] for coin in coins] == sorted(coin["rank"] for coin in coins)


def test_coins_map_without_meta_sorting_offset_limit_and_currency(sim_api):
    codes = ["BTC", "ETH", "SOL", "DOGE", "XRP"]
    coins = post(
        sim_api, "/coins/map", {"codes": codes, "sort": "code", "order": "descending", "offset": 1, "limit": 3}
    ).json()
    assert [coin["code"] for coin in coins] == sorted(codes, reverse=True)[1:4]
    assert all(set(coin) == COIN_FIELDS for coin in coins)
    response = post(sim_api, "/coins/map", {"codes": ["BTC"], "currency": "EUR"})
    arrived = now_ms()
    assert response.json()[0]["rate"] == reference_rate("BTC", arrived, fx=0.92)


def test_coins_single_has_no_code_field_and_404_for_unknown(sim_api):
    response = post(sim_api, "/coins/single", {"currency": "USD", "code": "ETH", "meta": True})
    arrived = now_ms()
    coin = response.json()
    assert set(coin) == (COIN_FIELDS - {"code"}) | META_FIELDS
    assert coin["rate"] == reference_rate("ETH", arrived)
    missing = post(sim_api, "/coins/single", {"currency": "USD", "code": "NOPE"})
    assert missing.status_code == 404 and error_of(missing)["status"] == "Not Found"


def test_coins_list_defaults_to_ten_by_rank_and_serves_a_hundred(sim_api):
    top = post(sim_api, "/coins/list", {"currency": "USD", "meta": True}).json()
    assert [coin["rank"] for coin in top] == list(range(1, 11))
    hundred = post(sim_api, "/coins/list", {"limit": 100}).json()
    assert [coin["code"] for coin in hundred] == list(COINS)[:100]
    assert post(sim_api, "/coins/list", {"limit": 101}).status_code == 400


def test_history_at_noon_is_exactly_one_point_at_the_walk_rate(sim_api):
    for code in ["BTC", "USDT", "WSTETH", "PEPE"]:
        noon = noon_utc(days_ago=3)
        body = post(
            sim_api,
            "/coins/single/history",
            {"currency": "USD", "code": code, "start": noon, "end": noon, "meta": True},
        ).json()
        assert set(body) >= META_FIELDS
        assert len(body["history"]) == 1
        point = body["history"][0]
        assert set(point) == {"date", "rate", "volume", "cap", "liquidity"}
        assert point["date"] == noon and point["rate"] == reference_rate(code, noon)


def test_history_granularity_and_no_future_points(sim_api):
    start = noon_utc(days_ago=5)
    day = post(
        sim_api, "/coins/single/history", {"currency": "USD", "code": "ETH", "start": start, "end": start + DAY_MS}
    ).json()
    dates = [point["date"] for point in day["history"]]
    assert dates == list(range(start, start + DAY_MS + 1, 300_000))
    assert [p["rate"] for p in day["history"][:5]] == [reference_rate("ETH", d) for d in dates[:5]]
    month = post(sim_api, "/coins/single/history", {"code": "ETH", "start": start - 30 * DAY_MS, "end": start}).json()[
        "history"
    ]
    assert len(month) == 30 * 24 + 1
    future = noon_utc(days_ago=-2)
    assert (
        post(sim_api, "/coins/single/history", {"code": "ETH", "start": future, "end": future}).json()["history"] == []
    )
    assert post(sim_api, "/coins/single/history", {"code": "ETH", "start": start, "end": start - 1}).status_code == 400


# ---- protocol and errors -------------------------------------------------------------------------


def test_every_endpoint_is_post_only(sim_api):
    for path in ["/status", "/credits", "/coins/single", "/coins/map", "/coins/list", "/coins/single/history"]:
        response = requests.get(f"{sim_api.base_url}{path}", headers=KEY, timeout=5)
        assert response.status_code == 405, path
        assert error_of(response)["status"] == "Method Not Allowed"


def test_status_needs_no_key_and_costs_no_credit(sim_api):
    response = post(sim_api, "/status", headers={})
    assert response.status_code == 200 and response.json() == {}
    assert sim_api.state.stats()["credits_used"] == 0


def test_key_errors_unknown_paths_and_bad_bodies(sim_api):
    for headers in ({}, {"x-api-key": WRONG_KEY}):
        response = post(sim_api, "/credits", headers=headers)
        assert response.status_code == 401
        assert WRONG_KEY not in response.text
        assert error_of(response)["status"] == "Unauthorized"
    assert post(sim_api, "/coins/nothing").status_code == 404
    bad_json = requests.post(f"{sim_api.base_url}/coins/map", data="{nope", headers=KEY, timeout=5)
    assert bad_json.status_code == 400 and error_of(bad_json)["code"] == 400
    for body in (
        {"codes": []},
        {"codes": ["BTC"], "sort": "mood"},
        {"codes": ["BTC"], "limit": 101},
        {"codes": ["BTC"], "currency": "XYZ"},
        {"codes": ["BTC"], "meta": "yes"},
    ):
        assert post(sim_api, "/coins/map", body).status_code == 400, body


def test_accepted_key_list(sim_api_factory):
    sim = sim_api_factory(accepted_keys=frozenset({"the-one"}))
    assert post(sim, "/credits", headers={"x-api-key": "the-one"}).status_code == 200
    assert post(sim, "/credits", headers={"x-api-key": "another"}).status_code == 401


def test_credits_are_counted_per_key_per_day_and_exhaustion_answers_429(sim_api_factory):
    sim = sim_api_factory(daily_credits=5)
    for _ in range(3):
        assert post(sim, "/coins/map", {"codes": ["BTC"]}).status_code == 200
    assert post(sim, "/credits").json() == {"dailyCreditsRemaining": 1, "dailyCreditsLimit": 5}
    other = {"x-api-key": "other-key"}
    assert post(sim, "/credits", headers=other).json()["dailyCreditsRemaining"] == 4
    assert post(sim, "/coins/list").status_code == 200
    exhausted = post(sim, "/coins/list")
    assert exhausted.status_code == 429 and "renew" in error_of(exhausted)["description"]
    assert sim.state.credits_used("test-key", now_ms()) == 5
    # A new UTC day starts from zero.
    assert sim.state.credits_used("test-key", now_ms() + DAY_MS) == 0


def test_admin_can_set_a_keys_credits_used_today(sim_api):
    sim_api.admin.set_credits_used("test-key", 9_990)
    assert post(sim_api, "/credits").json()["dailyCreditsRemaining"] == 9


# ---- faults --------------------------------------------------------------------------------------


def test_status_bursts_with_retry_after_then_normal_answers(sim_api):
    sim_api.admin.fail(429, count=2, retry_after=3, paths=["/coins/map"])
    sim_api.admin.fail(503, count=1)
    assert post(sim_api, "/coins/list").status_code == 503  # the /coins/map-only fault skips it
    for _ in range(2):
        response = post(sim_api, "/coins/map", {"codes": ["BTC"]})
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
        assert error_of(response)["status"] == "Too Many Requests"
    assert post(sim_api, "/coins/map", {"codes": ["BTC"]}).status_code == 200
    stats = sim_api.admin.stats()
    assert stats["faults_served"] == {"status:429": 2, "status:503": 1}
    assert stats["faults_pending"] == 0


def test_malformed_slow_null_rate_and_omitted_coins(sim_api):
    sim_api.admin.malformed(count=1)
    broken = post(sim_api, "/coins/map", {"codes": ["BTC"]})
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    sim_api.admin.slow(0.3, count=1)
    assert post(sim_api, "/coins/map", {"codes": ["BTC"]}).status_code == 200
    sim_api.admin.inject(null_rate=["ETH"], omit=["SOL"])
    coins = {c["code"]: c for c in post(sim_api, "/coins/map", {"codes": ["BTC", "ETH", "SOL"]}).json()}
    assert set(coins) == {"BTC", "ETH"} and coins["ETH"]["rate"] is None
    assert sim_api.admin.stats()["faults_served"] == {"malformed": 1, "slow": 1}
    sim_api.admin.reset()
    assert len(post(sim_api, "/coins/map", {"codes": ["BTC", "ETH", "SOL"]}).json()) == 3


def test_fault_spec_syntax():
    assert parse_fault_spec("429x3") == Fault("status", count=3, status=429)
    assert parse_fault_spec("500@/coins/map") == Fault("status", status=500, paths=frozenset({"/coins/map"}))
    assert parse_fault_spec("malformedx2") == Fault("malformed", count=2)
    assert parse_fault_spec("slow:1.5x4") == Fault("slow", count=4, delay_s=1.5)
    for bad in ["teapot", "slow:soon", "429x0"]:
        with pytest.raises(ValueError):
            parse_fault_spec(bad)


# ---- the command ---------------------------------------------------------------------------------


def test_sim_api_command_serves_until_sigterm(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinstream",
            "sim-api",
            "--port",
            "0",
            "--seed",
            str(SIM_SEED),
            "--guard-ms",
            "250",
            "--fault",
            "500x1@/coins/map",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "simulated LiveCoinWatch API ready at http://127.0.0.1:" in line, line
        base_url = line.split(" at ")[1].split()[0]
        url = f"{base_url}/coins/map"
        assert requests.post(url, json={"codes": ["BTC"]}, headers=KEY, timeout=5).status_code == 500
        response = requests.post(url, json={"codes": ["BTC"]}, headers=KEY, timeout=5)
        assert response.json()[0]["rate"] == reference_rate("BTC", now_ms())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        process.stdout.close()
        process.stderr.close()


def test_utc_day_is_the_credit_day():
    midnight = int(datetime(2030, 1, 2, tzinfo=timezone.utc).timestamp() * 1000)
    state = SimState(daily_credits=1)
    assert state.charge("k", midnight - 1) == 0
    assert state.charge("k", midnight - 1) is None
    assert state.charge("k", midnight) == 0


def test_the_process_launcher_runs_the_simulator_as_a_child(tmp_path):
    with SimApiProcess(seed=SIM_SEED, guard_ms=250, rejected_keys=(WRONG_KEY,)) as sim:
        response = post(sim, "/coins/single", {"code": "SOL"})
        assert response.json()["rate"] == reference_rate("SOL", now_ms())
        assert post(sim, "/credits", headers={"x-api-key": WRONG_KEY}).status_code == 401
        requests_seen = sim.admin.stats()["requests"]
        assert (requests_seen["/coins/single"], requests_seen["/credits"]) == (1, 1)
        process = sim._process
    assert process.poll() == 0
