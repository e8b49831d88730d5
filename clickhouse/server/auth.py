"""Who is asking: ClickHouse's ways of passing credentials, checked against the configured users.

Two users exist, both from the settings: the full user (CLICKHOUSE_USER/CLICKHOUSE_PASSWORD) and
the read-only user for dashboards (CLICKHOUSE_READONLY_USER/CLICKHOUSE_READONLY_PASSWORD). Clients
pass credentials as HTTP basic auth, as `X-ClickHouse-User`/`X-ClickHouse-Key` headers or as
`user`/`password` URL parameters; without any, ClickHouse assumes user `default` with an empty
password. A failure is answered exactly like ClickHouse (code 516, HTTP 403), naming the user but
never the password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from coinstream.clickhouse.server.errors import AUTHENTICATION_FAILED, ClickHouseError


@dataclass(frozen=True)
class User:
    """A configured user; `readonly` users run every query with ClickHouse's `readonly` setting."""

    name: str
    password: str
    readonly: bool


class UserDirectory:
    """The configured users, and the check of a request's credentials against them."""

    def __init__(self, users: list[User]) -> None:
        self._users: dict[str, User] = {}
        for user in users:
            # The first definition wins: if the read-only user shares the full user's name, the
            # full user is kept rather than silently demoting it.
            self._users.setdefault(user.name, user)

    @property
    def names(self) -> list[str]:
        return list(self._users)

    def authenticate(self, params: Mapping[str, str], headers: Mapping[str, str]) -> User:
        """The user the request authenticates as, or ClickHouseError 516 (like ClickHouse)."""
        name, password = extract_credentials(params, headers)
        user = self._users.get(name)
        supplied = password.encode("utf-8")
        expected = (user.password if user else "\0no such user").encode("utf-8")
        if user is None or not hmac.compare_digest(supplied, expected):
            raise ClickHouseError.make(
                AUTHENTICATION_FAILED,
                f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return user


def extract_credentials(params: Mapping[str, str], headers: Mapping[str, str]) -> tuple[str, str]:
    """(user, password) from basic auth, X-ClickHouse-User/Key headers or URL parameters.

    ClickHouse refuses a request that mixes these methods; so does this.
    """
    found: list[tuple[str, str]] = []
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise ClickHouseError.make(AUTHENTICATION_FAILED, "Only Basic authentication is supported over HTTP here")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ClickHouseError.make(AUTHENTICATION_FAILED, "Malformed Basic authorization header") from None
        user, _, password = decoded.partition(":")
        found.append((user or "default", password))
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        found.append((headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key", "")))
    if "user" in params or "password" in params:
        found.append((params.get("user") or "default", params.get("password", "")))
    if len(found) > 1:
        raise ClickHouseError.make(
            AUTHENTICATION_FAILED,
            "Invalid authentication: it is not allowed to use several authentication methods "
            "(Authorization header, X-ClickHouse-User/Key headers, user/password parameters) "
            "simultaneously",
        )
    return found[0] if found else ("default", "")
