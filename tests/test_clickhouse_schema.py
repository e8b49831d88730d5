"""Schema files and migrations against the embedded ClickHouse server over HTTP.

Fresh apply, re-apply as a no-op, a tampered or missing applied file refused before anything runs,
the `coinstream clickhouse migrate` command, and the column types the issue requires.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coinstream.clickhouse.migrations import (
    MIGRATIONS_TABLE,
    RELEASED,
    SCHEMA_DIR,
    MigrationError,
    load_migrations,
    migrate,
)
from coinstream.clickhouse.sql_text import split_statements
from coinstream.clickhouse.view_files import VIEWS_DIR, VIEWS_TABLE, ViewError, load_views

pytest_plugins = ["tests.fixtures_clickhouse"]

LANDING = ["coins_current_full", "coins_historical", "ohlc_by_minute", "mov_avg_60s"]
# Every view is one file of clickhouse/views/, discovered rather than listed.
VIEWS = sorted(path.stem for path in VIEWS_DIR.glob("*.sql"))
FILES = [path.name for path in sorted(SCHEMA_DIR.glob("*.sql"))]


def tables(client: Any) -> dict[str, str]:
    return dict(client.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").result_rows)


def column_types(client: Any, table: str) -> dict[str, str]:
    return dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
            parameters={"t": table},
        ).result_rows
    )


def ledger(client: Any) -> list[tuple[str, str]]:
    return [
        tuple(row) for row in client.query(f"SELECT name, checksum FROM {MIGRATIONS_TABLE} ORDER BY name").result_rows
    ]


def test_split_statements_respects_quotes_and_comments():
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Memory;\n"
        "/* block; comment */ SELECT 'it''s; fine', \"odd;name\", `other;name`, 'back\\'slash;';\n"
        "# hash comment;\n"
        "SELECT 1\n"
    )
    assert split_statements(script) == [
        "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Memory",
        "/* block; comment */ SELECT 'it''s; fine', \"odd;name\", `other;name`, 'back\\'slash;'",
        "# hash comment;\nSELECT 1",
    ]


def test_split_statements_exact_pieces():
    assert split_statements("SELECT 1; SELECT ';'; -- only a comment;\n") == ["SELECT 1", "SELECT ';'"]
    assert split_statements("  ;; \n") == []


def test_every_statement_is_idempotent():
    # A file interrupted half-way is simply run again, so each statement must tolerate a re-run.
    for migration in load_migrations():
        for statement in migration.statements:
            code = (
                "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip().upper()
            )
            assert code.startswith(
                ("CREATE TABLE IF NOT EXISTS", "CREATE OR REPLACE VIEW", "CREATE MATERIALIZED VIEW IF NOT EXISTS")
            ) or re.match(r"ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS ", code), (migration.name, statement[:80])


def test_no_kafka_engine_in_any_statement():
    # chDB has no Kafka table engine, and creating one corrupts the database (DESIGN §6).
    for migration in load_migrations():
        for statement in migration.statements:
            assert re.search(r"ENGINE\s*=\s*Kafka", statement, re.I) is None, migration.name


def test_fresh_apply_then_reapply_is_a_no_op(clickhouse_client):
    report = migrate(clickhouse_client)
    assert report.applied == FILES and report.already_applied == []
    assert [name for name, _ in ledger(clickhouse_client)] == FILES
    created = tables(clickhouse_client)
    for name in LANDING:
        assert created[name] == "MergeTree"
        assert created[f"{name}_clickpipes_error"] == "MergeTree"
    for name in VIEWS:
        assert created[name] == "View"
    for size in ("5m", "15m", "1h", "4h", "1d"):
        assert created[f"candles_{size}"] == "AggregatingMergeTree"
        assert created[f"candles_{size}_mv"] == "MaterializedView"
    # DESIGN §5: no Float32 anywhere (caps and supplies need Float64).
    assert clickhouse_client.query(
        "SELECT count() FROM system.columns WHERE database = currentDatabase() AND type LIKE '%Float32%'"
    ).result_rows == [(0,)]
    before = ledger(clickhouse_client)

    again = migrate(clickhouse_client)
    assert again.applied == [] and again.already_applied == FILES
    assert ledger(clickhouse_client) == before
    assert tables(clickhouse_client) == created


def test_landing_column_types(clickhouse_client):
    migrate(clickhouse_client)
    current = column_types(clickhouse_client, "coins_current_full")
    assert current["code"] == "LowCardinality(String)"
    assert current["fetched_at"] == "DateTime64(3, 'UTC')"
    assert current["rate"] == "Float64"
    for name in ("volume", "cap", "liquidity", "circulating_supply", "total_supply", "max_supply"):
        assert current[name] == "Nullable(Float64)", name
    assert current["categories"] == "Array(LowCardinality(String))"
    for table in LANDING:
        types = column_types(clickhouse_client, table)
        assert {name: types[name] for name in ("_topic", "_partition", "_offset", "_timestamp", "_key")} == {
            "_topic": "LowCardinality(String)",
            "_partition": "Int32",
            "_offset": "Int64",
            "_timestamp": "DateTime64(3, 'UTC')",
            "_key": "String",
        }
    historical = column_types(clickhouse_client, "coins_historical")
    assert (historical["date"], historical["ts"], historical["rate"]) == ("Date", "DateTime64(3, 'UTC')", "Float64")
    errors = column_types(clickhouse_client, "ohlc_by_minute_clickpipes_error")
    assert (errors["_raw"], errors["reason"], errors["_offset"]) == ("String", "String", "Int64")


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, target)
    return target


def test_tampered_applied_file_is_refused_before_anything_runs(clickhouse_client, schema_copy):
    migrate(clickhouse_client, schema_copy)
    views = schema_copy / "0003_rollups.sql"
    views.write_text(views.read_text() + "\n-- an innocent-looking edit\n")
    (schema_copy / "0099_new_table.sql").write_text(
        "CREATE TABLE IF NOT EXISTS added (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    )
    with pytest.raises(MigrationError, match="0003_rollups.sql was changed after it was applied"):
        migrate(clickhouse_client, schema_copy)
    # The new file was not applied either: every check happens before any statement runs.
    assert "added" not in tables(clickhouse_client)
    assert len(ledger(clickhouse_client)) == len(FILES)


def test_missing_applied_file_is_refused(clickhouse_client, schema_copy):
    migrate(clickhouse_client, schema_copy)
    (schema_copy / "0007_historical_backfill.sql").unlink()
    with pytest.raises(MigrationError, match="0007_historical_backfill.sql was applied but the file is missing"):
        migrate(clickhouse_client, schema_copy)


def test_new_file_is_applied_alone(clickhouse_client, schema_copy):
    migrate(clickhouse_client, schema_copy)
    (schema_copy / "0099_new_table.sql").write_text(
        "-- a later schema change\nCREATE TABLE IF NOT EXISTS added (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    )
    report = migrate(clickhouse_client, schema_copy)
    assert report.applied == ["0099_new_table.sql"] and report.already_applied == FILES
    assert tables(clickhouse_client)["added"] == "MergeTree"


def test_badly_named_file_is_refused(tmp_path: Path):
    (tmp_path / "views.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="views.sql is not named NNNN_lowercase_name.sql"):
        load_migrations(tmp_path)


def test_cli_migrate_against_clickhouse_url(clickhouse_server, clickhouse_database, isolated_env):
    from coinstream.cli import main

    isolated_env.setenv("CLICKHOUSE_URL", clickhouse_server.dsn(database=clickhouse_database))
    result = CliRunner().invoke(main, ["clickhouse", "migrate"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"applied {name}" for name in FILES] + [
        f"{len(FILES)} applied, 0 already applied"
    ]
    again = CliRunner().invoke(main, ["clickhouse", "migrate"])
    assert again.exit_code == 0 and again.output == f"0 applied, {len(FILES)} already applied\n"
    client = clickhouse_server.client(database=clickhouse_database)
    try:
        assert [name for name, _ in ledger(client)] == FILES
    finally:
        client.close()


def test_a_database_migrated_by_an_earlier_release_migrates_forward(clickhouse_client, schema_copy):
    """Files changed after release (RELEASED): comments reworded in 0001 and 0002, views moved out
    of 0007 and 0009, 0004/0005/0006/0008 retired (they held only views). A database whose ledger
    holds the released checksums, including the retired files, keeps migrating, and its views (as
    the old files defined them) are replaced by the current files' definitions."""
    migrate(clickhouse_client, schema_copy)
    clickhouse_client.command(f"TRUNCATE TABLE {MIGRATIONS_TABLE}")
    clickhouse_client.command(f"TRUNCATE TABLE {VIEWS_TABLE}")
    released = {name: sorted(entry.checksums)[0] for name, entry in RELEASED.items()}
    current = {migration.name: migration.checksum for migration in load_migrations(schema_copy)}
    clickhouse_client.insert(
        MIGRATIONS_TABLE,
        [[name, released.get(name, checksum), 1] for name, checksum in sorted({**current, **released}.items())],
        column_names=["name", "checksum", "statements"],
    )
    assert sorted(RELEASED) == [
        "0001_landing_tables.sql",
        "0002_error_tables.sql",
        "0004_views_windowed.sql",
        "0005_views_history.sql",
        "0006_views_live.sql",
        "0007_historical_backfill.sql",
        "0008_views_recent.sql",
        "0009_topic_incarnations.sql",
    ]
    # The windowed view as the released 0004 defined it: no incarnation in its ordering.
    clickhouse_client.command(
        "CREATE OR REPLACE VIEW v_ohlc_by_minute AS SELECT toDateTime(window_start, 'UTC') AS window_start, code, "
        "open, high, low, close FROM (SELECT code, window_start, open, high, low, close FROM ohlc_by_minute "
        "ORDER BY code ASC, window_start ASC, _offset DESC LIMIT 1 BY code, window_start)"
    )
    report = migrate(clickhouse_client, schema_copy)
    assert report.applied == [] and report.already_applied == FILES
    assert sorted(report.views.applied) == VIEWS and report.views.dropped == []
    definition = clickhouse_client.command(
        "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'v_ohlc_by_minute'"
    )
    assert "_topic_epoch DESC" in definition

    errors = schema_copy / "0002_error_tables.sql"
    errors.write_text(
        errors.read_text().replace("ORDER BY (_topic, _partition, _offset)", "ORDER BY (_topic, _offset)", 1)
    )
    with pytest.raises(MigrationError, match="0002_error_tables.sql was changed after it was applied"):
        migrate(clickhouse_client, schema_copy)


def test_a_retired_file_comes_back_only_under_a_released_checksum(clickhouse_client, schema_copy):
    migrate(clickhouse_client, schema_copy)
    clickhouse_client.insert(
        MIGRATIONS_TABLE, [["0006_views_live.sql", "0" * 64, 1]], column_names=["name", "checksum", "statements"]
    )
    with pytest.raises(MigrationError, match="0006_views_live.sql was applied but the file is missing"):
        migrate(clickhouse_client, schema_copy)


@pytest.fixture
def views_copy(tmp_path: Path) -> Path:
    target = tmp_path / "views"
    shutil.copytree(VIEWS_DIR, target, ignore=shutil.ignore_patterns("*.yml"))
    return target


def view_ledger(client: Any) -> dict[str, str]:
    rows = client.query(f"SELECT name, argMax(checksum, applied_at) FROM {VIEWS_TABLE} GROUP BY name").result_rows
    return dict(rows)


def test_views_follow_their_files(clickhouse_client, views_copy):
    first = migrate(clickhouse_client, views_directory=views_copy)
    assert sorted(first.views.applied) == VIEWS and first.views.unchanged == []
    # Dependency order: a view comes after the views it reads.
    order = first.views.applied
    assert order.index("v_rate_by_second") < order.index("v_change_by_second")
    assert order.index("v_hist_daily") < order.index("v_10_day_mov_avg")
    again = migrate(clickhouse_client, views_directory=views_copy)
    assert again.views.applied == [] and sorted(again.views.unchanged) == VIEWS

    # An edited view is re-created, a new one created, a removed one dropped; the rest untouched.
    (views_copy / "v_hist_gaps.sql").write_text(
        "CREATE OR REPLACE VIEW v_hist_gaps AS SELECT topic, code, date FROM v_hist_backfill_state;\n"
    )
    (views_copy / "v_one.sql").write_text("-- one\nCREATE OR REPLACE VIEW v_one AS SELECT 1 AS one;\n")
    (views_copy / "v_60_sec_mov_avg.sql").unlink()
    changed = migrate(clickhouse_client, views_directory=views_copy)
    assert changed.views.applied == ["v_one", "v_hist_gaps"]  # v_hist_gaps reads v_hist_backfill_state: later
    assert changed.views.dropped == ["v_60_sec_mov_avg"]
    created = tables(clickhouse_client)
    assert "v_60_sec_mov_avg" not in created and created["v_one"] == "View"
    assert [
        c
        for (c,) in clickhouse_client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = 'v_hist_gaps' ORDER BY position"
        ).result_rows
    ] == ["topic", "code", "date"]
    assert view_ledger(clickhouse_client)["v_60_sec_mov_avg"] == ""
    # A view dropped by hand is created again.
    clickhouse_client.command("DROP VIEW v_one")
    assert migrate(clickhouse_client, views_directory=views_copy).views.applied == ["v_one"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("v_a.sql", "CREATE OR REPLACE VIEW v_b AS SELECT 1;", "must be `CREATE OR REPLACE VIEW v_a AS"),
        ("v_a.sql", "CREATE VIEW v_a AS SELECT 1;", "must be `CREATE OR REPLACE VIEW v_a AS"),
        ("v_a.sql", "CREATE OR REPLACE VIEW v_a AS SELECT 1; SELECT 2;", "must hold exactly one statement, not 2"),
        ("V-A.sql", "CREATE OR REPLACE VIEW v_a AS SELECT 1;", "the name must be lowercase"),
    ],
)
def test_malformed_view_files_are_refused(tmp_path: Path, name: str, text: str, message: str):
    (tmp_path / name).write_text(text)
    with pytest.raises(ViewError, match=re.escape(message)):
        load_views(tmp_path)


def test_views_reading_each_other_in_a_cycle_are_refused(tmp_path: Path):
    (tmp_path / "v_a.sql").write_text("CREATE OR REPLACE VIEW v_a AS SELECT * FROM v_b;")
    (tmp_path / "v_b.sql").write_text(
        "-- v_a is named in a comment only here\nCREATE OR REPLACE VIEW v_b AS SELECT * FROM v_c;"
    )
    (tmp_path / "v_c.sql").write_text("CREATE OR REPLACE VIEW v_c AS SELECT * FROM v_a;")
    with pytest.raises(ViewError, match="the views read each other in a cycle"):
        load_views(tmp_path)
    (tmp_path / "v_c.sql").write_text("CREATE OR REPLACE VIEW v_c AS SELECT 'v_a' AS not_a_read;")
    # A name inside a string literal still counts as a read (a conservative order, never a wrong one).
    with pytest.raises(ViewError, match="cycle"):
        load_views(tmp_path)
    (tmp_path / "v_c.sql").write_text("CREATE OR REPLACE VIEW v_c AS SELECT 1 AS x;")
    assert [(view.name, sorted(view.reads)) for view in load_views(tmp_path)] == [
        ("v_c", []),
        ("v_b", ["v_c"]),
        ("v_a", ["v_b"]),
    ]


def test_split_statements_uses_the_servers_lexer_heredocs_and_nested_comments():
    script = "SELECT $tag$a;b$tag$ AS x; /* x /* y; */ z; */ SELECT 2 -- last; words"
    assert split_statements(script) == ["SELECT $tag$a;b$tag$ AS x", "/* x /* y; */ z; */ SELECT 2 -- last; words"]
    assert split_statements(script, comments=False) == ["SELECT $tag$a;b$tag$ AS x", "SELECT 2"]
    assert split_statements("SELECT f(a,  b) /* c */ ,'x  y'", comments=False) == ["SELECT f(a, b) ,'x  y'"]
