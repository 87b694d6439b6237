"""Packaging: `make run` installs what the tool needs and nothing of the test extra, `make
test` adds it (and the system packages its tests use), `make test-fast` leaves out the slow
parts, and the version has one home (the package metadata)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("scrapers", "jurisdictions", "reports", "scheduler")


def make_dry_run(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n: print, do not run; -B: as if nothing were installed yet.
    result = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pip_installs(commands: str) -> list[str]:
    return re.findall(r"pip install --quiet -e (\S+)", commands)


def test_make_run_installs_the_tool_without_the_test_extra() -> None:
    commands = make_dry_run("run")
    assert pip_installs(commands) == ["."]
    assert "schedwatch run" in commands


def test_make_demo_needs_only_the_tool() -> None:
    commands = make_dry_run("demo")
    assert pip_installs(commands) == ["."]
    assert "-m scheduler.demo --data-dir data/demo" in commands


def test_make_test_installs_the_test_extra_chromium_and_postgresql() -> None:
    commands = make_dry_run("test")
    assert pip_installs(commands) == ["'.[test]'"]
    assert "apt-get install -y -qq chromium" in commands
    assert "apt-get install -y -qq postgresql" in commands
    assert "initdb" in commands  # only when the server binaries are absent
    assert re.search(r"pytest -q -p no:cacheprovider\s*$", commands, re.MULTILINE)


def test_make_test_fast_leaves_out_the_fault_matrix_soak_and_browser() -> None:
    commands = make_dry_run("test-fast")
    assert "--ignore=tests/faults/test_fault_matrix.py" in commands
    assert '-m "not soak and not browser"' in commands
    assert "apt-get" not in commands


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_python_docx_is_a_test_dependency_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"])
    assert "python-docx" not in runtime
    assert any(d.startswith("python-docx") for d in project["optional-dependencies"]["test"])
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["postgres"])
    for package in PRODUCT:  # the Poisons Standard parser reads the Word XML itself
        assert "docx" not in _imports(package), package


def test_every_template_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"]
    packages = set(config["packages"])
    data = config["package-data"]
    templates = ROOT / "reports" / "templates"
    for path in templates.rglob("*"):
        if path.is_file():
            package = ".".join(path.parent.relative_to(ROOT).parts)
            assert package in packages, f"{package} is not listed in tool.setuptools.packages"
            assert any(path.match(pattern) for pattern in data.get(package, ())), \
                f"{path.relative_to(ROOT)} is not package data"


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version as installed

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "--version"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"schedwatch, version {installed('schedwatch')}"
    from scrapers.version import version

    assert version() == installed("schedwatch") == project["version"]
    # No second copy of the number in the code.
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            assert project["version"] not in path.read_text(encoding="utf-8"), path
