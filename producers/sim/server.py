"""The simulated LiveCoinWatch API over HTTP (aiohttp): the real endpoints, bodies, errors and credits.

Why aiohttp: a maintained asyncio server that runs equally well in the foreground (`coinstream
sim-api`) and on a background thread inside a test process (`producers.sim.launcher`), with slow
responses costing no threads.

Behaviour, following LiveCoinWatch's documented API:

- Endpoints `/status`, `/credits`, `/coins/single`, `/coins/map`, `/coins/list`,
  `/coins/single/history`; POST only (any other method: 405), JSON in and out, unknown path: 404.
- Header `x-api-key` on every endpoint but `/status`; a missing, rejected or (with an accepted-key
  list) unknown key: 401. Credits: see `producers.sim.state`; a request beyond the day's credits: 429.
- Errors: the status plus ``{"error": {"code": N, "status": "...", "description": "..."}}``.
- Coins unknown to the catalog are left out of `/coins/map`; `/coins/single` answers 404 for them.
- `/coins/single/history` returns points at the multiples of a granularity inside [start, end]
  (never in the future): 5 minutes when end - start <= 2 days, 1 hour when <= 90 days, else 1 day.
  start = end = an instant on the 5-minute grid (12:00 UTC, say) gives exactly that one point.

Timing of current rates: a response carries the rates of the step (1 s, `walk.STEP_MS`) in which it
is sent. The simulator never sends such a response in the last `guard_ms` of a step (it waits for
the next step and recomputes), so a client on the same host receives it within the same step, and
"the rate at the instant the response arrived" is unambiguous for tests.

Test switches under `/_sim/` (not part of the real API; POST, JSON):
`/_sim/faults` ``{"faults": [{"kind": "status", "status": 429, "count": 3, "retry_after": "1",
"paths": ["/coins/map"]}, {"kind": "malformed"}, {"kind": "slow", "delay_s": 2}], "null_rate":
["ETH"], "omit": ["BTC"]}`` queues faults and coin overrides; `/_sim/credits` ``{"key": K, "used": N}``
sets a key's credits spent today; `/_sim/reset` clears all of it; `/_sim/stats` returns counters.

Browser-borne requests are refused on every path, `/_sim/` included (`common.http_guard`): a
request with an `Origin` not in `SimConfig.allowed_origins` (HTTP_ALLOWED_ORIGINS; the server's own
origin aside), or whose `Host` is neither loopback nor one of `SimConfig.hosts` (the bound host
and the names clients are configured to use), gets 403 and a JSON reason; it spends no credit,
takes no fault and is not counted. HTTP clients such as `requests` send no Origin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from coinstream.common.http_guard import browser_guard_middleware
from coinstream.common.settings import setting_default
from coinstream.producers.sim import walk
from coinstream.producers.sim.catalog import COINS, CoinSpec
from coinstream.producers.sim.market import DAY_MS, HOUR_MS, Market
from coinstream.producers.sim.state import Fault, KeyPolicy, SimState

log = logging.getLogger(__name__)

API_PATHS = frozenset(
    {
        "/status",
        "/credits",
        "/coins/single",
        "/coins/map",
        "/coins/list",
        "/coins/single/history",
    }
)
STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    410: "Gone",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
SORT_FIELDS = ("rank", "price", "volume", "code", "name", "age")
ORDERS = ("ascending", "descending")
MAX_LIMIT = 100
HISTORY_GRANULARITY: tuple[tuple[int, int], ...] = (
    (2 * DAY_MS, 5 * 60_000),  # span <= 2 days: 5-minute points
    (90 * DAY_MS, HOUR_MS),  # span <= 90 days: hourly points
)


@dataclass
class SimConfig:
    """How one simulator instance behaves."""

    seed: int = 1
    host: str = "127.0.0.1"
    port: int = setting_default("sim_api_port")
    daily_credits: int = 10_000
    accepted_keys: frozenset[str] = frozenset()
    rejected_keys: frozenset[str] = frozenset()
    guard_ms: int = 100
    faults: list[Fault] = field(default_factory=list)
    # Names accepted in the Host header besides loopback and `host` (e.g. "sim-api" in compose).
    hosts: tuple[str, ...] = ()
    # Web origins whose pages may call the API (HTTP_ALLOWED_ORIGINS); none by default.
    allowed_origins: tuple[str, ...] = ()


class ApiError(Exception):
    """An error answer in the API's format."""

    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.headers = headers or {}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def error_response(status: int, description: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": status, "status": STATUS_TEXT.get(status, "Error"), "description": description}}
    return web.json_response(body, status=status, headers=headers)


def history_granularity_ms(span_ms: int) -> int:
    for max_span, step in HISTORY_GRANULARITY:
        if span_ms <= max_span:
            return step
    return DAY_MS


class SimulatedApi:
    """Request handling for one simulator instance (state + market), independent of how it is served."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.market = Market(config.seed)
        self.state = SimState(
            daily_credits=config.daily_credits, keys=KeyPolicy(config.accepted_keys, config.rejected_keys)
        )
        self.state.add_faults(list(config.faults))

    def app(self) -> web.Application:
        guard = browser_guard_middleware((self.config.host, *self.config.hosts), self.config.allowed_origins)
        app = web.Application(middlewares=[guard])
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # ---- dispatch ------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await self._admin(request, path)  # test switches are not counted as API traffic
        try:
            response = await self._api(request, path)
        except ApiError as error:
            response = error_response(error.status, error.description, error.headers)
        self.state.record(path, response.status)
        return response

    async def _api(self, request: web.Request, path: str) -> web.StreamResponse:
        if path not in API_PATHS:
            raise ApiError(404, f"Endpoint {path} does not exist")
        if request.method != "POST":
            raise ApiError(405, "Only POST is allowed", {"Allow": "POST"})
        fault = None
        if path != "/status":
            if not self.state.keys.allows(request.headers.get("x-api-key")):
                raise ApiError(401, "The API key is missing or not valid")
            if self.state.charge(request.headers["x-api-key"], now_ms()) is None:
                raise ApiError(429, "Daily credit limit reached; credits renew at 00:00 UTC")
            fault = self.state.take_fault(path)
        malformed = False
        if fault is not None:
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                raise ApiError(fault.status, f"Injected fault: {STATUS_TEXT.get(fault.status, 'error')}", headers)
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_s)
            malformed = fault.kind == "malformed"
        body = await self._json_body(request)
        key = request.headers.get("x-api-key", "")
        if path in ("/coins/map", "/coins/single", "/coins/list"):
            text = await self._at_stable_step(lambda t: _dumps(self._endpoint(path, body, t, key)))
        else:
            text = _dumps(self._endpoint(path, body, now_ms(), key))
        if malformed:
            text = text[: max(1, len(text) // 2)]
        return web.Response(text=text, content_type="application/json")

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        return body

    async def _at_stable_step(self, build: Callable[[int], str]) -> str:
        """Build the body at an instant that is not in the last `guard_ms` of its step, and make sure
        building it did not run into that zone either (else wait for the next step and rebuild)."""
        step, guard = walk.STEP_MS, self.config.guard_ms
        while True:
            t = now_ms()
            if t % step >= step - guard:
                await asyncio.sleep((step - t % step) / 1000 + 0.001)
                continue
            payload = build(t)
            done = now_ms()
            if done // step == t // step and done % step < step - guard:
                return payload

    def _endpoint(self, path: str, body: dict[str, Any], t: int, key: str) -> Any:
        if path == "/status":
            return {}
        if path == "/credits":
            return self._credits(key, t)
        if path == "/coins/single":
            return self._single(body, t)
        if path == "/coins/map":
            return self._map(body, t)
        if path == "/coins/list":
            return self._list(body, t)
        return self._history(body, t)

    # ---- endpoints -----------------------------------------------------------------------------

    def _credits(self, key: str, t: int) -> dict[str, int]:
        # This request's own credit is already charged, so it is not in the remaining count.
        used = self.state.credits_used(key, t)
        limit = self.state.daily_credits
        return {"dailyCreditsRemaining": max(0, limit - used), "dailyCreditsLimit": limit}

    def _single(self, body: dict[str, Any], t: int) -> dict[str, Any]:
        spec = self._coin_arg(body)
        currency, meta = _currency(body), _flag(body, "meta")
        return self._coin(spec, t, currency, meta, with_code=False)

    def _map(self, body: dict[str, Any], t: int) -> list[dict[str, Any]]:
        codes = body.get("codes")
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            raise ApiError(400, "codes must be a non-empty array of coin codes")
        limit = _int(body, "limit", 0, 0, MAX_LIMIT)
        specs = [COINS[c] for c in dict.fromkeys(codes) if c in COINS and c not in self.state.omit]
        return self._ranked(specs, body, t, limit or min(len(codes), MAX_LIMIT))

    def _list(self, body: dict[str, Any], t: int) -> list[dict[str, Any]]:
        limit = _int(body, "limit", 10, 1, MAX_LIMIT)
        specs = [spec for spec in COINS.values() if spec.code not in self.state.omit]
        return self._ranked(specs, body, t, limit)

    def _history(self, body: dict[str, Any], t: int) -> dict[str, Any]:
        spec = self._coin_arg(body)
        currency, meta = _currency(body), _flag(body, "meta")
        start, end = _int(body, "start", None, 0, None), _int(body, "end", None, 0, None)
        if start > end:
            raise ApiError(400, "start must not be after end")
        grain = history_granularity_ms(end - start)
        first = -(-start // grain) * grain
        points = []
        for instant in range(first, min(end, t) + 1, grain):
            point = self.market.history_point(spec, instant, currency)
            if spec.code in self.state.null_rate:
                point.update(rate=None, cap=None)
            points.append(point)
        result = self.market.meta(spec, t) if meta else {}
        result["history"] = points
        return result

    # ---- helpers -------------------------------------------------------------------------------

    def _coin_arg(self, body: dict[str, Any]) -> CoinSpec:
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise ApiError(400, "code must be a coin code")
        spec = COINS.get(code)
        if spec is None or code in self.state.omit:
            raise ApiError(404, f"Coin {code} not found")
        return spec

    def _coin(self, spec: CoinSpec, t: int, currency: str, meta: bool, with_code: bool = True) -> dict[str, Any]:
        coin = self.market.coin(spec, t, currency, meta, with_code)
        if spec.code in self.state.null_rate:
            coin.update(rate=None, cap=None)
        return coin

    def _ranked(self, specs: list[CoinSpec], body: dict[str, Any], t: int, limit: int) -> list[dict[str, Any]]:
        currency, meta = _currency(body), _flag(body, "meta")
        sort = body.get("sort", "rank")
        order = body.get("order", "ascending")
        if sort not in SORT_FIELDS:
            raise ApiError(400, f"sort must be one of {', '.join(SORT_FIELDS)}")
        if order not in ORDERS:
            raise ApiError(400, f"order must be one of {', '.join(ORDERS)}")
        offset = _int(body, "offset", 0, 0, None)
        keys: dict[str, Callable[[CoinSpec], Any]] = {
            "rank": lambda s: s.rank,
            "price": lambda s: self.market.rate(s, t, "USD"),
            "volume": lambda s: self.market.figures(s, t, "USD")["volume"],
            "code": lambda s: s.code,
            "name": lambda s: s.name.lower(),
            "age": lambda s: -s.listed_ms,
        }
        ordered = sorted(specs, key=keys[sort], reverse=order == "descending")
        return [self._coin(spec, t, currency, meta) for spec in ordered[offset : offset + limit]]

    # ---- admin (test switches) -----------------------------------------------------------------

    async def _admin(self, request: web.Request, path: str) -> web.Response:
        try:
            body = await self._json_body(request)
            if path == "/_sim/faults":
                faults = [Fault.from_json(item) for item in body.get("faults", [])]
                self.state.add_faults(faults)
                self.state.override_coins(body.get("null_rate", []), body.get("omit", []))
            elif path == "/_sim/credits":
                self.state.set_credits_used(str(body["key"]), int(body["used"]), now_ms())
            elif path == "/_sim/reset":
                self.state.reset()
            elif path != "/_sim/stats":
                raise ApiError(404, f"Endpoint {path} does not exist")
        except ApiError as error:
            return error_response(error.status, error.description)
        except (KeyError, TypeError, ValueError) as error:
            return error_response(400, f"bad admin request: {error}")
        return web.json_response(self.state.stats())


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _currency(body: dict[str, Any]) -> str:
    currency = body.get("currency", "USD")
    if currency not in walk.CURRENCY_FACTORS or not isinstance(currency, str):
        raise ApiError(400, "Unsupported currency")
    return currency


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false")
    return value


def _int(body: dict[str, Any], name: str, default: int | None, low: int, high: int | None) -> int:
    value = body.get(name, default)
    if value is None:
        raise ApiError(400, f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ApiError(400, f"{name} must be an integer {bound}")
    return value


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 = a free one), ready to hand to aiohttp."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_site(api: SimulatedApi, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def serve_forever(config: SimConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM (the `coinstream sim-api` command)."""

    async def main() -> None:
        api = SimulatedApi(config)
        sock = bind_socket(config.host, config.port)
        runner = await start_site(api, sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        host, port = sock.getsockname()[:2]
        if ready is not None:
            ready(f"http://{host}:{port}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
