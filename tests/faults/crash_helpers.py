"""Helpers for the fault tests (crash, soak, security): a document server on 127.0.0.1 that
can also misbehave, Canada's documents and variants, configurations, the CLI as a child
process, and snapshots of what the store holds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import (
    FIXTURES,
    ROOT,
    SHARED_DOCS,
    insert_into_schedule,
    without_item,
    write_config,
)

CDSA_2019 = "ca/cdsa-C-38.8-en-pit2019-09-19.xml"
CDSA_2024 = "ca/cdsa-C-38.8-en-pit2024-05-27.xml"
CDSA_2026 = "ca/cdsa-C-38.8-en-pit2026-06-05.xml"
CSR_2026 = "ca/csr-SOR-2025-242-en-pit2026-04-17.xml"
KETAMINE_ITEM = "Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone)"
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


def ketamine_moved_to_schedule_iii(cdsa: bytes, text: str = KETAMINE_ITEM,
                                   label: str = "99") -> bytes:
    """The CDSA with ketamine's subitem deleted from Schedule I and listed in Schedule III
    (``text`` is inserted as is: escape it first if it is meant to be text)."""
    return insert_into_schedule(without_item(cdsa, "Ketamine"), "SCHEDULE III",
                                f"<Item><Label>{label}</Label><Text>{text}</Text></Item>")


# --- a document server ------------------------------------------------------------------------

@dataclass
class Route:
    status: int
    body: bytes
    content_type: str
    truncate: bool = False  # declare the full length, send half, close: a cut-off transfer
    headers: dict[str, str] = field(default_factory=dict)  # extra headers of a 200/4xx/5xx


@dataclass
class DocServer:
    """Documents at fixed paths on 127.0.0.1, swappable between runs. A 200 carries
    ``ETag`` (sha256 of the body) and gets a 304 when ``If-None-Match`` matches; anything
    not set (robots.txt included) is a 404. Counts responses per (path, status sent), and
    remembers the client addresses and the bodies sent whole."""

    routes: dict[str, Route] = field(default_factory=dict)
    sent: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    clients: set[str] = field(default_factory=set)
    #: sha256 of every body sent whole with a 200 (what the archive may hold).
    whole_bodies: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> DocServer:
        routes, sent, clients, whole = self.routes, self.sent, self.clients, self.whole_bodies
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: simple and honest

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                with lock:
                    route = routes.get(path)
                    clients.add(self.client_address[0])
                if route is None:
                    self._send(404, b"not found", "text/plain", path)
                    return
                etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                if route.status == 200 and not route.truncate \
                        and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    with lock:
                        sent[(path, 304)] += 1
                    return
                if route.truncate:
                    self.send_response(200)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body[: len(route.body) // 2])
                    self.wfile.flush()
                    with lock:
                        sent[(path, "truncated")] += 1
                    self.close_connection = True
                    return
                headers = {"ETag": etag} if route.status == 200 else {}
                headers.update(route.headers)
                self._send(route.status, route.body, route.content_type, path, headers)

            def _send(self, status: int, body: bytes, content_type: str, path: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                with lock:
                    sent[(path, status)] += 1
                    if status == 200:
                        whole.add(hashlib.sha256(body).hexdigest())

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DocServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set(self, path: str, body: bytes, *, status: int = 200,
            content_type: str = "application/xml", truncate: bool = False,
            headers: dict[str, str] | None = None) -> None:
        self.routes[path] = Route(status, body, content_type, truncate, dict(headers or {}))

    def url(self, path: str) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- configuration and the CLI -----------------------------------------------------------------

def email_section(port: int, *, recipients: tuple[str, ...] = ("officer@example.org",),
                  extra: str = "") -> str:
    lines = ["[email]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"',
             'from = "schedwatch@example.org"', "timeout = 5", extra, ""]
    for address in recipients:
        lines += ["[[email.recipients]]", f'address = "{address}"', ""]
    return "\n".join(lines)


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
