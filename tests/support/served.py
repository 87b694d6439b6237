"""The local document servers of the suite: documents at fixed paths, swappable between runs,
with ETags and 304s, counting requests per path.

* ``Served``: on pytest-httpserver (the in-process tests).
* ``DocServer``: its raw variant on ``http.server``, for what werkzeug will not send (a body
  cut short against its Content-Length, a connection closed mid-answer) and for child
  processes killed mid-run."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


class Served:
    """Documents served at fixed paths, swappable between runs; ETag = sha256, and a 304
    when the client's If-None-Match matches. Counts requests per path."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.bodies: dict[str, tuple[int, bytes, str]] = {}
        self.hits: dict[str, int] = {}
        self.not_modified: dict[str, int] = {}
        server.expect_request("/robots.txt").respond_with_data("", status=404)

    def set(self, path: str, body: bytes, *, status: int = 200,
            content_type: str = "application/xml") -> None:
        if path not in self.bodies:
            self.server.expect_request(path).respond_with_handler(self._handler(path))
        self.bodies[path] = (status, body, content_type)

    def _handler(self, path: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            self.hits[path] = self.hits.get(path, 0) + 1
            status, body, content_type = self.bodies[path]
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if status == 200 and request.headers.get("If-None-Match") == etag:
                self.not_modified[path] = self.not_modified.get(path, 0) + 1
                return Response(status=304, headers={"ETag": etag})
            headers = {"ETag": etag} if status == 200 else {}
            return Response(body, status=status, content_type=content_type, headers=headers)
        return handle

    def url(self, path: str) -> str:
        return self.server.url_for(path)


#: Where the Justice Laws site serves the CDSA and the CSR (the live URL paths).
CDSA_URL_PATH = "/eng/XML/C-38.8.xml"
CSR_URL_PATH = "/eng/XML/SOR-2025-242.xml"


def serve_canada(server: HTTPServer) -> Served:
    """The real 2026 CDSA and CSR (../shared; skipped with the reason when absent) at their
    Justice Laws paths on ``server``."""
    from tests.support.documents import CDSA_2026, CSR_2026, shared_doc

    served = Served(server)
    served.set(CDSA_URL_PATH, shared_doc(CDSA_2026))
    served.set(CSR_URL_PATH, shared_doc(CSR_2026))
    return served


def canada_sources(served: Served) -> dict[str, dict[str, str]]:
    """``sources=`` for ``write_config``: ca-cdsa and ca-csr pointed at ``served``."""
    return {"ca-cdsa": {"url": served.url(CDSA_URL_PATH)},
            "ca-csr": {"url": served.url(CSR_URL_PATH)}}

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
