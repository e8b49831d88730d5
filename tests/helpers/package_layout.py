"""The installed layout of the `coinstream` namespace, rebuilt from pyproject's package-dir mapping.

The repository keeps one top-level folder per stage (`common/`, `ksql/`, …) and setuptools maps
them under `coinstream.` in the wheel. Static tools (import-linter, mypy) read packages from disk,
so they are pointed at a tree of symlinks with the installed shape: `coinstream/ksql/engine.py`
links to `ksql/engine.py`.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]


def package_dirs() -> dict[str, Path]:
    """`coinstream.ksql` -> the repository folder holding it, for each mapped package."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    return {package: REPO / folder for package, folder in mapping.items()}


def build_layout_tree(destination: Path) -> Path:
    """Mirror every mapped package's folders under `destination` with its .py files symlinked.

    Folders are real directories (a test may plant an extra module); files are links, so a tool's
    findings name the repository's own files once resolved. Returns `destination`.
    """
    for package, folder in sorted(package_dirs().items(), key=lambda item: item[0].count(".")):
        target = destination.joinpath(*package.split("."))
        for source in sorted(folder.rglob("*.py")):
            relative = source.relative_to(folder)
            if "__pycache__" in relative.parts or "node_modules" in relative.parts:
                continue
            link = target / relative
            if link.exists():
                continue  # `coinstream/` itself is walked first; mapped stages are never inside it
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return destination
