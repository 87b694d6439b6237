"""A look at the published site in a real browser: Playwright (sync API) driving the
system Chromium over file:// — the matrix cell a reader sees, the diff markup on a change
page, the filter script, the page without JavaScript, and the print layout. Screenshots are
written under the test's tmp_path. Skips where Chromium or Playwright is absent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports.site import publish
from tests.support.site_data import NOW, PAYLOAD, build_store, make_settings

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    store = build_store(tmp_path, extra_substances=20)
    yield publish(make_settings(tmp_path, watch="all"), store, now=NOW)
    store.close()


def _page(browser: Any, dialogs: list[str] | None = None, **options: Any) -> Any:
    """A page that records every alert() a script might raise (none should)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, **options)
    if dialogs is not None:
        def record(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", record)
    return page


def test_matrix_cell_as_a_reader_sees_it(browser: Any, site: Path, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page = _page(browser, dialogs)
    page.goto((site / "index.html").as_uri())
    row = page.locator("table.matrix tbody tr").filter(
        has=page.get_by_role("link", name="Ketamine", exact=True))
    assert row.count() == 1
    us_cell = row.locator("td").nth(1)
    primary = us_cell.locator(".line.primary")
    assert primary.is_visible()
    text = primary.inner_text()
    assert "Schedule II" in text and "1308.12(c)(8)" in text and "C2" in text
    canada = row.locator("td").nth(0)
    assert "Schedule I" in canada.locator(".line.primary").inner_text()
    failing = canada.locator(".line.secondary .bad")
    assert failing.is_visible() and "source failing since" in failing.inner_text()
    assert failing.evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"  # red
    # The hostile text from the document is visible as text and ran nothing.
    assert PAYLOAD in page.locator("body").inner_text()
    assert dialogs == []
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    assert (tmp_path / "index.png").stat().st_size > 10_000


def test_change_page_shows_visible_diff_markup(browser: Any, site: Path, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page = _page(browser, dialogs)
    page.goto((site / "changes" / "1.html").as_uri())
    assert page.locator("h1").inner_text().startswith("Ketamine — United States")
    inserted, deleted = page.locator("ins").first, page.locator("del").first
    assert inserted.is_visible() and deleted.is_visible()
    assert "underline" in inserted.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert "line-through" in deleted.evaluate("e => getComputedStyle(e).textDecorationLine")
    # The "[inserted: …]" labels are for screen readers and copies, not shown on screen.
    label = page.locator("ins .vh").first
    assert label.evaluate("e => e.getBoundingClientRect().width") <= 1
    assert page.locator("table.compare tr.changed").count() >= 4
    page.screenshot(path=str(tmp_path / "change.png"), full_page=True)
    assert dialogs == []


def test_filter_script_and_the_page_without_javascript(browser: Any, site: Path) -> None:
    page = _page(browser)
    page.goto((site / "index.html").as_uri())
    rows = page.locator("#records tbody tr")
    total = rows.count()
    assert total == 12 + 20
    box = page.locator("#filter")
    assert box.is_visible()
    box.fill("drug-2")
    assert page.locator("#records tbody tr:not([hidden])").count() == 1
    assert "1 of 32 rows" in page.locator("#filter-count").inner_text()
    box.fill("")
    assert page.locator("#records tbody tr:not([hidden])").count() == total

    without = _page(browser, java_script_enabled=False)
    without.goto((site / "index.html").as_uri())
    assert not without.locator("#filter").is_visible()
    assert without.locator("#records tbody tr:visible").count() == total


def test_print_layout_repeats_the_as_of_stamp(browser: Any, site: Path, tmp_path: Path) -> None:
    page = _page(browser)
    page.goto((site / "reference.html").as_uri())
    page.emulate_media(media="print")
    stamp = page.locator("footer.stamp")
    assert stamp.evaluate("e => getComputedStyle(e).position") == "fixed"
    assert "status as of 2026-11-19 06:00 UTC" in stamp.inner_text()
    assert not page.locator("header.site").is_visible()
    page.pdf(path=str(tmp_path / "reference.pdf"))
    assert (tmp_path / "reference.pdf").read_bytes().startswith(b"%PDF")
    page.screenshot(path=str(tmp_path / "reference-print.png"))
