"""Redirects into private addresses (issue 16, item 8): a source may live on a local mirror
(here 127.0.0.1), but a redirect from it to *another* host whose address is loopback,
link-local or private is refused before that host is ever asked; a redirect that stays on
the configured host and port is followed. Two real local servers (pytest-httpserver)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from scrapers.errors import FetchError
from scrapers.fetch import FetchPolicy, HttpFetcher, non_public_address
from tests.support.cli import CliResult
from tests.support.config import write_config


def fetcher() -> HttpFetcher:
    return HttpFetcher(FetchPolicy(user_agent="schedwatch-tests", min_interval=0, max_retries=0,
                                   connect_timeout=2, read_timeout=2, respect_robots=False),
                       sleep=lambda _s: None)


@pytest.fixture
def internal() -> Iterator[HTTPServer]:
    """An "internal service" on another port of this machine."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    server.expect_request("/secret").respond_with_data("<internal>admin token</internal>",
                                                       content_type="application/xml")
    yield server
    server.clear()
    server.stop()


def configured(server: HTTPServer, path: str) -> str:
    """The source's configured URL: by address, 127.0.0.1 (pytest-httpserver listens on
    "localhost", which resolves to it here)."""
    return f"http://127.0.0.1:{server.port}{path}"


def internal_url(server: HTTPServer, path: str = "/secret") -> str:
    # Another host *name* ("localhost", not the configured "127.0.0.1") resolving to loopback.
    return f"http://localhost:{server.port}{path}"


def test_redirect_to_another_host_on_loopback_is_refused(httpserver: HTTPServer,
                                                          internal: HTTPServer) -> None:
    httpserver.expect_request("/doc.xml").respond_with_data(
        "", status=302, headers={"Location": internal_url(internal)})
    with fetcher() as fetch, pytest.raises(FetchError) as caught:
        fetch.get(configured(httpserver, "/doc.xml"))
    error = caught.value
    assert error.kind == "redirect"
    message = str(error)
    assert "\n" not in message
    assert f"localhost:{internal.port}/secret" in message and "127.0.0.1" in message
    assert "not public" in message and "private" in message
    assert internal.log == []  # refused before the internal service was asked anything


def test_redirect_on_the_configured_host_is_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": "/new.xml"})
    httpserver.expect_request("/new.xml").respond_with_data("<new/>")
    with fetcher() as fetch:
        response = fetch.get(configured(httpserver, "/old.xml"))
    assert response.content == b"<new/>" and response.final_url.endswith("/new.xml")


def test_a_chain_through_the_configured_host_is_still_checked(httpserver: HTTPServer,
                                                               internal: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data(
        "", status=307, headers={"Location": internal_url(internal)})
    with fetcher() as fetch, pytest.raises(FetchError, match="not public"):
        fetch.get(configured(httpserver, "/a"))
    assert internal.log == []


@pytest.mark.parametrize(("host", "private"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.9", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("0.0.0.0", True), ("::1", True), ("[fe80::1]", True),
    ("fd00::1", True), ("::ffff:127.0.0.1", True), ("100.64.0.1", True),
    ("8.8.8.8", False), ("2606:4700:4700::1111", False),
    ("no-such-host.invalid", False),  # does not resolve: the request fails with its DNS line
])
def test_which_addresses_count_as_private(host: str, private: bool) -> None:
    assert (non_public_address(host, 80) is not None) is private


def test_a_run_does_not_archive_an_internal_answer(httpserver: HTTPServer, internal: HTTPServer,
                                                   tmp_path: Path, run_cli) -> None:
    """End to end: the Canadian CDSA source configured on 127.0.0.1 redirects to the internal
    service; the run records the source as failed with the clear line, archives nothing and
    publishes no copy of it."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/cdsa.xml").respond_with_data(
        "", status=302, headers={"Location": internal_url(internal)})
    data = tmp_path / "data"
    config = write_config(tmp_path / "schedwatch.toml", data_dir=data,
                          sources={"ca-cdsa": {"url": configured(httpserver, "/cdsa.xml")}})
    result: CliResult = run_cli("--config", str(config), "run")
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "ca-cdsa: FAILED (redirect)" in output and "not public" in output
    assert "Traceback" not in output
    assert internal.log == []
    archived = [p for p in (data / "documents").rglob("*") if p.is_file()] \
        if (data / "documents").is_dir() else []
    assert archived == []
    site_documents = data / "site" / "documents"
    assert not site_documents.is_dir() or list(site_documents.iterdir()) == []
