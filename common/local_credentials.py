"""Passwords of the embedded ClickHouse server, generated on its first start and kept beside its data.

Why: the embedded server must never let anyone in with an empty password, yet a new user should
not have to invent and copy passwords before `coinstream up` works. So the server, on its first
start over a data directory, generates a strong password for the full user and one for the
read-only user and writes them to `<data>/clickhouse/credentials.env`, readable by its owner only.
Every coinstream command reading that data directory (`coinstream sql`, the loader, the dashboard,
`coinstream status`, ...) finds them there through the settings. A password set explicitly
(CLICKHOUSE_PASSWORD, CLICKHOUSE_READONLY_PASSWORD in the environment or `.env`) wins over the file.

The file has the `.env` form, so an operator reads it with `cat` to configure Metabase or a SQL
client.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS_FILE = "credentials.env"
_FULL_KEY = "CLICKHOUSE_PASSWORD"
_READONLY_KEY = "CLICKHOUSE_READONLY_PASSWORD"


@dataclass(frozen=True)
class LocalCredentials:
    """The generated passwords (the user names come from the settings)."""

    password: str
    readonly_password: str


def credentials_path(clickhouse_data_dir: Path) -> Path:
    return Path(clickhouse_data_dir) / CREDENTIALS_FILE


def read_credentials(clickhouse_data_dir: Path) -> LocalCredentials | None:
    """The stored passwords, or None when the server has not generated them (or they are unreadable)."""
    try:
        text = credentials_path(clickhouse_data_dir).read_text(encoding="utf-8")
    except OSError:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    if not values.get(_FULL_KEY) or not values.get(_READONLY_KEY):
        return None
    return LocalCredentials(values[_FULL_KEY], values[_READONLY_KEY])


def ensure_credentials(clickhouse_data_dir: Path) -> LocalCredentials:
    """The stored passwords, generating and storing them (mode 0600) on the first call.

    Two processes starting at once agree: the file is created exclusively, and the loser of the
    race reads the winner's.
    """
    existing = read_credentials(clickhouse_data_dir)
    if existing is not None:
        return existing
    path = credentials_path(clickhouse_data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = LocalCredentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    text = (
        "# Passwords of coinstream's embedded ClickHouse server, generated on its first start.\n"
        "# Users: CLICKHOUSE_USER (default: default) and CLICKHOUSE_READONLY_USER (default:\n"
        "# dashboard). Setting CLICKHOUSE_PASSWORD / CLICKHOUSE_READONLY_PASSWORD overrides them.\n"
        f"{_FULL_KEY}={generated.password}\n"
        f"{_READONLY_KEY}={generated.readonly_password}\n"
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        with contextlib.suppress(FileExistsError):  # another process stored its passwords first
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    stored = read_credentials(clickhouse_data_dir)
    if stored is None:
        raise OSError(f"cannot read the generated ClickHouse passwords in {path}")
    return stored
