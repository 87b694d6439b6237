"""The import budget of the commands a person or cron runs (issue 18): a warm ``run -j ca``
(nothing changed: two 304s) and ``status`` (table, JSON, ``--as-of``) must not pay for what
they do not use. Each runs as the real console script in a process of its own against a real
data folder, and the modules it loaded are read from ``sys.modules`` when the interpreter
exits; ``-X importtime`` says who imported an offender. Nothing is added to schedwatch itself.

Also here: the registry's static outline (what ``status`` and the configuration check know
of a jurisdiction without importing it) equals each module's TIMEZONE and SOURCES."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.documents import CDSA_2026, CSR_2026, ROOT, shared_doc
from tests.support.served import CDSA_URL_PATH, CSR_URL_PATH, DocServer

#: What neither a warm run nor ``status`` may import (a module or any of its submodules).
#: SQLAlchemy included: the store speaks the stdlib DB-API; only APScheduler's job store (the
#: daemon: ``schedwatch schedule``, ``jobs``) still needs it.
NEVER = ("sqlalchemy", "pandas", "jinja2", "lxml", "rich", "apscheduler")
#: A run of Canada loads Canada's module only.
NOT_IN_RUN_CA = ("jurisdictions.us", "jurisdictions.au")
#: A warm run parses nothing: Canada's parser loads with the first document to parse.
CA_PARSER = ("jurisdictions.ca.document", "jurisdictions.ca.schedules",
             "jurisdictions.ca.status", "jurisdictions.ca.pending", "jurisdictions.ca.matching")
#: ``status`` reads the store: no parser of any jurisdiction, no HTTP client, not the run's
#: pipeline nor the site's publisher.
NOT_IN_STATUS = ("jurisdictions.ca", "jurisdictions.us", "jurisdictions.au", "requests",
                 "urllib3", "scheduler.pipeline", "reports.site")

#: Runs the installed console script (its real start-up, ``gc.freeze`` included) and, at
#: interpreter exit, writes the names in ``sys.modules`` to the file in argv[1].
PROBE = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def dump():
    with open(out, "w", encoding="utf-8") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(dump)
script = sys.argv[0] = sys.argv.pop(1)
if script == "-":
    from scheduler.cli import console_main
    console_main()
else:
    runpy.run_path(script, run_name="__main__")
"""


def console_script() -> str:
    """The ``schedwatch`` script beside this interpreter; "-" (its two lines, run directly)
    when the package is not installed into this environment."""
    script = Path(sys.executable).parent / "schedwatch"
    return str(script) if script.exists() else "-"


@dataclass(frozen=True)
class Command:
    stdout: str
    stderr: str
    modules: frozenset[str]

    def loaded(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` loaded, as a module or through any of its submodules."""
        return [name for name in names
                if any(m == name or m.startswith(name + ".") for m in self.modules)]

    def importers(self, name: str) -> str:
        """Who imported ``name`` first, from the ``-X importtime`` tree (printed children
        first, indented two spaces a level): "a <- b <- c". A module loaded by
        ``importlib.import_module`` has no line of its own: the chain starts at its first
        submodule and ends below the caller."""
        rows = [(len(m[1]) // 2, m[2]) for m in re.finditer(
            r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", self.stderr, re.M)]
        for at, (depth, module) in enumerate(rows):
            if module == name or module.startswith(name + "."):
                chain = [module]
                for level, parent in rows[at + 1:]:
                    if level < depth:
                        chain.append(parent)
                        depth = level
                return " <- ".join(chain)
        # importlib.import_module (the jurisdiction registry) bypasses -X importtime.
        return f"{name} (loaded by importlib.import_module: not in the importtime tree)"

    def offenders(self, names: Sequence[str]) -> str:
        return "; ".join(self.importers(name) for name in self.loaded(names))


def run_command(config: Path, tmp: Path, *args: str) -> Command:
    out = tmp / "modules.txt"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, str(out),
                           console_script(), "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return Command(done.stdout, done.stderr,
                   frozenset(out.read_text(encoding="utf-8").split()))


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Command]]:
    """A cold run of Canada against the real 2026 CDSA and CSR served locally, then the
    commands under test against the data folder it filled."""
    tmp = tmp_path_factory.mktemp("budget")
    with DocServer() as server:
        server.set(CDSA_URL_PATH, shared_doc(CDSA_2026))
        server.set(CSR_URL_PATH, shared_doc(CSR_2026))
        config = write_config(tmp / "schedwatch.toml", data_dir=tmp / "data", sources={
            "ca-cdsa": {"url": server.url(CDSA_URL_PATH)},
            "ca-csr": {"url": server.url(CSR_URL_PATH)}})
        run_command(config, tmp, "run", "-j", "ca")  # cold: fills the store
        found = {"run -j ca": run_command(config, tmp, "run", "-j", "ca")}
        assert server.sent[(CDSA_URL_PATH, 304)] == server.sent[(CSR_URL_PATH, 304)] == 1
    found["status"] = run_command(config, tmp, "status")
    found["status --format json"] = run_command(config, tmp, "status", "--format", "json")
    found["status --as-of"] = run_command(config, tmp, "status", "--as-of", "2026-11-15")
    yield found


def test_the_commands_did_their_work(commands: dict[str, Command]) -> None:
    """What is measured is the real thing: a warm run that found nothing changed, and a
    status with rows (the as-of one citing its evidence)."""
    assert "not modified" in commands["run -j ca"].stdout
    assert "parsed" not in commands["run -j ca"].stdout
    assert "ketamine" in commands["status"].stdout
    assert {row["source_id"] for row in json.loads(commands["status --format json"].stdout)
            } == {"ca-cdsa", "ca-csr"}
    assert "The law on 2026-11-15" in commands["status --as-of"].stdout
    assert "evidence of" in commands["status --as-of"].stdout


@pytest.mark.parametrize("name", ["run -j ca", "status", "status --format json",
                                  "status --as-of"])
def test_never_imports_the_heavy_libraries(commands: dict[str, Command], name: str) -> None:
    command = commands[name]
    assert command.loaded(NEVER) == [], command.offenders(NEVER)


def test_a_run_of_canada_imports_no_other_jurisdiction(commands: dict[str, Command]) -> None:
    command = commands["run -j ca"]
    assert "jurisdictions.ca" in command.modules
    assert command.loaded(NOT_IN_RUN_CA) == [], command.offenders(NOT_IN_RUN_CA)


def test_a_warm_run_of_canada_loads_no_parser(commands: dict[str, Command]) -> None:
    command = commands["run -j ca"]
    assert "ok, not modified" in command.stdout
    assert command.loaded(CA_PARSER) == [], command.offenders(CA_PARSER)


@pytest.mark.parametrize("name", ["status", "status --format json", "status --as-of"])
def test_status_imports_no_parser_and_no_http_client(commands: dict[str, Command],
                                                     name: str) -> None:
    command = commands[name]
    assert command.loaded(NOT_IN_STATUS) == [], command.offenders(NOT_IN_STATUS)


def test_the_registry_outline_matches_every_jurisdiction_module() -> None:
    """Each REGISTRY entry copies its module's TIMEZONE and SOURCES (ids and endpoint names,
    in order): a source added, renamed or given an endpoint must be added there too."""
    from jurisdictions import REGISTRY, Outline

    for code, entry in REGISTRY.items():
        assert isinstance(entry, Outline), code
        module = importlib.import_module(entry.module)
        assert code == module.CODE
        assert entry.timezone == module.TIMEZONE, code
        assert list(entry.sources.items()) == [(s.id, tuple(s.endpoints))
                                               for s in module.SOURCES], code
