"""Evidence copies on the site (issue 16, items 8 and 9): an archived document is published
under a name and type a browser shows as text or downloads, never runs; only documents that
parsed are published (a refused answer — a maintenance page, an XHTML page served as XML —
is cited by its sha256 and nothing more); every page carries a Content-Security-Policy that
lets only the site's own inline script (by its hash) and stylesheet run."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from reports.site import publish
from scrapers.store import Store
from tests.faults.crash_helpers import CDSA_PATH, CSR_PATH, ca_config, canada_docs
from tests.support.served import DocServer
from tests.support.site_data import NOW, T1, build_store, fetch, make_settings, record, state

#: An XHTML page with script, as a hostile or broken server could send it as application/xml.
XHTML = (b'<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
         b"<head><title>Statute</title></head><body><p>Ketamine</p><script>"
         b"document.title = 'script ran'; alert(document.cookie);</script></body></html>\n")


def policy_of(page: lxml_html.HtmlElement) -> str:
    [meta] = page.xpath("//head/meta[@http-equiv='Content-Security-Policy']")
    return str(meta.get("content"))


def test_every_page_has_a_policy_that_allows_only_its_own_scripts(tmp_path: Path) -> None:
    store = build_store(tmp_path, extra_substances=3)
    site = publish(make_settings(tmp_path, watch="all"), store, now=NOW)
    store.close()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 5
    scripts = 0
    for path in pages:
        page = lxml_html.fromstring(path.read_bytes())
        policy = policy_of(page)
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["base-uri"] == "'none'" and directives["object-src"] == "'none'"
        assert "unsafe" not in policy and "*" not in policy
        allowed = set(directives["script-src"].split())
        for script in page.xpath("//script"):
            assert script.get("src") is None
            digest = base64.b64encode(hashlib.sha256(script.text.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in allowed, path.name  # the site's own script runs
            scripts += 1
    assert scripts >= 1  # the matrix filter: the test would prove nothing without it


def xhtml_store(tmp_path: Path) -> tuple[Store, str]:
    """A status whose (parsed) evidence document is an XHTML page labelled application/xml."""
    store = Store(tmp_path / "data")
    with store.transaction(started_at=T1, jurisdictions=["ca"]) as w:
        sha, path = store.archive(XHTML)
        w.add_document(sha256=sha, size=len(XHTML), media_type="application/xml",
                       source_id="ca-cdsa", url="https://example.org/ca-cdsa", seen_at=T1,
                       path=str(path.relative_to(store.documents_dir)))
        w.open_interval(record("ca-cdsa", "ketamine", sha, T1), at=T1)
        fetch(w, "ca-cdsa", T1, sha=sha)
        w.save_source_state(state("ca-cdsa", health="healthy", at=T1, sha=sha))
        w.finish(finished_at=T1, exit_code=0, summary={})
    return store, sha


def test_an_xml_copy_is_published_as_text(tmp_path: Path) -> None:
    store, sha = xhtml_store(tmp_path)
    site = publish(make_settings(tmp_path), store, now=NOW)
    assert [p.name for p in (site / "documents").iterdir()] == [f"{sha}.xml.txt"]
    assert (site / "documents" / f"{sha}.xml.txt").read_bytes() == XHTML
    links = lxml_html.fromstring((site / "index.html").read_bytes()).xpath(
        f"//a[contains(@href, '{sha}')]/@href")
    assert links and set(links) == {f"documents/{sha}.xml.txt"}
    # A site published before (with the old name) is renamed, not linked under its old name.
    old = site / "documents" / f"{sha}.xml.txt"
    old.rename(site / "documents" / f"{sha}.xml")
    site = publish(make_settings(tmp_path), store, now=NOW)
    assert [p.name for p in (site / "documents").iterdir()] == [f"{sha}.xml.txt"]
    store.close()


def test_a_refused_document_is_never_published(tmp_path: Path, run_cli) -> None:
    """The CDSA answers an XHTML page as application/xml: refused (an HTML page), recorded
    as an extraction failure with an alert-worthy change, and not copied into the site."""
    docs = canada_docs()
    with DocServer() as server:
        config = ca_config(tmp_path / "schedwatch.toml", tmp_path / "data", server)
        server.set(CDSA_PATH, docs.cdsa)
        server.set(CSR_PATH, docs.csr)
        assert run_cli("--config", str(config), "run", "-j", "ca").exit_code == 0
        server.set(CDSA_PATH, XHTML, content_type="application/xml")
        result = run_cli("--config", str(config), "run", "-j", "ca")
    assert "ca-cdsa: EXTRACTION FAILED" in result.stdout, result.stdout + result.stderr
    refused = hashlib.sha256(XHTML).hexdigest()
    data = tmp_path / "data"
    assert Store(data).document_path(refused).is_file()  # archived, for the record
    site = data / "site"
    changes = [p for p in (site / "changes").glob("*.html") if refused in p.read_text()]
    assert changes, "no change page cites the refused document: the test proves nothing"
    published = [p.name for p in (site / "documents").iterdir()]
    assert published and not [name for name in published if name.startswith(refused)]
    for path in site.rglob("*.html"):
        assert f"documents/{refused}" not in path.read_text(encoding="utf-8"), path.name


# --- in a real browser ------------------------------------------------------------------------

@pytest.mark.browser
def test_in_a_browser_the_copy_is_text_and_injected_script_is_blocked(browser: Any,
                                                                       tmp_path: Path) -> None:
    store, sha = xhtml_store(tmp_path)
    site = publish(make_settings(tmp_path, watch="all"), store, now=NOW)
    store.close()
    dialogs: list[str] = []
    page = browser.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((site / "index.html").as_uri())
    link = page.locator(f"a[href='documents/{sha}.xml.txt']").first
    link.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"{sha}.xml.txt")
    # Shown as the text it is: the markup is visible, its script did not run.
    assert "<script>" in page.locator("body").inner_text()
    assert page.title() != "script ran" and dialogs == []

    full = tmp_path / "full"
    full.mkdir()
    store = build_store(full, extra_substances=3)
    site = publish(make_settings(full, watch="all"), store, now=NOW)
    store.close()
    page.goto((site / "index.html").as_uri())
    assert page.locator("#filter").is_visible()  # the site's own script runs
    with pytest.raises(Exception, match=re.compile("Content Security Policy|CSP|refused",
                                                   re.IGNORECASE)):
        page.add_script_tag(content="window.injected = 1;")
    assert page.evaluate("window.injected === undefined")
