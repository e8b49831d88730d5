"""`coinstream metabase provision` takes its secrets from the settings (environment or `.env`) or a
no-echo prompt in a terminal — never from the command line, where `ps` and shell history show them.

Attacks: a password or API key only in `.env` must be used (settings, not the shell environment);
no credentials and no terminal must fail with exit 2 naming METABASE_PASSWORD and METABASE_API_KEY
before any request; the old `--password` / `--api-key` value options must be gone; in a terminal
the password is asked for without echo. The secret never appears in the output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from coinstream.cli import main
from coinstream.cli.commands import metabase as metabase_command
from tests.fixtures_metabase import API_KEY, PASSWORD, USERNAME, FakeMetabase
from tests.fixtures_sim_api import cli_env

pytest_plugins = ["tests.fixtures_metabase"]

REPO = Path(__file__).resolve().parent.parent
SECRETS = (PASSWORD, API_KEY)


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, ["metabase", "provision", *args], input=input)
    for secret in SECRETS:
        assert secret not in result.output
    return result


def write_dotenv(**variables: str) -> None:
    # isolated_env made the test's tmp dir the working directory: this is the `.env` settings read.
    Path(".env").write_text("".join(f"{name}={value}\n" for name, value in variables.items()))


def test_password_from_dotenv(isolated_env, fake_metabase: FakeMetabase):
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME, METABASE_PASSWORD=PASSWORD)
    result = run()
    assert result.exit_code == 0, result.output
    assert fake_metabase.cards and fake_metabase.problems == []
    assert fake_metabase.sessions == set()  # logged in, then out


def test_api_key_from_dotenv(isolated_env, fake_metabase: FakeMetabase):
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_API_KEY=API_KEY)
    result = run()
    assert result.exit_code == 0, result.output
    assert fake_metabase.cards and fake_metabase.problems == []


def test_password_from_environment(isolated_env, fake_metabase: FakeMetabase):
    for name, value in (
        ("METABASE_URL", fake_metabase.url),
        ("METABASE_USER", USERNAME),
        ("METABASE_PASSWORD", PASSWORD),
    ):
        isolated_env.setenv(name, value)
    result = run()
    assert result.exit_code == 0, result.output
    assert fake_metabase.cards


def test_no_credentials_and_no_terminal_is_a_usage_error(isolated_env, fake_metabase: FakeMetabase):
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME)
    result = run()
    assert result.exit_code == 2, result.output
    assert "no credentials" in result.output
    assert "METABASE_PASSWORD" in result.output and "METABASE_API_KEY" in result.output
    assert fake_metabase.writes == [] and fake_metabase.sessions == set()


def test_no_credentials_in_a_real_process_with_stdin_not_a_terminal(tmp_path, fake_metabase):
    """The real check of stdin (not CliRunner's): a child whose stdin is /dev/null never prompts."""
    done = subprocess.run(
        [sys.executable, "-m", "coinstream", "metabase", "provision"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(PYTHONPATH=str(REPO), METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME),
    )
    assert done.returncode == 2, done.stderr
    assert "METABASE_PASSWORD" in done.stderr and "METABASE_API_KEY" in done.stderr
    assert "password:" not in (done.stdout + done.stderr).lower()  # no prompt was shown
    assert fake_metabase.writes == []


@pytest.mark.parametrize("option, value", [("--password", PASSWORD), ("--api-key", API_KEY)])
def test_secrets_are_not_command_line_options(isolated_env, fake_metabase, option, value):
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME)
    result = run(option, value)
    assert result.exit_code == 2
    assert "No such option" in result.output and option in result.output
    assert fake_metabase.writes == [] and fake_metabase.sessions == set()
    help_text = run("--help").output
    assert "--password" not in help_text and "--api-key" not in help_text
    assert "METABASE_PASSWORD" in help_text


def test_in_a_terminal_the_password_is_asked_without_echo(isolated_env, fake_metabase, monkeypatch):
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME)
    monkeypatch.setattr(metabase_command, "_stdin_is_a_terminal", lambda: True)
    result = run(input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert f"Metabase password for {USERNAME}:" in result.output
    assert fake_metabase.cards and fake_metabase.problems == []


def test_in_a_terminal_a_missing_user_is_asked_too(isolated_env, fake_metabase, monkeypatch):
    write_dotenv(METABASE_URL=fake_metabase.url)
    monkeypatch.setattr(metabase_command, "_stdin_is_a_terminal", lambda: True)
    result = run(input=f"{USERNAME}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert fake_metabase.cards


def test_settings_win_over_the_prompt(isolated_env, fake_metabase, monkeypatch):
    """With the password in the settings, a terminal is never asked (stdin has nothing to give)."""
    write_dotenv(METABASE_URL=fake_metabase.url, METABASE_USER=USERNAME, METABASE_PASSWORD=PASSWORD)
    monkeypatch.setattr(metabase_command, "_stdin_is_a_terminal", lambda: True)
    result = run(input="")
    assert result.exit_code == 0, result.output
    assert "Metabase password" not in result.output
