"""`coinstream metabase provision` against a fake Metabase that checks every request body.

Fresh Metabase → everything created as the spec says; second run → no write at all; a changed card
SQL → only that card updated; a Metabase error → reported with the object that failed, and a
re-run finishes the job. Secrets never appear in the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coinstream.cli import main
from coinstream.common.settings import get_settings
from coinstream.metabase.spec import DEFAULT_SPEC, load_spec
from tests.fixtures_metabase import API_KEY, PASSWORD, USERNAME, FakeMetabase

pytest_plugins = ["tests.fixtures_metabase"]

SPEC = load_spec()
CH_READONLY_PASSWORD = "ch-ro-Secret"


@pytest.fixture
def env(isolated_env: pytest.MonkeyPatch, fake_metabase: FakeMetabase) -> pytest.MonkeyPatch:
    isolated_env.setenv("METABASE_URL", fake_metabase.url)
    isolated_env.setenv("METABASE_USER", USERNAME)
    isolated_env.setenv("METABASE_PASSWORD", PASSWORD)
    isolated_env.setenv("CLICKHOUSE_READONLY_USER", "dashboard")
    isolated_env.setenv("CLICKHOUSE_READONLY_PASSWORD", CH_READONLY_PASSWORD)
    isolated_env.setenv("CLICKHOUSE_PORT", "8123")
    return isolated_env


def provision(*args: str):
    result = CliRunner().invoke(main, ["metabase", "provision", *args])
    for secret in (PASSWORD, API_KEY, CH_READONLY_PASSWORD):
        assert secret not in result.output
    return result


def lines_with(output: str, action: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(action)]


def test_fresh_metabase_gets_everything_the_spec_describes(env, fake_metabase):
    result = provision()
    assert result.exit_code == 0, result.output
    assert fake_metabase.problems == []
    total = 3 + len(SPEC.cards)  # database, collection, cards, dashboard
    assert len(lines_with(result.output, "created")) == total
    assert result.output.splitlines()[-1] == f"Metabase at {fake_metabase.url}: {total} created, 0 updated, 0 unchanged"

    [database] = fake_metabase.databases.values()
    assert database["name"] == "coinstream ClickHouse" and database["engine"] == "clickhouse"
    assert database["details"] == {
        "host": "127.0.0.1",
        "port": 8123,
        "user": "dashboard",
        "password": CH_READONLY_PASSWORD,
        "dbname": "default",
        "ssl": False,
    }
    [collection] = [c for c in fake_metabase.collections.values() if c["name"] == "coinstream"]

    assert sorted(card["name"] for card in fake_metabase.cards.values()) == sorted(card.name for card in SPEC.cards)
    for card in SPEC.cards:
        stored = fake_metabase.card_by_name(card.name)
        assert stored["collection_id"] == collection["id"]
        assert stored["display"] == card.display
        assert stored["visualization_settings"] == card.visualization
        assert stored["dataset_query"]["database"] == database["id"]
        assert stored["dataset_query"]["native"]["query"] == card.sql
        assert sorted(stored["dataset_query"]["native"]["template-tags"]) == sorted(card.tags)

    [dashboard] = fake_metabase.dashboards.values()
    assert dashboard["name"] == SPEC.name and dashboard["collection_id"] == collection["id"]
    overview_id = fake_metabase.card_by_name("Market overview")["id"]
    assert dashboard["parameters"] == [
        {
            "id": "coin",
            "name": "Coin",
            "slug": "coin",
            "type": "string/=",
            "sectionId": "string",
            "default": ["BTC"],
            "required": True,
            "values_query_type": "list",
            "values_source_type": "card",
            "values_source_config": {
                "card_id": overview_id,
                "value_field": ["field", "code", {"base-type": "type/Text"}],
            },
        }
    ]
    placed = {d["card_id"]: d for d in dashboard["dashcards"]}
    assert len(dashboard["dashcards"]) == len(SPEC.cards)
    for card in SPEC.cards:
        card_id = fake_metabase.card_by_name(card.name)["id"]
        dashcard = placed[card_id]
        assert (dashcard["row"], dashcard["col"], dashcard["size_x"], dashcard["size_y"]) == (
            card.layout.row,
            card.layout.col,
            card.layout.size_x,
            card.layout.size_y,
        )
        expected = (
            [{"parameter_id": "coin", "card_id": card_id, "target": ["variable", ["template-tag", "coin"]]}]
            if "coin" in card.tags
            else []
        )
        assert dashcard["parameter_mappings"] == expected
    # Cards showing every coin on purpose are not filtered by the coin.
    assert placed[overview_id]["parameter_mappings"] == []
    # The session was closed at the end.
    assert fake_metabase.sessions == set()


def test_second_run_changes_nothing(env, fake_metabase):
    assert provision().exit_code == 0
    writes = len(fake_metabase.writes)
    result = provision()
    assert result.exit_code == 0, result.output
    assert fake_metabase.writes[writes:] == []
    assert lines_with(result.output, "created") == lines_with(result.output, "updated") == []
    assert result.output.splitlines()[-1].endswith(f"0 created, 0 updated, {3 + len(SPEC.cards)} unchanged")


def test_a_changed_card_sql_updates_that_card_only(env, fake_metabase, tmp_path: Path):
    assert provision().exit_code == 0
    card_id = fake_metabase.card_by_name("1-minute OHLC")["id"]
    text = DEFAULT_SPEC.read_text()
    assert text.count("LIMIT 240 BY code") == 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace("LIMIT 240 BY code", "LIMIT 60 BY code"))
    writes = len(fake_metabase.writes)

    result = provision("--spec", str(changed))
    assert result.exit_code == 0, result.output
    assert lines_with(result.output, "updated") == [
        f"updated   card       '1-minute OHLC' id {card_id} (dataset_query)"
    ]
    assert result.output.splitlines()[-1].endswith(f"0 created, 1 updated, {2 + len(SPEC.cards)} unchanged")
    [(method, path, body)] = fake_metabase.writes[writes:]
    assert (method, path, list(body)) == ("PUT", f"/api/card/{card_id}", ["dataset_query"])
    assert "LIMIT 60 BY code" in fake_metabase.cards[card_id]["dataset_query"]["native"]["query"]
    assert fake_metabase.problems == []


def test_a_metabase_error_names_the_failing_object_and_a_rerun_completes(env, fake_metabase):
    fake_metabase.fail("POST", "/api/card", name="Daily OHLC", status=400, message="Invalid query for this database")
    result = provision()
    assert result.exit_code == 1
    index = [card.name for card in SPEC.cards].index("Daily OHLC")
    assert len(lines_with(result.output, "created")) == 2 + index  # database, collection, earlier cards
    assert (
        "coinstream metabase provision: failed on card 'Daily OHLC': POST /api/card answered "
        "HTTP 400: Invalid query for this database"
    ) in result.output
    assert f"before the failure: {2 + index} created, 0 updated, 0 unchanged" in result.output
    assert fake_metabase.dashboards == {}

    fake_metabase.failures.clear()
    result = provision()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith(
        f"{len(SPEC.cards) - index + 1} created, 0 updated, {2 + index} unchanged"
    )
    assert fake_metabase.problems == []


def test_api_key_instead_of_a_session(env, fake_metabase):
    env.delenv("METABASE_PASSWORD")
    env.setenv("METABASE_API_KEY", API_KEY)
    result = provision()
    assert result.exit_code == 0, result.output
    assert fake_metabase.sessions == set() and fake_metabase.problems == []
    assert len(fake_metabase.cards) == len(SPEC.cards)


def test_wrong_password_is_reported_without_echoing_it(env, fake_metabase):
    env.setenv("METABASE_PASSWORD", "not-" + PASSWORD)
    result = provision()
    assert result.exit_code == 1
    assert "not-" + PASSWORD not in result.output
    assert (
        f"cannot log in to Metabase at {fake_metabase.url}: POST /api/session answered "
        "HTTP 401: password: did not match stored password"
    ) in result.output
    assert fake_metabase.writes == []


def test_clickhouse_host_as_metabase_sees_it(env, fake_metabase):
    assert provision("--clickhouse-host", "clickhouse:8124").exit_code == 0
    [database] = fake_metabase.databases.values()
    assert (database["details"]["host"], database["details"]["port"]) == ("clickhouse", 8124)
    # Changing it later updates the connection in place.
    result = provision("--clickhouse-host", "ch.internal")
    assert result.exit_code == 0, result.output
    assert lines_with(result.output, "updated") == [
        f"updated   database   'coinstream ClickHouse' id {database['id']} (details)"
    ]
    assert fake_metabase.databases[database["id"]]["details"]["host"] == "ch.internal"
    assert fake_metabase.databases[database["id"]]["details"]["port"] == 8123


def test_missing_settings_are_usage_errors(isolated_env):
    result = CliRunner().invoke(main, ["metabase", "provision"])
    assert result.exit_code == 2 and "set METABASE_URL or pass --url" in result.output
    isolated_env.setenv("METABASE_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["metabase", "provision"])
    assert result.exit_code == 2 and "no credentials" in result.output
