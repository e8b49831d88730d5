"""The Metabase client never carries its credentials through a redirect to another origin.

`requests` drops `Authorization` when a redirect leaves the host, but keeps custom headers, so the
session id (`X-Metabase-Session`) and the API key (`x-api-key`) would follow a 302 anywhere. Two
loopback stand-ins on different ports (= different origins): the first redirects to the second,
which records every request's headers and body. It must get neither header — nor, for a 307/308
of the login, the password in the body — while a same-origin redirect keeps the credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import pytest

from coinstream.metabase.client import API_KEY_HEADER, SESSION_HEADER, MetabaseClient, MetabaseError, origin
from tests.helpers.http_stand_in import JsonHandler, Served

API_KEY = "mb_redirect_api_key_0123456789"
SESSION_ID = "3f2a9c1e-session-id-redirect"
PASSWORD = "redirect-Pa55word"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class StandIn:
    """A loopback server: `redirects` maps a path to (status, Location); anything else answers 200."""

    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    served: Served | None = None

    def start(self) -> StandIn:
        stand_in = self

        class Handler(JsonHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?")[0]
                stand_in.seen.append(Seen(self.command, path, dict(self.headers.items()), body))
                if path in stand_in.redirects:
                    status, location = stand_in.redirects[path]
                    self.send_response(status)
                    self.send_header("location", location)
                    self.send_header("content-length", "0")
                    self.end_headers()
                elif self.command == "POST" and path == "/api/session":
                    self.answer(200, {"id": SESSION_ID})
                else:
                    self.answer(200, {"path": path})

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.served = Served(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        return self

    @property
    def url(self) -> str:
        assert self.served is not None
        return self.served.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.served is not None:
            self.served.stop()


@pytest.fixture
def first() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def second() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


def header(seen: Seen, name: str) -> str | None:
    return next((value for key, value in seen.headers.items() if key.lower() == name.lower()), None)


def test_two_ports_are_two_origins(first, second):
    assert origin(first.url) != origin(second.url)
    assert origin("http://Example.org/a") == origin("http://example.org:80/b")
    assert origin("http://example.org/") != origin("https://example.org/")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_api_key_does_not_follow_a_redirect_to_another_origin(first, second, status):
    first.redirects["/api/card"] = (status, f"{second.url}/api/card")
    with MetabaseClient(first.url, api_key=API_KEY) as client:
        assert client.get("/api/card") == {"path": "/api/card"}
    assert header(first.seen[0], API_KEY_HEADER) == API_KEY  # it was sent where it belongs
    [got] = second.seen
    assert (got.method, got.path) == ("GET", "/api/card")
    assert header(got, API_KEY_HEADER) is None, got.headers
    assert API_KEY not in json.dumps(got.headers)


def test_session_header_does_not_follow_a_redirect_to_another_origin(first, second):
    first.redirects["/api/dashboard"] = (302, f"{second.url}/api/dashboard")
    with MetabaseClient(first.url) as client:
        client.login("admin@example.com", PASSWORD)
        assert client.get("/api/dashboard") == {"path": "/api/dashboard"}
    assert header(first.seen[1], SESSION_HEADER) == SESSION_ID
    [got] = second.seen
    assert header(got, SESSION_HEADER) is None, got.headers
    assert SESSION_ID not in json.dumps(got.headers)


def test_another_host_on_the_same_port_is_another_origin(first):
    """localhost and 127.0.0.1 reach the same server but are different origins."""
    first.redirects["/api/card"] = (302, f"http://localhost:{first.port}/api/other")
    with MetabaseClient(first.url, api_key=API_KEY) as client:
        client.get("/api/card")
    hop = first.seen[-1]
    assert hop.path == "/api/other" and header(hop, API_KEY_HEADER) is None


def test_credentials_stay_stripped_on_a_redirect_back(first, second):
    first.redirects["/api/card"] = (302, f"{second.url}/bounce")
    second.redirects["/bounce"] = (302, f"{first.url}/api/card2")
    with MetabaseClient(first.url, api_key=API_KEY) as client:
        client.get("/api/card")
    assert header(second.seen[0], API_KEY_HEADER) is None


def test_same_origin_redirect_keeps_the_credentials(first):
    first.redirects["/api/card"] = (302, "/api/card/")
    with MetabaseClient(first.url, api_key=API_KEY) as client:
        assert client.get("/api/card") == {"path": "/api/card/"}
    assert [header(seen, API_KEY_HEADER) for seen in first.seen] == [API_KEY, API_KEY]


@pytest.mark.parametrize("status", [307, 308])
def test_a_login_body_is_not_resent_to_another_origin(first, second, status):
    first.redirects["/api/session"] = (status, f"{second.url}/api/session")
    with MetabaseClient(first.url) as client, pytest.raises(MetabaseError) as raised:
        client.login("admin@example.com", PASSWORD)
    assert second.seen == []
    assert "redirects to another origin" in str(raised.value) and PASSWORD not in str(raised.value)


def test_a_302_after_a_login_post_reaches_the_other_origin_without_the_password(first, second):
    """requests turns a 302 of a POST into a GET without body; the other origin sees no password."""
    first.redirects["/api/session"] = (302, f"{second.url}/api/session")
    with MetabaseClient(first.url) as client, pytest.raises(MetabaseError):
        client.login("admin@example.com", PASSWORD)  # the GET answers no session id
    for got in second.seen:
        assert PASSWORD not in got.body and PASSWORD not in json.dumps(got.headers)
