"""HTTP fetching against a real local server: retries, Retry-After, conditional GET,
robots.txt, size cap, redirects, truncated bodies and the User-Agent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jurisdictions.base import FetchContext
from scrapers.errors import FetchError
from scrapers.fetch import FetchPolicy, HttpFetcher, retry_after_seconds, simple_plan


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


def fetcher(**overrides) -> tuple[HttpFetcher, Sleeps]:
    sleeps = Sleeps()
    policy = FetchPolicy(user_agent="schedwatch/0.1.0 (+tests@example.org)", min_interval=0,
                         backoff=0.5, max_retries=3, connect_timeout=2, read_timeout=2)
    for key, value in overrides.items():
        setattr(policy, key, value)
    return HttpFetcher(policy, sleep=sleeps), sleeps


@pytest.fixture(autouse=True)
def no_robots(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)


def test_user_agent_and_conditional_headers(httpserver: HTTPServer) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(b"<doc/>", headers={"ETag": '"v1"', "Last-Modified": "Sat, 21 Nov 2026 "
                                            "10:00:00 GMT"})

    httpserver.expect_request("/doc.xml").respond_with_handler(handler)
    fetch, _ = fetcher()
    context = FetchContext(source_id="x", endpoints={"url": httpserver.url_for("/doc.xml")})
    first = simple_plan(fetch, context)
    assert first.content == b"<doc/>" and first.etag == '"v1"'
    assert seen[0].headers["User-Agent"] == "schedwatch/0.1.0 (+tests@example.org)"
    second = simple_plan(fetch, FetchContext(source_id="x", endpoints=context.endpoints,
                                             etag=first.etag, last_modified=first.last_modified))
    assert second.content is None
    assert seen[1].headers["If-Modified-Since"] == "Sat, 21 Nov 2026 10:00:00 GMT"


def test_503_with_retry_after_is_honoured_and_bounded(httpserver: HTTPServer) -> None:
    answers = iter([Response(status=503, headers={"Retry-After": "3"}),
                    Response(status=429, headers={"Retry-After": "1"}),
                    Response(b"ok")])
    httpserver.expect_request("/t").respond_with_handler(lambda _r: next(answers))
    fetch, sleeps = fetcher()
    assert fetch.get(httpserver.url_for("/t")).content == b"ok"
    assert sleeps == [3.0, 1.0]

    httpserver.expect_request("/always").respond_with_data("busy", status=503)
    fetch, sleeps = fetcher(max_retries=2)
    with pytest.raises(FetchError) as caught:
        fetch.get(httpserver.url_for("/always"))
    assert caught.value.status == 503 and "after 3 tries" in str(caught.value)
    assert sleeps == [0.5, 1.0]  # exponential backoff without Retry-After

    httpserver.expect_request("/later").respond_with_data("", status=503,
                                                          headers={"Retry-After": "86400"})
    fetch, sleeps = fetcher(max_wait=60)
    with pytest.raises(FetchError, match="Retry-After 86400"):
        fetch.get(httpserver.url_for("/later"))
    assert sleeps == []


def test_404_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    fetch, sleeps = fetcher()
    with pytest.raises(FetchError) as caught:
        fetch.get(httpserver.url_for("/gone"))
    assert caught.value.status == 404 and "404 Not Found" in str(caught.value)
    assert sleeps == []


def test_connection_refused_is_retried_then_reported() -> None:
    fetch, sleeps = fetcher(max_retries=2)
    with pytest.raises(FetchError) as caught:
        fetch.get("http://127.0.0.1:9/doc.xml")
    assert caught.value.kind == "connection" and "connection refused" in str(caught.value)
    assert sleeps == [0.5, 1.0]


def test_robots_disallow_is_respected(httpserver: HTTPServer) -> None:
    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\nCrawl-delay: 4\n")
    httpserver.expect_request("/public.xml").respond_with_data("<a/>")
    fetch, sleeps = fetcher()
    with pytest.raises(FetchError) as caught:
        fetch.get(httpserver.url_for("/private/doc.xml"))
    assert caught.value.kind == "robots"
    fetch.get(httpserver.url_for("/public.xml"))
    fetch.get(httpserver.url_for("/public.xml"))
    assert any(3.0 < s <= 4.0 for s in sleeps)  # Crawl-delay between two requests


def test_size_cap_stops_reading(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/huge").respond_with_data(b"x" * 300_000)
    fetch, _ = fetcher(max_bytes=100_000)
    with pytest.raises(FetchError) as caught:
        fetch.get(httpserver.url_for("/huge"))
    assert caught.value.kind == "too_large"


def test_redirect_followed_and_loop_reported(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new")})
    httpserver.expect_request("/new").respond_with_data("<new/>")
    fetch, _ = fetcher()
    plan = simple_plan(fetch, FetchContext(source_id="x",
                                           endpoints={"url": httpserver.url_for("/old")}))
    assert plan.content == b"<new/>"
    assert plan.url.endswith("/new") and plan.redirected_from.endswith("/old")
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/loop")})
    with pytest.raises(FetchError) as caught:
        fetch.get(httpserver.url_for("/loop"))
    assert caught.value.kind == "redirect"


@pytest.fixture
def lying_server() -> Iterator[str]:
    """A raw socket server whose Content-Length promises more than it sends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                             b"Content-Type: application/xml\r\n\r\n<Statute>cut")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/doc.xml"
    stop.set()
    thread.join()
    listener.close()


def test_truncated_body_is_an_error(lying_server: str) -> None:
    fetch, sleeps = fetcher(max_retries=1, respect_robots=False)
    with pytest.raises(FetchError) as caught:
        fetch.get(lying_server)
    assert caught.value.kind == "truncated"
    assert len(sleeps) == 1  # retried once, then reported


def test_retry_after_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Sat, 21 Nov 2026 10:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("soon") is None
