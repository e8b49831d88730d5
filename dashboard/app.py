"""The local dashboard's web application (aiohttp): the page, its assets, the spec, a live stream.

Routes:
- `/`                    the page (static/index.html), which draws whatever the spec describes;
- `/static/…`            its script and style sheet;
- `/vendor/plotly.min.js` plotly.js from the installed `plotly` package (no CDN, works offline);
- `/api/spec`            the dashboard spec as JSON (everything but the SQL): the page's layout;
- `/api/stream?coin=BTC&timeframe=1m`  server-sent events: a `snapshot` event with every card's
  rows at once, then a new one whenever the data changes (ClickHouse is polled every
  `interval_s`), a comment line as keep-alive otherwise;
- `/healthz`             "ok".

Every route refuses browser-borne requests (`common.http_guard`): a request whose `Origin` is
neither the page's own nor listed in HTTP_ALLOWED_ORIGINS, or whose `Host` is not a loopback name
(DNS rebinding) or the bound host, gets 403 and a JSON reason, before any query.

Why server-sent events: one long-lived plain HTTP response per page, reconnected by the browser
itself (EventSource), is all a read-only live view needs; no client library, no websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from coinstream.common.http_guard import browser_guard_middleware
from coinstream.dashboard.data import COIN_PATTERN, CardSource
from coinstream.dashboard.vendor import plotly_js_path, plotly_js_version
from coinstream.metabase.spec import DashboardSpec

STATIC_DIR = Path(__file__).resolve().parent / "static"
KEEP_ALIVE = b": keep-alive\n\n"

SOURCE = web.AppKey("source", CardSource)
SPEC = web.AppKey("spec", DashboardSpec)
INTERVAL = web.AppKey("interval", float)
STOPPING = web.AppKey("stopping", asyncio.Event)


def sse_event(event: str, data: Any) -> bytes:
    """One server-sent event; the JSON has no newline, so it fits one `data:` line."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


def create_app(
    spec: DashboardSpec,
    source: CardSource,
    interval_s: float = 2.0,
    extra_hosts: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
) -> web.Application:
    """The application; `source` answers the card queries, polled every `interval_s` per page.

    `extra_hosts`: `Host` names accepted besides loopback (the bound host); `allowed_origins`:
    web origins besides the page's own that may call it (HTTP_ALLOWED_ORIGINS; none by default).
    """
    app = web.Application(middlewares=[browser_guard_middleware(extra_hosts, allowed_origins)])
    app[SPEC] = spec
    app[SOURCE] = source
    app[INTERVAL] = interval_s
    app[STOPPING] = asyncio.Event()
    app.router.add_get("/", _index)
    app.router.add_get("/api/spec", _spec)
    app.router.add_get("/api/stream", _stream)
    app.router.add_get("/vendor/plotly.min.js", _plotly)
    app.router.add_get("/healthz", _health)
    app.router.add_static("/static/", STATIC_DIR)
    app.on_shutdown.append(_stop_streams)
    app.on_cleanup.append(_close_source)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _spec(request: web.Request) -> web.Response:
    spec = request.app[SPEC]
    return web.json_response({**spec.to_public_dict(), "plotly_version": plotly_js_version()})


async def _plotly(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        plotly_js_path(), headers={"Content-Type": "application/javascript", "Cache-Control": "max-age=86400"}
    )


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _choice(request: web.Request) -> tuple[str, str]:
    """The coin and timeframe asked for, checked (a bad one is a 400, never a query)."""
    spec = request.app[SPEC]
    coin_parameter = next((p for p in spec.parameters if p.slug == "coin"), None)
    coin = request.query.get("coin") or (coin_parameter.default if coin_parameter else "") or ""
    if not COIN_PATTERN.match(coin):
        raise web.HTTPBadRequest(text="coin must be 1-32 letters, digits, '_', '.' or '-'")
    labels = [timeframe.label for timeframe in spec.live.timeframes]
    timeframe = request.query.get("timeframe") or labels[0]
    if timeframe not in labels:
        raise web.HTTPBadRequest(text=f"timeframe must be one of {', '.join(labels)}")
    return coin, timeframe


async def _stream(request: web.Request) -> web.StreamResponse:
    coin, timeframe = _choice(request)
    app = request.app
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    stopping = app[STOPPING]
    last: str | None = None
    try:
        await response.write(b"retry: 3000\n\n")
        while not stopping.is_set():
            snapshot = await asyncio.to_thread(app[SOURCE].snapshot, coin, timeframe)
            fingerprint = json.dumps(snapshot, sort_keys=True)
            if fingerprint != last:
                await response.write(sse_event("snapshot", snapshot))
                last = fingerprint
            else:
                await response.write(KEEP_ALIVE)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), app[INTERVAL])
    except ConnectionError:
        pass  # the page went away
    return response


async def _stop_streams(app: web.Application) -> None:
    app[STOPPING].set()


async def _close_source(app: web.Application) -> None:
    await asyncio.to_thread(app[SOURCE].close)
