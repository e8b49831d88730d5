"""The views as current state: one file per view, `clickhouse/views/<view>.sql`.

Tables change through numbered, checksum-locked migrations, because data outlives their
definitions. A view holds no data: its file is simply its current definition, so a reader finds
what a view does in one place, and a change is an edit of that file. Beside each file, `<view>.yml`
says what the view answers, its columns and the cases its tests check (`view_specs`).

`apply_views` runs after the migrations on every `migrate`: it creates, in dependency order (a
view reading another view comes after it), each view whose file changed since it was last applied
or that the database lacks, and drops the views it applied earlier whose file is gone. What it
applied is recorded in `_schema_views` (name, SHA-256 of the file), so an unchanged view is left
alone and re-running is a no-op. A database migrated by a release whose views lived in the
migrations simply gets every view (re)created from its file on the first run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from coinstream.clickhouse.sql_text import split_statements

VIEWS_DIR = Path(__file__).resolve().parent / "views"
VIEWS_TABLE = "_schema_views"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEAD = re.compile(r"^CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)\s", re.IGNORECASE)

_LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {VIEWS_TABLE}
(
    name        String,
    checksum    String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY name
"""


class ViewError(RuntimeError):
    """A view file is malformed, or the views depend on each other in a cycle; nothing was run."""


@dataclass(frozen=True)
class ViewFile:
    """One view: its name (the file's), its `CREATE OR REPLACE VIEW` statement, the SHA-256 of
    the file and the other views it reads."""

    name: str
    statement: str
    checksum: str
    reads: frozenset[str]


@dataclass
class ViewReport:
    """What `apply_views` did."""

    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _words(statement: str) -> set[str]:
    code = " ".join(split_statements(statement, comments=False))
    return set(re.findall(r"\b[a-z_][a-z0-9_]*\b", code, re.IGNORECASE))


def load_views(directory: Path = VIEWS_DIR) -> list[ViewFile]:
    """Every view file, in dependency order (a view after the views it reads), ties by name."""
    files: dict[str, ViewFile] = {}
    for path in sorted(directory.glob("*.sql")):
        name = path.stem
        if not _NAME.match(name):
            raise ViewError(f"view file {path.name}: the name must be lowercase letters, digits and _")
        data = path.read_bytes()
        statements = split_statements(data.decode("utf-8"))
        if len(statements) != 1:
            raise ViewError(f"view file {path.name} must hold exactly one statement, not {len(statements)}")
        code = " ".join(split_statements(statements[0], comments=False)).strip()
        head = _HEAD.match(code + " ")
        if head is None or head.group(1) != name:
            raise ViewError(f"view file {path.name} must be `CREATE OR REPLACE VIEW {name} AS …`")
        files[name] = ViewFile(name, statements[0], hashlib.sha256(data).hexdigest(), frozenset())
    names = set(files)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in sorted(files):
        reads = frozenset((_words(files[name].statement) & names) - {name})
        files[name] = ViewFile(name, files[name].statement, files[name].checksum, reads)
        sorter.add(name, *sorted(reads))
    try:
        sorter.prepare()
    except CycleError as error:
        raise ViewError(f"the views read each other in a cycle: {' -> '.join(error.args[1])}") from None
    ordered: list[ViewFile] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(files[name] for name in ready)
        sorter.done(*ready)
    return ordered


def _recorded(client: Any) -> dict[str, str]:
    client.command(_LEDGER_DDL)
    rows = client.query(
        f"SELECT name, argMax(checksum, applied_at) FROM {VIEWS_TABLE} GROUP BY name ORDER BY name"
    ).result_rows
    return {name: checksum for name, checksum in rows}


def _existing_views(client: Any) -> set[str]:
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View'"
    ).result_rows
    return {name for (name,) in rows}


def apply_views(client: Any, directory: Path = VIEWS_DIR) -> ViewReport:
    """Create each changed or missing view, in dependency order; drop views whose file is gone."""
    views = load_views(directory)
    recorded = _recorded(client)
    existing = _existing_views(client)
    report = ViewReport()
    for view in views:
        if recorded.get(view.name) == view.checksum and view.name in existing:
            report.unchanged.append(view.name)
            continue
        client.command(view.statement)
        client.insert(VIEWS_TABLE, [[view.name, view.checksum]], column_names=["name", "checksum"])
        report.applied.append(view.name)
    current = {view.name for view in views}
    for name, checksum in sorted(recorded.items()):
        if checksum and name not in current:
            client.command(f"DROP VIEW IF EXISTS {name}")
            client.insert(VIEWS_TABLE, [[name, ""]], column_names=["name", "checksum"])
            report.dropped.append(name)
    return report
