"""CLICKHOUSE_READONLY_USER counts the same whether it comes from the environment or from `.env`.

Attacks `Settings.clickhouse_target(readonly=True)` against an external server (CLICKHOUSE_URL set):
it used to look for the variable in `os.environ` only, so a read-only user written in `.env` was
ignored and dashboards silently got the admin login from the URL.
"""

from __future__ import annotations

import pytest

from coinstream.common.settings import load_settings

URL = "https://admin:admin-secret@ch.example.com:8443/crypto"


def _write_env(tmp_path, text: str):
    path = tmp_path / "conf" / "coinstream.env"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_readonly_user_from_dotenv_is_used(isolated_env, tmp_path):
    env_file = _write_env(
        tmp_path,
        (f"CLICKHOUSE_URL={URL}\nCLICKHOUSE_READONLY_USER=grafana_ro\nCLICKHOUSE_READONLY_PASSWORD=ro-secret\n"),
    )
    settings = load_settings(env_file=env_file)
    target = settings.clickhouse_target(readonly=True)
    assert (target.username, target.password) == ("grafana_ro", "ro-secret")
    assert (target.host, target.port, target.database, target.secure) == (
        "ch.example.com",
        8443,
        "crypto",
        True,
    )
    # The writer's target is untouched.
    admin = settings.clickhouse_target()
    assert (admin.username, admin.password) == ("admin", "admin-secret")


def test_readonly_user_from_environment_is_used(isolated_env, tmp_path):
    isolated_env.setenv("CLICKHOUSE_URL", URL)
    isolated_env.setenv("CLICKHOUSE_READONLY_USER", "grafana_ro")
    isolated_env.setenv("CLICKHOUSE_READONLY_PASSWORD", "ro-secret")
    target = load_settings(env_file=None).clickhouse_target(readonly=True)
    assert (target.username, target.password) == ("grafana_ro", "ro-secret")


def test_readonly_user_from_dotenv_mixed_with_url_from_environment(isolated_env, tmp_path):
    isolated_env.setenv("CLICKHOUSE_URL", URL)
    env_file = _write_env(tmp_path, "CLICKHOUSE_READONLY_USER=grafana_ro\nCLICKHOUSE_READONLY_PASSWORD=ro\n")
    target = load_settings(env_file=env_file).clickhouse_target(readonly=True)
    assert (target.username, target.password) == ("grafana_ro", "ro")


@pytest.mark.parametrize("extra", ["", "CLICKHOUSE_READONLY_USER=\n", "CLICKHOUSE_READONLY_PASSWORD=ro\n"])
def test_without_readonly_user_the_external_target_keeps_the_urls_user(isolated_env, tmp_path, extra):
    """Documented behaviour: no CLICKHOUSE_READONLY_USER anywhere (an empty `NAME=` is unset, and a
    password alone does not name a user) → the read-only target is the URL's own user."""
    env_file = _write_env(tmp_path, f"CLICKHOUSE_URL={URL}\n{extra}")
    target = load_settings(env_file=env_file).clickhouse_target(readonly=True)
    assert (target.username, target.password) == ("admin", "admin-secret")


def test_local_server_readonly_target_unchanged(isolated_env, tmp_path):
    env_file = _write_env(tmp_path, "CLICKHOUSE_READONLY_USER=viewer\nCLICKHOUSE_READONLY_PASSWORD=v\n")
    target = load_settings(env_file=env_file).clickhouse_target(readonly=True)
    assert (target.host, target.username, target.password) == ("127.0.0.1", "viewer", "v")
    assert load_settings(env_file=None).clickhouse_target(readonly=True).username == "dashboard"
