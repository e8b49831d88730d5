"""First-run set-up of a fresh Metabase for docker-compose.yml: create the admin user, once.

Why: a new Metabase answers every API call with "setup required" until someone creates the first
user in its web wizard; `coinstream metabase provision` logs in as METABASE_USER, so the compose
stack creates exactly that user through Metabase's setup API (`GET /api/session/properties` gives
the one-time `setup-token`, `POST /api/setup` uses it). On a Metabase that is already set up this
does nothing, so it runs on every `docker compose up`.

Runs in the coinstream image (mounted there by docker-compose.yml) and reads METABASE_URL,
METABASE_USER and METABASE_PASSWORD through coinstream's settings; the password never appears in
its output.
"""

from __future__ import annotations

import sys

from coinstream.common.settings import SettingsError, get_settings
from coinstream.metabase.client import MetabaseClient, MetabaseError

SITE_NAME = "coinstream"


def setup_body(token: str, email: str, password: str) -> dict:
    """The body of `POST /api/setup` (Metabase's API docs): the admin user and site preferences."""
    return {
        "token": token,
        "user": {
            "email": email,
            "password": password,
            "first_name": "coinstream",
            "last_name": "admin",
            "site_name": SITE_NAME,
        },
        "prefs": {"site_name": SITE_NAME, "site_locale": "en", "allow_tracking": False},
    }


def main() -> int:
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"metabase setup: {error}", file=sys.stderr)
        return 2
    password = settings.metabase_password.get_secret_value() if settings.metabase_password else ""
    if not (settings.metabase_url and settings.metabase_user and password):
        print("metabase setup: set METABASE_URL, METABASE_USER and METABASE_PASSWORD", file=sys.stderr)
        return 2
    with MetabaseClient(settings.metabase_url, secrets=[password]) as client:
        try:
            properties = client.get("/api/session/properties")
            if properties.get("has-user-setup"):
                print("metabase setup: already set up; nothing to do")
                return 0
            token = properties.get("setup-token")
            if not isinstance(token, str) or not token:
                print("metabase setup: Metabase offers no setup token", file=sys.stderr)
                return 1
            client.add_secret(token)
            client.post("/api/setup", setup_body(token, settings.metabase_user, password))
        except MetabaseError as error:
            print(f"metabase setup: {error}", file=sys.stderr)
            return 1
    print(f"metabase setup: created the admin user {settings.metabase_user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
