"""Every view is `clickhouse/views/<view>.sql` plus `<view>.yml`; the spec is checked, not trusted.

For each view: its declared columns are the ones ClickHouse reports (names, types, order), the
tests it names exist, it says whether dashboards read it and the dashboard spec agrees, and each
case in its spec (rows given to the landing tables, a query, the rows expected, worked out by hand
in the file) holds against the real server. Adding a view is adding those two files.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinstream.clickhouse.migrations import migrate
from coinstream.clickhouse.view_files import VIEWS_DIR
from coinstream.metabase.spec import load_spec
from tests.test_loader_support import unique_prefix

pytest_plugins = ["tests.fixtures_clickhouse"]

REPO = Path(__file__).resolve().parents[1]
VIEW_NAMES = sorted(path.stem for path in VIEWS_DIR.glob("*.sql"))
SPEC_KEYS = {"answers", "columns", "dashboard", "tested_by", "cases"}
CASE_KEYS = {"name", "given", "query", "expect"}


def view_spec(name: str) -> dict[str, Any]:
    spec = yaml.safe_load((VIEWS_DIR / f"{name}.yml").read_text())
    assert isinstance(spec, dict), name
    return spec


def all_cases() -> list[Any]:
    return [
        pytest.param(name, case, id=f"{name}-{index}")
        for name in VIEW_NAMES
        for index, case in enumerate(view_spec(name).get("cases") or [])
    ]


def test_every_view_file_has_its_spec_and_back():
    assert VIEW_NAMES, "no view files found"
    specs = sorted(path.stem for path in VIEWS_DIR.glob("*.yml"))
    assert specs == VIEW_NAMES
    assert sorted(path.name for path in VIEWS_DIR.iterdir() if path.suffix not in (".sql", ".yml")) == []


@pytest.mark.parametrize("name", VIEW_NAMES)
def test_spec_is_well_formed(name: str):
    spec = view_spec(name)
    assert set(spec) <= SPEC_KEYS, set(spec) - SPEC_KEYS
    assert isinstance(spec["answers"], str) and len(spec["answers"]) > 20
    assert isinstance(spec["dashboard"], bool)
    assert spec["columns"] and all(set(column) <= {"name", "type", "description"} for column in spec["columns"])
    # Each view is checked somewhere: by cases of its own, or by named tests (or both).
    assert spec.get("cases") or spec.get("tested_by"), f"{name} names no case and no test"
    for case in spec.get("cases") or []:
        assert set(case) == CASE_KEYS, (name, set(case) ^ CASE_KEYS)


def _test_functions() -> set[str]:
    names = set()
    for path in sorted((REPO / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        names |= {
            f"tests/{path.name}::{node.name}"
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
    return names


def test_the_tests_a_spec_names_exist_and_mention_the_view():
    existing = _test_functions()
    missing = [
        f"{name}: {test}"
        for name in VIEW_NAMES
        for test in view_spec(name).get("tested_by") or []
        if test not in existing
    ]
    assert missing == []


def test_the_dashboard_spec_reads_exactly_the_views_marked_for_dashboards():
    read = {name for card in load_spec().cards for name in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", card.sql)}
    marked = {name for name in VIEW_NAMES if view_spec(name)["dashboard"]}
    assert marked == read & set(VIEW_NAMES)


@pytest.fixture(scope="module")
def migrated(clickhouse_server: Any):
    """A database with the schema and every view, for the column checks."""
    database = f"view_specs_{unique_prefix()[1:-1]}"
    admin = clickhouse_server.client()
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_server.client(database=database)
    migrate(client)
    try:
        yield client
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


@pytest.mark.parametrize("name", VIEW_NAMES)
def test_declared_columns_are_the_views_columns(migrated: Any, name: str):
    actual = migrated.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "ORDER BY position",
        parameters={"t": name},
    ).result_rows
    assert [(column["name"], column["type"]) for column in view_spec(name)["columns"]] == [tuple(r) for r in actual]


def _rows(client: Any, query: str) -> list[list[Any]]:
    result = client.raw_query(
        query,
        fmt="JSONCompactEachRow",
        settings={"output_format_json_quote_64bit_integers": 0, "output_format_json_quote_decimals": 0},
    )
    return [json.loads(line) for line in result.decode().splitlines() if line]


@pytest.mark.parametrize(("name", "case"), all_cases())
def test_view_case(clickhouse_client: Any, name: str, case: dict[str, Any]):
    migrate(clickhouse_client)
    for table, rows in case["given"].items():
        body = "\n".join(json.dumps(row) for row in rows).encode()
        clickhouse_client.raw_insert(table, insert_block=body, fmt="JSONEachRow")
    assert re.search(rf"\b{name}\b", case["query"]), "a case queries its own view"
    assert _rows(clickhouse_client, case["query"]) == case["expect"], case["name"]


def test_the_views_command_lists_every_view_from_its_files_and_no_readme_keeps_a_copy():
    from click.testing import CliRunner

    from coinstream.cli import main

    listing = CliRunner().invoke(main, ["clickhouse", "views"])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert [line.split()[0] for line in lines] == VIEW_NAMES
    assert [line.split()[1] == "dashboard" for line in lines] == [view_spec(name)["dashboard"] for name in VIEW_NAMES]
    assert "v_hist_gaps                           Days without a usable close, with the reason" in listing.output

    detail = CliRunner().invoke(main, ["clickhouse", "views", "v_30_day_mov_avg"])
    assert detail.exit_code == 0, detail.output
    assert detail.output.splitlines()[:12] == [
        "v_30_day_mov_avg",
        "",
        "The average close over the thirty calendar days ending on `date` (date-29 … date) that have data,",
        "beside the 10-day one with the same rules.",
        "",
        "columns:",
        "  date         Date",
        "  code         LowCardinality(String)",
        "  rate         Float64",
        "  mov_avg_30d  Float64",
        "",
        "read by a dashboard: yes",
    ]

    table = CliRunner().invoke(main, ["clickhouse", "views", "--markdown"])
    assert table.output.splitlines()[:2] == ["| view | columns | answers | dashboards |", "|---|---|---|---|"]
    assert re.findall(r"^\| `(\w+)` \|", table.output, re.M) == VIEW_NAMES

    unknown = CliRunner().invoke(main, ["clickhouse", "views", "v_nope"])
    assert unknown.exit_code == 1 and "no view 'v_nope'" in unknown.output

    for readme in [REPO / "README.md", REPO / "clickhouse" / "schema" / "README.md"]:
        assert not re.search(r"^\| `v_\w+` \|", readme.read_text(), re.M), f"{readme} keeps a views table"
