"""A local document server for pipeline tests: documents at fixed paths, swappable between
runs, with ETags and 304s, counting requests per path."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

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
