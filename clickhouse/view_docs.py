"""What the views are, rendered from their specs for `coinstream clickhouse views`.

Each view's `clickhouse/views/<view>.yml` says what it answers and lists its columns. Those files
are the documentation: this module only renders them (a listing, one view in full, or a Markdown
table), so adding a view never means editing a hand-kept list or table anywhere else.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from coinstream.clickhouse.view_files import VIEWS_DIR


def view_specs(directory: Path = VIEWS_DIR) -> dict[str, dict[str, Any]]:
    """Every view's spec, by name, in name order."""
    return {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.yml"))}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _first_sentence(text: object) -> str:
    """Up to the first full stop followed by a space: a listing line, not the whole spec."""
    line = _one_line(text)
    match = re.search(r"(?<=\.)\s", line)
    return line[: match.start()] if match else line


def views_listing(directory: Path = VIEWS_DIR) -> str:
    """One line per view: its name, `dashboard` when a dashboard card reads it, what it answers."""
    specs = view_specs(directory)
    width = max(len(name) for name in specs)
    return "\n".join(
        f"{name:<{width}}  {'dashboard' if spec['dashboard'] else '':<9}  {_first_sentence(spec['answers'])}"
        for name, spec in specs.items()
    )


def view_detail(name: str, directory: Path = VIEWS_DIR) -> str:
    """One view in full: what it answers, its columns with their types, the tests that check it."""
    specs = view_specs(directory)
    if name not in specs:
        raise KeyError(f"no view {name!r}; the views are: {', '.join(specs)}")
    spec = specs[name]
    lines = [name, "", textwrap.fill(_one_line(spec["answers"]), width=100), "", "columns:"]
    width = max(len(column["name"]) for column in spec["columns"])
    lines += [f"  {column['name']:<{width}}  {column['type']}" for column in spec["columns"]]
    lines += ["", f"read by a dashboard: {'yes' if spec['dashboard'] else 'no'}"]
    tests = [*spec.get("tested_by", []), *(f"case: {case['name']}" for case in spec.get("cases", []))]
    lines += ["tested by:", *(f"  {test}" for test in tests)] if tests else ["tested by: (none)"]
    lines.append(f"definition: {directory / (name + '.sql')}")
    return "\n".join(lines)


def views_markdown(directory: Path = VIEWS_DIR) -> str:
    """The views as a Markdown table (view, columns, answers, dashboards), for docs and reviews."""
    rows = ["| view | columns | answers | dashboards |", "|---|---|---|---|"]
    for name, spec in view_specs(directory).items():
        columns = ", ".join(column["name"] for column in spec["columns"])
        answers = _one_line(spec["answers"]).replace("|", "\\|")
        rows.append(f"| `{name}` | {columns} | {answers} | {'yes' if spec['dashboard'] else ''} |")
    return "\n".join(rows)
