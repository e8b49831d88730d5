"""common/http_guard.py's rules on their own: which Host and Origin headers pass, and why not.

The expectations are written from the rules (loopback names and addresses only; an Origin must be
listed or the server's own; `null` never), not read back from the code. The servers applying the
rules are tested in test_browser_guard.py.
"""

from __future__ import annotations

import pytest

from coinstream.common.http_guard import host_allowed, origin_allowed, refusal_reason

ORIGIN_REFUSED = "Cross-origin request refused: the Origin header names a web page that is not in HTTP_ALLOWED_ORIGINS"
HOST_REFUSED = (
    "Request refused: the Host header is not a loopback name or address (possible DNS "
    "rebinding); use http://127.0.0.1 or http://localhost"
)


@pytest.mark.parametrize(
    "host, allowed",
    [
        (None, True),  # HTTP/1.0 clients send none; browsers always do
        ("127.0.0.1:8050", True),
        ("127.0.0.1", True),
        ("127.5.6.7:80", True),  # all of 127.0.0.0/8 is loopback
        ("localhost:8788", True),
        ("LOCALHOST:8788", True),  # names are case-insensitive
        ("LocalHost", True),
        ("localhost.:8788", True),  # the fully qualified form of the same name
        ("localhost.localdomain", True),
        ("app.localhost:3000", True),  # *.localhost is loopback (RFC 6761)
        ("[::1]:80", True),
        ("[::1]", True),
        ("[0:0:0:0:0:0:0:1]:8050", True),  # ::1 written out
        ("::1", False),  # IPv6 must be bracketed in Host
        ("::1:80", False),
        ("0:0:0:0:0:0:0:1", False),
        ("[::1", False),  # malformed
        ("[::1]8050", False),
        ("[::1]:80x", False),
        ("127.0.0.1:80x", False),
        ("127.0.0.1:", True),  # an empty port is the default port (RFC 3986)
        ("", False),
        (" ", False),
        (":8050", False),
        ("127.0.0.1 evil.example", False),
        ("evil.example:8050", False),  # DNS rebinding: the page's own name
        ("EVIL.example", False),
        ("127.0.0.1.nip.io:8050", False),  # a public name that resolves to 127.0.0.1
        ("localhost.evil.example", False),
        ("localhostevil.example", False),
        ("0.0.0.0:8050", False),  # the 'any' address reaches loopback from a browser on Linux
        ("[::]:8050", False),
        ("192.168.1.20:8050", False),
    ],
)
def test_host_allowed(host, allowed):
    assert host_allowed(host) is allowed


@pytest.mark.parametrize(
    "host, extra, allowed",
    [
        ("192.168.1.20:8050", ["192.168.1.20"], True),  # the configured bind host
        ("192.168.1.21:8050", ["192.168.1.20"], False),
        ("Sim-Api:8788", ["sim-api"], True),  # a compose service name, any case
        ("sim-api.:8788", ["sim-api"], True),
        ("sim-api:8788", ["SIM-API."], True),
        ("[fe80::1]:8050", ["[fe80::1]"], True),
        ("[fe80::1]:8050", ["fe80::1"], True),
        ("fe80::1", ["fe80::1"], False),  # still must be bracketed
        ("0.0.0.0:8050", ["0.0.0.0"], False),  # binding everywhere names nothing
        ("[::]:8050", ["::"], False),
        ("evil.example:8050", ["", " ", "0.0.0.0"], False),
        ("localhost:8050", ["192.168.1.20"], True),  # loopback stays allowed
    ],
)
def test_host_allowed_with_extra_hosts(host, extra, allowed):
    assert host_allowed(host, extra) is allowed


@pytest.mark.parametrize(
    "origin, listed, allowed",
    [
        (None, [], True),  # not a browser
        ("http://evil.example", [], False),
        ("http://localhost:3000", [], False),  # nothing listed by default
        ("http://localhost:3000", ["http://localhost:3000"], True),
        ("http://localhost:3000", ["http://localhost:3000/"], True),  # trailing slash
        ("HTTP://LocalHost:3000", ["http://localhost:3000"], True),  # case-insensitive
        ("http://localhost:3000/", ["http://LOCALHOST:3000"], True),
        ("http://localhost:3001", ["http://localhost:3000"], False),  # another port
        ("https://localhost:3000", ["http://localhost:3000"], False),  # another scheme
        ("http://localhost", ["http://localhost:3000"], False),
        ("http://localhost:3000.evil.example", ["http://localhost:3000"], False),
        ("null", [], False),  # sandboxed page, file://
        ("null", ["null"], False),  # never, even if listed
        ("NULL", ["null"], False),
        ("", [], False),
        ("", [""], False),
        ("localhost:3000", ["localhost:3000"], False),  # not an origin (no scheme)
        ("http://", ["http://"], False),
    ],
)
def test_origin_allowed(origin, listed, allowed):
    assert origin_allowed(origin, listed) is allowed


@pytest.mark.parametrize(
    "headers, extra, origins, reason",
    [
        ({}, (), (), None),
        ({"Host": "127.0.0.1:8050"}, (), (), None),
        # The server's own origin: a page it served calling it back.
        ({"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"}, (), (), None),
        ({"Host": "localhost:8050", "Origin": "http://localhost:8050"}, (), (), None),
        ({"Host": "[::1]:8050", "Origin": "http://[::1]:8050"}, (), (), None),
        # Another local port is another origin.
        ({"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:9999"}, (), (), ORIGIN_REFUSED),
        ({"Host": "127.0.0.1:8050", "Origin": "http://localhost:8050"}, (), (), ORIGIN_REFUSED),
        ({"Host": "127.0.0.1:8050", "Origin": "http://evil.example"}, (), (), ORIGIN_REFUSED),
        ({"Host": "127.0.0.1:8050", "Origin": "null"}, (), (), ORIGIN_REFUSED),
        ({"Host": "127.0.0.1:8050", "Origin": "http://localhost:3000"}, (), ("http://localhost:3000",), None),
        # Header names are case-insensitive in a plain mapping too.
        ({"host": "127.0.0.1:8050", "origin": "http://evil.example"}, (), (), ORIGIN_REFUSED),
        ({"HOST": "evil.example:8050"}, (), (), HOST_REFUSED),
        # Rebinding: the page's own origin does not make its host acceptable.
        ({"Host": "evil.example:8050"}, (), (), HOST_REFUSED),
        ({"Host": "evil.example:8050", "Origin": "http://evil.example:8050"}, (), (), ORIGIN_REFUSED),
        ({"Host": "0.0.0.0:8050"}, ("0.0.0.0",), (), HOST_REFUSED),
        # A listed origin does not excuse a foreign Host.
        (
            {"Host": "evil.example:8050", "Origin": "http://localhost:3000"},
            (),
            ("http://localhost:3000",),
            HOST_REFUSED,
        ),
        ({"Host": "sim-api:8788"}, ("sim-api",), (), None),
        ({"Host": "sim-api:8788", "Origin": "http://sim-api:8788"}, ("sim-api",), (), None),
    ],
)
def test_refusal_reason(headers, extra, origins, reason):
    assert refusal_reason(headers, extra, origins) == reason
