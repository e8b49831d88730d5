"""Refuse requests a web browser sends on a hostile page's behalf to a server on 127.0.0.1.

Why: every page open in the user's browser may send requests to 127.0.0.1 (a form post or a
`fetch` with `Content-Type: text/plain` needs no CORS preflight), and through DNS rebinding a
hostile name may even resolve to 127.0.0.1 so that its scripts read the answers. Binding to the
loopback interface stops neither. Two header checks do:

- `Origin`: browsers add it to cross-origin requests (and to every POST); command-line clients,
  clickhouse-connect, Kafka tools and our own services never send it. A request that carries an
  origin not explicitly allowed (none by default) is refused, unless it is the server's own
  origin (a page it served calling it back).
- `Host`: a rebinding page's requests carry its own name. Only loopback names and addresses, and
  the host the server was configured to bind, are accepted.

The rules are pure functions here; each server answers a refusal in its own protocol (ClickHouse's
error format for the ClickHouse server, JSON for the others through `browser_guard_middleware`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _host_name(host_header: str) -> str | None:
    """The name in a `Host` header without its port, lower-cased ('[::1]:80' -> '::1'); None if malformed."""
    value = host_header.strip().lower()
    port = ""
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif value.count(":") > 1:  # an IPv6 address must be bracketed in Host
        return None
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name.rstrip(".")


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, extra_hosts: Iterable[str] = ()) -> bool:
    """Whether a request's `Host` names the local host's loopback (or one of `extra_hosts`).

    A missing `Host` (HTTP/1.0 clients) is accepted: a browser always sends one.
    """
    if host_header is None:
        return True
    name = _host_name(host_header)
    if name is None:
        return False
    if _is_loopback(name):
        return True
    allowed = {host.strip().lower().strip("[]").rstrip(".") for host in extra_hosts if host and host.strip()}
    # A server bound to every interface cannot tell its names apart; its configured host is then
    # no name at all, and only loopback and explicitly listed names pass.
    allowed -= {"0.0.0.0", "::", ""}
    return name in allowed


def origin_allowed(origin: str | None, allowed_origins: Iterable[str] = ()) -> bool:
    """Whether a request's `Origin` header is absent or exactly one of `allowed_origins`.

    Origins compare as scheme://host[:port], case-insensitively, without a trailing slash.
    The literal `null` (sandboxed pages, file:// documents) is never allowed.
    """
    if origin is None:
        return True
    normalized = _normalize_origin(origin)
    if normalized is None:
        return False
    return normalized in {_normalize_origin(item) for item in allowed_origins}


def _normalize_origin(origin: str) -> str | None:
    value = origin.strip().rstrip("/").lower()
    if not value or value == "null":
        return None
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def refusal_reason(
    headers: web.BaseRequest | Mapping[str, str], extra_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
) -> str | None:
    """Why a request must be refused (a sentence), or None when its headers are acceptable."""
    source = headers.headers if hasattr(headers, "headers") else headers
    origin, host = _header(source, "Origin"), _header(source, "Host")
    # A page the server itself served (same origin: its Host) may call it back.
    own_origins = (f"http://{host}", f"https://{host}") if host and host_allowed(host, extra_hosts) else ()
    if not origin_allowed(origin, (*allowed_origins, *own_origins)):
        return "Cross-origin request refused: the Origin header names a web page that is not in HTTP_ALLOWED_ORIGINS"
    if not host_allowed(host, extra_hosts):
        return (
            "Request refused: the Host header is not a loopback name or address (possible DNS "
            "rebinding); use http://127.0.0.1 or http://localhost"
        )
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value; header names are case-insensitive even in a plain dict ({"origin": …})."""
    value = headers.get(name)
    if value is None:
        value = next((item for key, item in headers.items() if key.lower() == name.lower()), None)
    return value


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def browser_guard_middleware(extra_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()) -> Middleware:
    """An aiohttp middleware answering 403 with a JSON reason to refused requests."""
    hosts, origins = tuple(extra_hosts), tuple(allowed_origins)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        reason = refusal_reason(request, hosts, origins)
        if reason is not None:
            return web.json_response({"error": reason}, status=403)
        return await handler(request)

    return guard
