"""The wheel: one top-level package, every data file the code loads, and no clash with neighbours.

PyPI has distributions that install top-level packages named `metabase`, `clickhouse`, `ksql`,
`common`… A wheel that installed the stages under those names would silently replace them or be
replaced. The wheel is built from this checkout and installed, with its dependencies taken from the
running environment, into a fresh virtualenv beside two stand-in distributions that own the
top-level names `metabase` and `clickhouse` as PyPI's do; all three must stay importable.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = ["common", "producers", "ksql", "clickhouse", "metabase", "dashboard"]


def run(*command: str | Path, cwd: Path = REPO) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # --no-build-isolation: setuptools from this environment, no index needed (the suite runs offline).
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, REPO,
        cwd=build,
    )  # fmt: skip
    (path,) = out.glob("coinstream-*.whl")
    return path


def test_the_wheels_only_top_level_package_is_coinstream(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"coinstream", f"{wheel.name.split('-')[0]}-0.1.0.dist-info"}
    top_level = next(name for name in names if name.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["coinstream"]


def test_every_package_folder_is_mapped_and_every_data_file_shipped(wheel: Path):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"coinstream", *STAGE_FOLDERS}
    packages = sorted(
        ".".join(["coinstream", *init.parent.relative_to(REPO).parts]).replace("coinstream.coinstream", "coinstream")
        for folder in folders
        for init in (REPO / folder).rglob("__init__.py")
        if "node_modules" not in init.parts
    )
    assert sorted(pyproject["packages"]) == packages
    shipped = set(zipfile.ZipFile(wheel).namelist())
    tracked = run("git", "ls-files", *STAGE_FOLDERS).split()
    data = [path for path in tracked if not path.endswith((".py", "README.md"))]
    assert data, "no data files found"
    missing = [path for path in data if f"coinstream/{path}" not in shipped]
    assert missing == []


def _stand_in(tmp: Path, name: str) -> Path:
    """A distribution like PyPI's `name`: it owns the top-level package `name`."""
    source = tmp / f"{name}-stand-in"
    (source / name).mkdir(parents=True)
    (source / name / "__init__.py").write_text(f"OWNER = 'the {name} distribution'\n")
    (source / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "9.9.9"\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[tool.setuptools]\npackages = ["{name}"]\n'
    )
    return source


def test_installed_beside_pypis_metabase_and_clickhouse_all_three_import(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The dependencies come from the running environment (a path entry, so none of its own .pth
    # hooks run: the checkout's editable install stays out); coinstream comes from the wheel.
    site_packages = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    dependencies = run(sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(site_packages, "coinstream-test-dependencies.pth").write_text(dependencies + "\n")
    for name in ("metabase", "clickhouse"):
        run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", _stand_in(tmp_path, name))
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel)
    probe = (
        "import metabase, clickhouse, coinstream.metabase.spec, coinstream.clickhouse.migrations, coinstream.cli\n"
        "print(metabase.OWNER); print(clickhouse.OWNER)\n"
        f"print(coinstream.metabase.spec.__file__.startswith(r'{venv}'))\n"
        "print(len(coinstream.clickhouse.migrations.load_migrations()) > 0)\n"
    )
    assert run(python, "-c", probe, cwd=tmp_path).split("\n")[:4] == [
        "the metabase distribution",
        "the clickhouse distribution",
        "True",
        "True",
    ]
