"""Helpers for the fault tests (crash, soak, security): a document server on 127.0.0.1 that
can also misbehave, Canada's documents and variants, configurations, the CLI as a child
process, and snapshots of what the store holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.config import write_config
from tests.support.documents import (
    CDSA_2026,
    CSR_2026,
    FIXTURES,
    ROOT,
    SHARED_DOCS,
    ketamine_moved_to_schedule_iii,
)
from tests.support.served import DocServer

CDSA_PATH = "/eng/XML/C-38.8.xml"
CSR_PATH = "/eng/XML/SOR-2025-242.xml"
SIGKILLED = -signal.SIGKILL


# --- documents --------------------------------------------------------------------------------

def real_docs_present() -> bool:
    return all((SHARED_DOCS / name).is_file() for name in (CDSA_2026, CSR_2026))


def real_doc(relative: str) -> bytes | None:
    path = SHARED_DOCS / relative
    return path.read_bytes() if path.is_file() else None


@dataclass(frozen=True)
class CanadaDocs:
    """The CDSA and CSR to serve: the real 2026 consolidations when ../shared has them,
    otherwise the small hand-written fixtures (so these tests never skip)."""

    cdsa: bytes
    csr: bytes
    real: bool

    @property
    def moved(self) -> bytes:
        return ketamine_moved_to_schedule_iii(self.cdsa)


def canada_docs() -> CanadaDocs:
    if real_docs_present():
        return CanadaDocs(cdsa=(SHARED_DOCS / CDSA_2026).read_bytes(),
                          csr=(SHARED_DOCS / CSR_2026).read_bytes(), real=True)
    return CanadaDocs(cdsa=(FIXTURES / "ca" / "cdsa-mini.xml").read_bytes(),
                      csr=(FIXTURES / "ca" / "csr-mini.xml").read_bytes(), real=False)


# --- configuration and the CLI -----------------------------------------------------------------

def ca_config(path: Path, data_dir: Path, server: DocServer, *, extra: str = "",
              read_timeout: float = 5.0) -> Path:
    return write_config(path, data_dir=data_dir, sources={
        "ca-cdsa": {"url": server.url(CDSA_PATH)},
        "ca-csr": {"url": server.url(CSR_PATH)},
    }, extra=extra, read_timeout=read_timeout)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child CLI: ours without any SCHEDWATCH_* leftovers and without
    proxies (all traffic stays on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCHEDWATCH_") and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


#: A child that runs the CLI; with SCHEDWATCH_TEST_KILL_AT_MARK_DELIVERED=N it SIGKILLs itself
#: on the N-th call of ``Store.mark_delivered_many`` (one call per accepted message), before
#: that call writes anything.
CHILD = """
import os, signal
from scrapers.store import Store
_kill_at = int(os.environ["SCHEDWATCH_TEST_KILL_AT_MARK_DELIVERED"])
_real = Store.mark_delivered_many
_calls = []
def _mark_delivered(self, *args, **kwargs):
    _calls.append(1)
    if len(_calls) == _kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(self, *args, **kwargs)
Store.mark_delivered_many = _mark_delivered
from scheduler.cli import main
main()
"""


def run_child(config: Path, *args: str, crash_at: str | None = None,
              kill_at_mark_delivered: int | None = None, timeout: float = 60,
              env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``[python, -c, "from scheduler.cli import main; main()", --config, CONFIG, *args]`` in
    the project folder (or ``cwd``, with the project on PYTHONPATH); ``crash_at`` sets
    SCHEDWATCH_CRASH_AT."""
    extra = dict(env or {})
    if cwd is not None:
        extra["PYTHONPATH"] = str(ROOT)
    if crash_at:
        extra["SCHEDWATCH_CRASH_AT"] = crash_at
    code = "from scheduler.cli import main; main()"
    if kill_at_mark_delivered is not None:
        extra["SCHEDWATCH_TEST_KILL_AT_MARK_DELIVERED"] = str(kill_at_mark_delivered)
        code = CHILD
    return subprocess.run([sys.executable, "-c", code, "--config", str(config), *args],
                          cwd=cwd or ROOT, env=child_env(**extra), capture_output=True, text=True,
                          timeout=timeout, check=False)


# --- what the store holds -----------------------------------------------------------------------

def document_files(data_dir: Path) -> set[str]:
    folder = data_dir / "documents"
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def stray_temp_files(data_dir: Path) -> list[str]:
    folder = data_dir / "documents"
    return [str(p) for p in folder.rglob(".tmp-*")] if folder.is_dir() else []


def table_rows(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    import sqlite3

    connection = sqlite3.connect(f"file:{data_dir / 'schedwatch.db'}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql)]
    finally:
        connection.close()


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str, ensure_ascii=False)
