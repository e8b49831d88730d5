"""The import direction of DESIGN §1: the shell on top, stages in the middle, `common` at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = {"producers", "ksql", "clickhouse", "metabase", "dashboard"}
OURS = STAGES | {"common", "coinstream"}
ALLOWED = {
    "common": {"common"},
    "coinstream": OURS,
    **{stage: STAGES | {"common"} for stage in STAGES},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & OURS


def test_every_top_level_folder_exists():
    for folder in ["producers", "ksql", "clickhouse", "metabase", "dashboard", "tests", "coinstream",
                   "common", ".github"]:
        assert (REPO / folder).is_dir(), folder
    for file in ["README.md", "pyproject.toml", ".env.example", ".ci/run"]:
        assert (REPO / file).is_file(), file


def test_imports_point_down():
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            for imported in sorted(imported_packages(path) - allowed):
                violations.append(f"{path.relative_to(REPO)} imports {imported}")
    assert violations == []


def test_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import coinstream.cli\nfrom ksql import engine\nimport json\n")
    assert imported_packages(bad) == {"coinstream", "ksql"}
