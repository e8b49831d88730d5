"""docker/metabase/setup_admin.py, the compose stack's first-run step: creates METABASE_USER as
Metabase's admin through the setup API, once, and never prints the password.

Metabase cannot run here (DESIGN §6): a stand-in answers the two endpoints as Metabase's API docs
describe them (`GET /api/session/properties` with the one-time `setup-token` and `has-user-setup`,
`POST /api/setup` taking that token), refusing a wrong token and, on request, a weak password.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_sim_api import cli_env
from tests.helpers.http_stand_in import JsonHandler, Served

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "docker" / "metabase" / "setup_admin.py"
TOKEN = "5f1c3a8e-setup-token-0b7e"
EMAIL, PASSWORD = "admin@example.com", "mb-Pa55word-0123"


class StandInMetabase:
    def __init__(self) -> None:
        self.has_user = False
        self.refuse_password = False
        self.setup_bodies: list[dict[str, Any]] = []
        stand_in = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                if self.path == "/api/session/properties":
                    self.answer(
                        200,
                        {
                            "setup-token": None if stand_in.has_user else TOKEN,
                            "has-user-setup": stand_in.has_user,
                            "version": {"tag": "v0.56.4"},
                        },
                    )
                else:
                    self.answer(404, "API endpoint does not exist.")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if self.path != "/api/setup":
                    return self.answer(404, "API endpoint does not exist.")
                stand_in.setup_bodies.append(body)
                if stand_in.has_user or body.get("token") != TOKEN:
                    return self.answer(403, "The setup token is invalid or has already been used.")
                if stand_in.refuse_password:
                    return self.answer(400, {"errors": {"password": "password is too common."}})
                stand_in.has_user = True
                self.answer(200, {"id": "0d3e8c5c-session"})

        self.served = Served(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        self.url = self.served.url

    def stop(self) -> None:
        self.served.stop()


@pytest.fixture
def metabase() -> Iterator[StandInMetabase]:
    stand_in = StandInMetabase()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def setup_admin(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=60
    )


def test_creates_the_admin_once(tmp_path, metabase):
    env = {"METABASE_URL": metabase.url, "METABASE_USER": EMAIL, "METABASE_PASSWORD": PASSWORD}
    first = setup_admin(tmp_path, **env)
    assert (first.returncode, first.stdout, first.stderr) == (
        0,
        f"metabase setup: created the admin user {EMAIL}\n",
        "",
    )
    assert metabase.setup_bodies == [
        {
            "token": TOKEN,
            "user": {
                "email": EMAIL,
                "password": PASSWORD,
                "first_name": "coinstream",
                "last_name": "admin",
                "site_name": "coinstream",
            },
            "prefs": {"site_name": "coinstream", "site_locale": "en", "allow_tracking": False},
        }
    ]
    again = setup_admin(tmp_path, **env)
    assert (again.returncode, again.stdout) == (0, "metabase setup: already set up; nothing to do\n")
    assert len(metabase.setup_bodies) == 1


def test_a_refusal_is_reported_without_the_password(tmp_path, metabase):
    metabase.refuse_password = True
    result = setup_admin(tmp_path, METABASE_URL=metabase.url, METABASE_USER=EMAIL, METABASE_PASSWORD=PASSWORD)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "metabase setup: POST /api/setup answered HTTP 400: password: password is too common.\n",
    )
    assert PASSWORD not in result.stdout + result.stderr and TOKEN not in result.stderr


def test_missing_settings_and_an_unreachable_metabase(tmp_path, metabase):
    missing = setup_admin(tmp_path, METABASE_URL=metabase.url, METABASE_USER=EMAIL)
    assert (missing.returncode, missing.stderr) == (
        2,
        "metabase setup: set METABASE_URL, METABASE_USER and METABASE_PASSWORD\n",
    )
    metabase.stop()
    down = setup_admin(tmp_path, METABASE_URL=metabase.url, METABASE_USER=EMAIL, METABASE_PASSWORD=PASSWORD)
    assert (down.returncode, down.stderr) == (
        1,
        "metabase setup: GET /api/session/properties failed: Connection refused\n",
    )
