"""Fetching across hosts (issue 18): robots.txt kept up to 24 hours, one worker per host with
one host's requests serial. Real local servers; concurrency is shown by requests meeting each
other, never by timing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from scheduler.fetching import by_host, fetch_sources
from scrapers.fetch import FetchPolicy, HttpFetcher
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import CDSA_2026, CSR_2026, shared_doc

ROBOTS = "User-agent: *\nDisallow: /private/\n"


def robots_requests(server: HTTPServer) -> int:
    return sum(1 for request, _ in server.log if request.path == "/robots.txt")


def fetcher(cache: Path, wall: Callable[[], float]) -> HttpFetcher:
    return HttpFetcher(FetchPolicy(user_agent="schedwatch-test", min_interval=0,
                                   robots_cache=cache), wall_clock=wall)


# --- robots.txt kept between runs ---------------------------------------------------------------

def test_robots_txt_is_kept_for_a_day_then_asked_again(httpserver: HTTPServer,
                                                       tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    page, private = httpserver.url_for("/page"), httpserver.url_for("/private/x")
    now = [1_000_000.0]
    with fetcher(tmp_path, lambda: now[0]) as first:
        assert first.allowed(page) and not first.allowed(private)
    now[0] += 23 * 3600  # a later run, the same day
    with fetcher(tmp_path, lambda: now[0]) as second:
        assert second.allowed(page) and not second.allowed(private)
        assert ("http://" + httpserver.host + f":{httpserver.port}/robots.txt",
                "kept") in second.log
    assert robots_requests(httpserver) == 1
    now[0] += 2 * 3600  # 25 hours after it was read: RFC 9309's day has passed
    with fetcher(tmp_path, lambda: now[0]) as third:
        assert not third.allowed(private)
    assert robots_requests(httpserver) == 2


def test_an_unreachable_robots_txt_is_not_kept(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("busy", status=503)
    with fetcher(tmp_path, lambda: 0.0) as first:
        assert first.allowed(httpserver.url_for("/page"))
    with fetcher(tmp_path, lambda: 60.0) as second:
        assert second.allowed(httpserver.url_for("/page"))
    assert robots_requests(httpserver) == 2  # a 5xx is asked again, not kept as "no rules"


def test_a_kept_file_of_another_origin_is_not_trusted(httpserver: HTTPServer,
                                                      tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    with fetcher(tmp_path, lambda: 0.0) as first:
        first.allowed(httpserver.url_for("/page"))
    (kept,) = tmp_path.iterdir()
    kept.write_text("# schedwatch robots.txt of https://elsewhere.example\n", encoding="utf-8")
    with fetcher(tmp_path, lambda: 10.0) as second:
        assert not second.allowed(httpserver.url_for("/private/x"))
    assert robots_requests(httpserver) == 2


def test_a_warm_run_does_not_ask_for_robots_txt_again(httpserver: HTTPServer, tmp_path: Path,
                                                       run_cli: Callable[..., CliResult]) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nAllow: /\n")
    httpserver.expect_request("/cdsa.xml").respond_with_data(
        shared_doc(CDSA_2026), content_type="application/xml")
    httpserver.expect_request("/csr.xml").respond_with_data(
        shared_doc(CSR_2026), content_type="application/xml")
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": httpserver.url_for("/cdsa.xml")},
        "ca-csr": {"url": httpserver.url_for("/csr.xml")}}, fetch={"respect_robots": True})
    for _ in range(2):
        result = run_cli("--config", str(config), "run", "-j", "ca")
        assert result.exit_code == 0, result.stdout + result.stderr
    assert robots_requests(httpserver) == 1
    assert list((tmp_path / "data" / "cache" / "robots").glob("*.txt"))


# --- one worker per host ------------------------------------------------------------------------

class Meeting:
    """Two hosts whose first answers each wait (bounded) for the other's request to arrive:
    if the hosts are fetched in turn, the first waits in vain and says so."""

    def __init__(self) -> None:
        self.arrived = {"a": threading.Event(), "b": threading.Event()}
        self.met: dict[str, bool] = {}
        self.in_flight: dict[str, int] = {"a": 0, "b": 0}
        self.most_in_flight: dict[str, int] = {"a": 0, "b": 0}
        self.lock = threading.Lock()

    def handler(self, host: str, body: bytes) -> Callable[[Request], Response]:
        other = "b" if host == "a" else "a"

        def handle(request: Request) -> Response:
            with self.lock:
                self.in_flight[host] += 1
                self.most_in_flight[host] = max(self.most_in_flight[host],
                                                self.in_flight[host])
            self.arrived[host].set()
            if host not in self.met:  # only a host's first answer waits for the other
                self.met[host] = self.arrived[other].wait(timeout=5)
            with self.lock:
                self.in_flight[host] -= 1
            return Response(body, content_type="application/xml")
        return handle


@pytest.fixture
def second_host() -> Any:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def run_on_two_hosts(first: HTTPServer, second: HTTPServer, tmp_path: Path,
                     run_cli: Callable[..., CliResult], **fetch: Any) -> Meeting:
    """``run -j ca`` with the CDSA on ``first`` and the CSR on ``second``: which answers met."""
    meeting = Meeting()
    first.expect_request("/cdsa.xml").respond_with_handler(
        meeting.handler("a", shared_doc(CDSA_2026)))
    second.expect_request("/csr.xml").respond_with_handler(
        meeting.handler("b", shared_doc(CSR_2026)))
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": first.url_for("/cdsa.xml")},
        "ca-csr": {"url": second.url_for("/csr.xml")}}, fetch=fetch or None)
    result = run_cli("--config", str(config), "run", "-j", "ca")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "ca-cdsa: ok, parsed" in result.stdout and "ca-csr: ok, parsed" in result.stdout
    return meeting


def test_two_hosts_are_fetched_at_the_same_time(httpserver: HTTPServer, second_host: HTTPServer,
                                                tmp_path: Path,
                                                run_cli: Callable[..., CliResult]) -> None:
    meeting = run_on_two_hosts(httpserver, second_host, tmp_path, run_cli)
    assert meeting.met == {"a": True, "b": True}


def test_parallel_hosts_1_fetches_one_host_at_a_time(httpserver: HTTPServer,
                                                     second_host: HTTPServer, tmp_path: Path,
                                                     run_cli: Callable[..., CliResult]) -> None:
    meeting = run_on_two_hosts(httpserver, second_host, tmp_path, run_cli,
                               parallel_hosts=1, read_timeout=10)
    assert meeting.met == {"a": False, "b": True}  # the first host waited alone


def test_one_hosts_sources_stay_serial_in_registry_order(httpserver: HTTPServer) -> None:
    from jurisdictions.ca import SOURCES

    meeting = Meeting()
    httpserver.expect_request("/x").respond_with_handler(meeting.handler("a", b"<x/>"))
    base = httpserver.url_for("/x")
    sources = [s.__class__(**{**s.__dict__, "endpoints": {"url": base + f"?{s.id}"}})
               for s in SOURCES]
    assert by_host(sources) == [list(range(len(sources)))]
    order: list[str] = []

    def work(source: Any, fetcher: HttpFetcher) -> str:
        order.append(source.id)
        return fetcher.get(source.url).final_url

    policy = FetchPolicy(user_agent="t", min_interval=0, respect_robots=False,
                         read_timeout=10)
    results = fetch_sources(sources, work, make_fetcher=lambda: HttpFetcher(policy),
                            max_workers=4)
    assert order == [s.id for s in sources] and len(results) == len(sources)
    assert meeting.most_in_flight["a"] == 1


def test_parallel_hosts_must_be_at_least_one(tmp_path: Path,
                                             run_cli: Callable[..., CliResult]) -> None:
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data",
                          sources={}, fetch={"parallel_hosts": 0})
    result = run_cli("--config", str(config), "status")
    assert result.exit_code == 2
    assert "fetch.parallel_hosts" in result.stderr and "Traceback" not in result.stderr
