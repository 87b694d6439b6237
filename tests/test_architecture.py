"""The shape of the code (issue 12): imports point down only (scheduler > reports >
jurisdictions > scrapers), no circles, small product files, a short pipeline, no hidden
broken installs, and every jurisdiction declares what the registry expects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"scrapers": 0, "jurisdictions": 1, "reports": 2, "scheduler": 3}


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (TYPE_CHECKING blocks
    included: a type that lives on a higher layer is a dependency all the same)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in LAYERS}


def test_imports_point_down_only() -> None:
    wrong = []
    for name, path in _modules().items():
        layer = LAYERS[name.split(".")[0]]
        for imported in _imports(path):
            if LAYERS[imported.split(".")[0]] > layer:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: {i for i in _imports(path) if i in modules and i != name}
             for name, path in modules.items()}
    # Importing a package's own submodule from its __init__ is not a circle.
    for name in graph:
        graph[name] = {i for i in graph[name] if not i.startswith(name + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_tests_share_helpers_only_through_support() -> None:
    """No test module imports another test module or conftest (fixtures come from pytest,
    helpers from ``tests/support/``), and no helper module is named ``test_*``."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                       if isinstance(node, ast.ImportFrom) and node.module else [])
            for module in modules:
                leaf = module.split(".")[-1]
                if module.startswith("tests.") and (leaf.startswith("test_")
                                                   or leaf == "conftest"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, offenders
    helpers = [p for p in (ROOT / "tests" / "support").glob("test_*.py")]
    assert not helpers, helpers


def test_product_files_are_small() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, path in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > 1000} == {}
    assert sizes["scheduler.pipeline"] < 400


def test_no_import_error_fallbacks_in_scheduler() -> None:
    hidden = [f"{path.name}:{number}" for path in (ROOT / "scheduler").glob("*.py")
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if "except ImportError" in line]
    assert hidden == []


def test_every_module_says_what_it_holds() -> None:
    missing = [name for name, path in _modules().items()
               if ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None]
    assert missing == []


@pytest.mark.parametrize("code", ["ca", "us", "au"])
def test_registry_contract(code: str) -> None:
    """Every jurisdiction declares CODE, NAME, TIMEZONE, SCHEDULE_LEVELS and SOURCES with
    the right types, has its test folder, and each of its sources a fault scenario."""
    from zoneinfo import ZoneInfo

    from jurisdictions import jurisdiction
    from jurisdictions.base import Source
    from scrapers.records import CONTROL_LEVELS

    module = jurisdiction(code)
    assert code == module.CODE
    assert isinstance(module.NAME, str) and module.NAME
    ZoneInfo(module.TIMEZONE)
    assert module.SCHEDULE_LEVELS and all(
        isinstance(k, str) and v in CONTROL_LEVELS for k, v in module.SCHEDULE_LEVELS.items())
    assert module.SOURCES and all(isinstance(s, Source) and s.jurisdiction == code
                                  for s in module.SOURCES)
    folder = ROOT / "tests" / "jurisdictions" / code
    assert folder.is_dir(), f"tests/jurisdictions/{code}/ holds the jurisdiction's tests"
    assert list(folder.glob("test_*.py"))
    from tests.faults import harness

    for source in module.SOURCES:  # every source has a fault scenario in the matrix
        assert harness.make_scenario(source.id).source_id == source.id
