"""Shared pieces of the benchmarks: a threaded localhost document server with ETag /
Last-Modified support, and a runner that measures a child process's wall time and peak RSS."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "regulator-documents"
PYTHON = sys.executable

Route = Callable[[str, Mapping[str, str]], tuple[int, bytes, str] | None]


class DocumentServer:
    """Serves ``documents[path] = (bytes, content type)`` or, for API-like paths, whatever a
    route function answers. Conditional GET: ETag and Last-Modified, 304 when they match."""

    def __init__(self, documents: Mapping[str, tuple[bytes, str]] | None = None,
                 routes: Sequence[Route] = ()) -> None:
        self.documents = dict(documents or {})
        self.routes = list(routes)
        self.modified = formatdate(time.time() - 86400, usegmt=True)
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests += 1
                answer = server.answer(self.path, dict(self.headers))
                if answer is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body, content_type = answer
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                if status == 200 and (self.headers.get("If-None-Match") == etag or
                                      self.headers.get("If-Modified-Since") == server.modified):
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == 200:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", server.modified)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        if path == "/robots.txt":
            return 200, b"User-agent: *\nAllow: /\n", "text/plain"
        plain = path.split("?", 1)[0]
        if plain in self.documents:
            body, content_type = self.documents[plain]
            return 200, body, content_type
        for route in self.routes:
            found = route(path, headers)
            if found is not None:
                return found
        return None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> DocumentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Measured:
    wall: float
    peak_mb: float
    exit_code: int
    output: str


def measure(command: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run a command; its wall time and its own peak resident memory (from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, cwd=cwd)
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(wall, usage.ru_maxrss / 1024, process.returncode, output)


def schedwatch(*args: str) -> list[str]:
    return [PYTHON, "-c", "from scheduler.cli import main; main()", *args]


def best_of(runs: int, make: Callable[[], Measured]) -> Measured:
    results = [make() for _ in range(runs)]
    return min(results, key=lambda m: m.wall)


def urlwatch_env(folder: Path) -> Path:
    """A separate virtual environment with urlwatch (created once, reused)."""
    venv = folder / "urlwatch-venv"
    binary = venv / "bin" / "urlwatch"
    if not binary.exists():
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "urlwatch"],
                       check=True)
    return binary


def urlwatch_jobs(folder: Path, urls: Sequence[str]) -> list[str]:
    """urlwatch files for these URLs; returns the command line to run it."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = "\n---\n".join(f"name: job{i}\nurl: {url}\n" for i, url in enumerate(urls))
    (folder / "urls.yaml").write_text(jobs)
    (folder / "urlwatch.yaml").write_text(
        "display:\n  new: true\n  error: true\n  unchanged: false\n"
        "report:\n  text:\n    details: false\n    footer: false\n    line_length: 75\n"
        "  stdout:\n    enabled: true\n    color: false\n")
    return ["--urls", str(folder / "urls.yaml"), "--config", str(folder / "urlwatch.yaml"),
            "--cache", str(folder / "cache.db")]
