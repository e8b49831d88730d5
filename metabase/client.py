"""A small client for Metabase's REST API: authentication, JSON in and out, readable errors.

Why our own and not a client library: provisioning needs six endpoints, and a readable error
("POST /api/card answered HTTP 400: name: value must be a non-blank string") matters more than
coverage. Authentication follows Metabase's docs: `POST /api/session` {username, password} gives a
session id sent as `X-Metabase-Session`, or an API key is sent as `x-api-key`.

Secrets (the password, the API key, the session id, and any extra secret the caller names, such as
the ClickHouse password inside a database's details) never appear in an error message: Metabase
sometimes echoes request fields in its errors, so every message is scrubbed.

Redirects: `requests` drops `Authorization` when a redirect leaves the host, but not our own
headers. `OriginBoundSession` drops the session and API-key headers whenever a redirect leaves the
origin (scheme, host and port), and refuses to resend a request body (a 307/308 of the login, which
carries the password) to another origin. Same-origin redirects keep everything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests

from coinstream.common.errors import os_reason

SESSION_HEADER = "X-Metabase-Session"
API_KEY_HEADER = "x-api-key"
_MAX_MESSAGE = 500


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit: what "the same server" means here."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


class CrossOriginRedirect(requests.RequestException):
    """A redirect would resend a request body (e.g. a password) to another origin: not followed."""


class OriginBoundSession(requests.Session):
    """A `requests.Session` whose credential headers never follow a redirect to another origin."""

    credential_headers: tuple[str, ...] = (SESSION_HEADER, API_KEY_HEADER)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # Authorization, as requests does
        if origin(response.request.url or "") == origin(prepared_request.url or ""):
            return
        for header in self.credential_headers:
            prepared_request.headers.pop(header, None)  # case-insensitive
        if prepared_request.body is not None:
            raise CrossOriginRedirect(
                f"HTTP {response.status_code} redirects to another origin "
                f"({_origin_text(prepared_request.url or '')}) and would resend the request body; "
                "not followed",
                response=response,
            )


def _origin_text(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


class MetabaseError(RuntimeError):
    """A request failed: the method, path, HTTP status (None without an answer) and Metabase's message."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method, self.path, self.status, self.message = method, path, status, message
        where = f"{method} {path}"
        super().__init__(
            f"{where} answered HTTP {status}: {message}" if status is not None else f"{where} failed: {message}"
        )


def error_message(body: str) -> str:
    """Metabase's explanation out of an error body: `message`, else the per-field `errors`, else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:_MAX_MESSAGE] or "(empty answer)"
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            return data["message"][:_MAX_MESSAGE]
        errors = data.get("errors")
        if isinstance(errors, dict) and errors:
            return "; ".join(f"{field}: {reason}" for field, reason in errors.items())[:_MAX_MESSAGE]
    if isinstance(data, str):
        return data[:_MAX_MESSAGE]
    return body.strip()[:_MAX_MESSAGE]


class MetabaseClient:
    """JSON requests against one Metabase, authenticated by an API key or a session."""

    def __init__(
        self, url: str, *, api_key: str | None = None, timeout: float = 30.0, secrets: Iterable[str] = ()
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = OriginBoundSession()
        self._secrets = {secret for secret in secrets if secret}
        self._session_id: str | None = None
        if api_key:
            self._secrets.add(api_key)
            self._http.headers[API_KEY_HEADER] = api_key

    def add_secret(self, secret: str | None) -> None:
        """Another value to keep out of error messages (e.g. a password inside a request body)."""
        if secret:
            self._secrets.add(secret)

    def login(self, username: str, password: str) -> None:
        """Open a session with a user's credentials (`POST /api/session`)."""
        self.add_secret(password)
        answer = self.request("POST", "/api/session", {"username": username, "password": password})
        session_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise MetabaseError("POST", "/api/session", None, "the answer holds no session id")
        self.add_secret(session_id)
        self._session_id = session_id
        self._http.headers[SESSION_HEADER] = session_id

    def logout(self) -> None:
        """End the session opened by `login` (nothing to do with an API key)."""
        if self._session_id is not None:
            with contextlib.suppress(MetabaseError):  # the session expires by itself; this is a courtesy
                self.request("DELETE", "/api/session")
            self._session_id = None
            self._http.headers.pop(SESSION_HEADER, None)

    def close(self) -> None:
        self.logout()
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request; return the decoded JSON (None for an empty answer) or raise MetabaseError."""
        try:
            response = self._http.request(method, self.url + path, json=body, params=params, timeout=self.timeout)
        except CrossOriginRedirect as error:
            raise MetabaseError(method, path, None, self.scrub(str(error))) from None
        except requests.RequestException as error:
            raise MetabaseError(method, path, None, self.scrub(_reason(error))) from None
        if response.status_code >= 400:
            raise MetabaseError(method, path, response.status_code, self.scrub(error_message(response.text)))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise MetabaseError(method, path, response.status_code, "the answer is not JSON") from None

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __enter__(self) -> MetabaseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _reason(error: BaseException) -> str:
    """The innermost cause of a transport failure (e.g. "Connection refused"), without URLs."""
    return os_reason(error) or type(error).__name__
