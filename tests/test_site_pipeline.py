"""The site as the real pipeline leaves it: Canada's real documents served by a local HTTP
server, ``schedwatch run`` and ``schedwatch report weekly`` through the CLI, then the
published pages read back (skips where ../shared/regulator-documents is absent)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from lxml import html as lxml_html
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from scrapers import clock
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import (
    CDSA_2026,
    CSR_2026,
    ketamine_moved_to_schedule_iii,
    shared_doc,
)

TRACKING_STARTS = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)


@pytest.fixture
def ca_site(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
            monkeypatch: pytest.MonkeyPatch):
    """Run the pipeline twice on the real CDSA: as published, then with ketamine moved to
    Schedule III (a variant made here from the original). The clock reads Thursday
    2026-11-19 (ISO week 2026-W47), a minute later at each reading."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(clock, "utcnow", lambda: TRACKING_STARTS + timedelta(minutes=next(ticks)))
    cdsa = shared_doc(CDSA_2026)
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    bodies = {"/cdsa.xml": cdsa, "/csr.xml": shared_doc(CSR_2026)}

    def serve(path: str) -> Callable[[Request], Response]:
        return lambda request: Response(bodies[path], content_type="application/xml")

    for path in bodies:
        httpserver.expect_request(path).respond_with_handler(serve(path))
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": httpserver.url_for("/cdsa.xml")},
        "ca-csr": {"url": httpserver.url_for("/csr.xml")}}, read_timeout=2.0)

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    assert cli("run", "-j", "ca").exit_code == 0
    bodies["/cdsa.xml"] = ketamine_moved_to_schedule_iii(cdsa)
    result = cli("run", "-j", "ca")
    assert result.exit_code == 0, result.stdout + result.stderr
    return tmp_path / "data" / "site", cli, bodies


def test_pipeline_run_publishes_the_matrix_and_the_change(ca_site) -> None:
    site, _, bodies = ca_site
    tree = lxml_html.fromstring((site / "index.html").read_bytes())
    row = tree.xpath("//table[@class='matrix']/tbody/tr[th//a[text()='Ketamine']]")[0]
    primary = " ".join(row.xpath("./td")[0].xpath(".//div[@class='line primary']")[0]
                       .text_content().split())
    assert "Schedule III" in primary and "C3" in primary and "99" in primary
    change = next(site.glob("changes/*.html"))
    page = lxml_html.fromstring(change.read_bytes())
    assert "Schedule I → III (rescheduled)" in page.findtext(".//h1")
    assert page.xpath("//ins") and page.xpath("//del")
    # Both archived documents are in the site, named by their sha256, byte for byte.
    after = hashlib.sha256(bodies["/cdsa.xml"]).hexdigest()
    assert (site / "documents" / f"{after}.xml.txt").read_bytes() == bodies["/cdsa.xml"]
    for href in page.xpath("//ul[@class='evidence']//a/@href"):
        assert (change.parent / href).resolve().is_file()


def test_report_weekly_command(ca_site) -> None:
    site, cli, _ = ca_site
    # The week tracking began in; a week before it, or one not begun, is refused.
    result = cli("report", "weekly", "--week", "2026-W47")
    assert result.exit_code == 0, result.stderr
    assert str(site / "weekly" / "2026-W47.html") in result.stdout
    before = cli("report", "weekly", "--week", "2026-W46")
    assert before.exit_code == 2 and "tracking began" in before.stderr, before.stderr
    future = cli("report", "weekly", "--week", "2026-W48")
    assert future.exit_code == 2 and "has not begun" in future.stderr, future.stderr
    bad = cli("report", "weekly", "--week", "2026-47")
    assert bad.exit_code == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "2026-W47" in bad.stderr
    assert "Invalid value for '--week'" in bad.stderr


def test_every_relative_link_of_the_pipeline_site_resolves(ca_site) -> None:
    site = ca_site[0]
    for path in site.rglob("*.html"):
        tree = lxml_html.fromstring(path.read_bytes())
        for link in tree.xpath("//@href | //@src"):
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), (path, link)
