"""Settings: defaults select the embedded parts; malformed values name the variable, never the value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from coinstream.common.settings import EXPECTED_FORMS, Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_defaults_select_embedded_parts(isolated_env):
    settings = load_settings()
    assert settings.coins == ("USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE")
    assert settings.currency == "USD"
    assert settings.daily_credit_budget == 10_000
    assert settings.uses_simulated_api and settings.effective_lcw_base_url == "http://127.0.0.1:8788"
    assert settings.uses_local_kafka and settings.effective_kafka_bootstrap == "127.0.0.1:9092"
    target = settings.clickhouse_target()
    assert (target.host, target.port, target.username, target.database) == ("127.0.0.1", 8123, "default", "default")
    assert settings.clickhouse_target(readonly=True).username == "dashboard"
    assert settings.coinstream_data_dir == Path("data")


def test_environment_overrides_and_parsing(isolated_env):
    isolated_env.setenv("COINS", " btc, eth ,MATIC")
    isolated_env.setenv("LCW_API_KEY", "abc")
    isolated_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9093")
    isolated_env.setenv("CLICKHOUSE_URL", "https://analyst:p%40ss@ch.example.com:8443/crypto")
    settings = load_settings()
    assert settings.coins == ("BTC", "ETH", "MATIC")
    assert not settings.uses_simulated_api
    assert settings.effective_lcw_base_url == "https://api.livecoinwatch.com"
    assert settings.effective_kafka_bootstrap == "broker-1:9092,broker-2:9093"
    target = settings.clickhouse_target()
    assert target.connect_kwargs() == {
        "host": "ch.example.com",
        "port": 8443,
        "username": "analyst",
        "password": "p@ss",
        "database": "crypto",
        "secure": True,
    }
    assert target.http_url == "https://ch.example.com:8443/crypto"


def test_dotenv_file_is_read(isolated_env, tmp_path):
    (tmp_path / ".env").write_text("CURRENCY=eur\nPOLL_INTERVAL_S=12.5\n")
    settings = load_settings()
    assert (settings.currency, settings.poll_interval_s) == ("EUR", 12.5)


def test_environment_wins_over_dotenv(isolated_env, tmp_path):
    (tmp_path / ".env").write_text("CURRENCY=EUR\n")
    isolated_env.setenv("CURRENCY", "GBP")
    assert load_settings().currency == "GBP"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CLICKHOUSE_URL", "ftp://admin:hunter2-secret@db:9000/x"),
        ("KAFKA_BOOTSTRAP_SERVERS", "no-port-hunter2-secret"),
        ("DAILY_CREDIT_BUDGET", "-5"),
        ("POLL_INTERVAL_S", "fast"),
        ("COINS", "BTC,E$H"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_WHATEVER"),
        ("LCW_BASE_URL", "www.example.org/hunter2"),
    ],
)
def test_malformed_setting_names_variable_and_form_without_value(isolated_env, variable, value):
    isolated_env.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"{variable} is malformed: expected {EXPECTED_FORMS[variable]}" in message
    assert value not in message
    assert "hunter2" not in message


def test_secrets_are_not_in_the_settings_repr(isolated_env):
    isolated_env.setenv("LCW_API_KEY", "k-0123456789abcdef")
    isolated_env.setenv("KAFKA_SASL_PASSWORD", "sasl-topsecret")
    isolated_env.setenv("CLICKHOUSE_URL", "http://u:ch-topsecret@h:8123/db")
    text = repr(load_settings()) + str(load_settings())
    for secret in ("k-0123456789abcdef", "sasl-topsecret", "ch-topsecret"):
        assert secret not in text


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields == documented == set(EXPECTED_FORMS)


def test_cli_fails_at_start_naming_the_variable(isolated_env):
    env = {"PATH": "/usr/bin:/bin", "CLICKHOUSE_URL": "mysql://root:pw-hunter2@db/x", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "coinstream", "broker", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    # --help is answered without reading settings; a real run must fail fast.
    assert result.returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "coinstream", "broker", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CLICKHOUSE_URL is malformed: expected http(s)://user:password@host:port/database" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_env_example_and_the_readme_table_are_generated_from_the_declarations():
    from coinstream.common.settings_docs import generated_files, settings_table

    stale = [path.name for path, text in generated_files(REPO).items() if path.read_text() != text]
    assert stale == [], "run: python -m coinstream.common.settings_docs --write"
    env_example = (REPO / ".env.example").read_text()
    assert "\nLOADER_BATCH_MS=250\n" in env_example and "\nKSQL_COMMIT_INTERVAL_MS=250\n" in env_example
    assert "\nCOINS=USDT,BTC,ETH,FDUSD,XRP,SOL,USDC,DOGE,LINK,AAVE\n" in env_example
    assert "\nLCW_API_KEY=\n" in env_example and "\nHISTORICAL_CLOSE_MARGIN_S=300\n" in env_example
    assert "| `LOADER_BATCH_MS` | `250` | a whole number of milliseconds, 1-600000 |" in settings_table()
    assert "| `CLICKHOUSE_PASSWORD` | unset | a password |" in settings_table()
