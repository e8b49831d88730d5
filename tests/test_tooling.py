"""Lint, format, layering and types: the static checks run with the suite, zero findings allowed.

The layering (shell on top, stages in the middle, `common` at the bottom) is import-linter's contract
in pyproject.toml; mypy's settings are there too. Both read packages from disk, so they run over a
tree of symlinks with the installed `coinstream.*` shape (tests/helpers/package_layout.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.package_layout import REPO, build_layout_tree

BIN = Path(sys.executable).parent


def run_tool(*command: str, cwd: Path = REPO, env_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if env_path is None else {**os.environ, "PYTHONPATH": str(env_path), "MYPYPATH": str(env_path)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_finds_nothing():
    result = run_tool(str(BIN / "ruff"), "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted():
    result = run_tool(str(BIN / "ruff"), "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def layout_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_layout_tree(tmp_path_factory.mktemp("layout"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(
        str(BIN / "lint-imports"), "--config", str(REPO / "pyproject.toml"), "--no-cache", cwd=tree, env_path=tree
    )


def test_imports_point_down(layout_tree: Path):
    result = lint_imports(layout_tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_layering_contract_catches_an_upward_import(tmp_path: Path):
    tree = build_layout_tree(tmp_path / "layout")
    (tree / "coinstream" / "common" / "planted.py").write_text("import coinstream.cli\n")
    (tree / "coinstream" / "ksql" / "planted.py").write_text("from coinstream.stack import supervisor\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "coinstream.common.planted -> coinstream.cli (l.1)" in result.stdout
    assert "coinstream.ksql.planted -> coinstream.stack.supervisor (l.1)" in result.stdout
    assert "Contracts: 0 kept, 1 broken." in result.stdout


def test_mypy_finds_nothing(layout_tree: Path):
    # Incremental cache off: a stale cache must never hide a finding.
    result = run_tool(
        str(BIN / "mypy"),
        "--config-file",
        str(REPO / "pyproject.toml"),
        "--no-incremental",
        "-p",
        "coinstream",
        cwd=layout_tree,
        env_path=layout_tree,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    assert result.stdout.startswith("Success: no issues found")
