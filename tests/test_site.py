"""The published site: pages, escaping of scraped text, links, atomic publish, page reuse,
weekly reports, feed and exports — on a real Store written as the pipeline writes it
(constructed data from tests.support.site_data)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from lxml import etree
from lxml import html as lxml_html

import reports.feed
import reports.history_page
import reports.pages
import reports.render
import reports.site
from reports.pages import document_extension, substance_slug
from reports.site import (
    SITE_MARKER,
    PublishError,
    change_context,
    publish,
    weekly_context,
    write_weekly,
)
from reports.weeks import parse_week, week_bounds
from scheduler.config import Settings
from scrapers.errors import SchedwatchError
from scrapers.records import PendingItem
from scrapers.store import Store, StoredChange, stamp
from tests.support.site_data import NOW, PAYLOAD, T4, build_store, make_settings
from tests.support.site_spies import break_the_history_template, templates_rendered

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = build_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def site(settings: Settings, store: Store) -> Path:
    return publish(settings, store, now=NOW)


def html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def snapshot_of(site: Path) -> dict[str, str]:
    """Every file of the site with its content hash."""
    return {p.relative_to(site).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(site.rglob("*")) if p.is_file()}


def text_of(path: Path) -> str:
    """The page's text as a reader sees it: element boundaries as spaces, runs collapsed."""
    return " ".join(" ".join(lxml_html.fromstring(path.read_bytes()).itertext()).split())


# --- pages ------------------------------------------------------------------------------------

def test_publish_writes_every_page(site: Path, store: Store) -> None:
    names = set(snapshot_of(site))
    for name in ("index.html", "reference.html", "feed.atom", "status.csv", "status.json",
                 "changes.csv", "style.css", "weekly/index.html", "weekly/2026-W45.html",
                 "weekly/2026-W47.html", "history/ketamine.html", "history/esketamine.html",
                 "history/arketamine.html", SITE_MARKER):
        assert name in names, name
    for change in store.changes():
        assert f"changes/{change.id}.html" in names
    # The site folder holds nothing else but archived documents.
    assert all(n.startswith("documents/") for n in names - {
        *(f"changes/{c.id}.html" for c in store.changes()), "index.html", "reference.html",
        "feed.atom", "status.csv", "status.json", "changes.csv", "style.css",
        "weekly/index.html", "weekly/2026-W45.html", "weekly/2026-W47.html",
        "history/ketamine.html", "history/esketamine.html", "history/arketamine.html",
        SITE_MARKER})


def test_matrix_cell_shows_label_level_provision_as_of_and_health(site: Path) -> None:
    tree = lxml_html.fromstring((site / "index.html").read_bytes())
    from jurisdictions import REGISTRY, jurisdiction

    headers = [th.text_content() for th in tree.xpath("//table[@class='matrix']/thead//th")]
    names = [jurisdiction(code).NAME for code in REGISTRY]  # columns in registry order
    assert [h.split()[0] for h in headers] == ["Substance"] + [n.split()[0] for n in names]
    ketamine = tree.xpath("//table[@class='matrix']/tbody/tr[th//a[text()='Ketamine']]")[0]
    cells = dict(zip(REGISTRY, ketamine.xpath("./td"), strict=True))
    canada, us, australia = cells["ca"], cells["us"], cells["au"]
    # Primary line first (ca-cdsa before ca-csr), the other source as a secondary line.
    lines = canada.xpath("./div[contains(@class,'line')]")
    assert [line.get("class") for line in lines] == ["line primary", "line secondary"]
    assert "Schedule I" in lines[0].text_content() and "Sch. I, item 14(1)" in \
        lines[0].text_content()
    assert "Schedule 1 (not yet in force; in force from 2026-12-20)" in lines[1].text_content()
    # The failing source is red, says since when, and its last healthy status stays shown.
    failing = lines[1].xpath(".//*[@class='bad']")[0].text_content()
    assert "source failing since 2026-11-17 06:00 UTC" in failing
    us_text = " ".join(us.text_content().split())
    assert "Schedule II" in us_text and "1308.12(c)(8)" in us_text
    level = us.xpath(".//abbr[@class='level']")[0]
    assert level.text == "C2" and "strictest medical control" in level.get("title")
    assert "checked 2026-11-17 06:00 UTC" in us_text
    assert "(2026-11-17 01:00 America/Toronto (EST))" in us_text  # the reader's zone, labelled
    assert "Schedule 8" in australia.text_content()


def test_index_notices_stale_heartbeat_and_failed_email(site: Path) -> None:
    text = " ".join(text_of(site / "index.html").split())
    assert "Scheduler heartbeat stale since 2026-11-20 11:18 UTC" in text
    assert "1 email message could not be delivered (permanent failure)" in text
    assert "officer@example.org" in text


def test_fresh_heartbeat_gives_no_notice(settings: Settings, store: Store) -> None:
    store.beat("scheduler", now=NOW - timedelta(minutes=2))
    site = publish(settings, store, now=NOW)
    assert "heartbeat stale" not in text_of(site / "index.html")


def test_index_lists_latest_and_pending_changes(site: Path, store: Store) -> None:
    tree = lxml_html.fromstring((site / "index.html").read_bytes())
    links = tree.xpath("//ul[@class='changes']//a/@href")
    assert links == [f"changes/{c.id}.html" for c in store.changes(newest_first=True)]
    pending = " ".join(tree.xpath("//table[@class='pending']")[0].text_content().split())
    assert "comment deadline: 2027-01-10" in pending and "in force: 2027-01-15" in pending
    # A non-http URL from a document is shown as text, never as a link.
    assert not tree.xpath("//a[starts-with(normalize-space(@href),'javascript')]")


def test_reference_labels_every_date_and_links_the_archived_copy(site: Path,
                                                                  store: Store) -> None:
    tree = lxml_html.fromstring((site / "reference.html").read_bytes())
    text = " ".join(tree.text_content().split())
    for label in ("consolidated as of: 2026-06-05", "last amended: 2024-05-27",
                  "not yet in force; in force from 2026-12-20", "registered: 2025-11-28",
                  "up to date as of: 2026-11-15", "commenced: 2026-06-01",
                  "retrieved (first seen):", "last confirmed (retrieved):",
                  "first observed by schedwatch:"):
        assert label in text, label
    sha = next(iv.last_document_sha256 for iv in store.current_intervals()
               if iv.record.source_id == "us-ecfr-1308")
    assert sha in text  # the full sha256, printed
    links = tree.xpath(f"//a[contains(@href,'{sha}')]/@href")
    assert links and all(link == f"documents/{sha}.xml.txt" for link in links)
    assert "Status as of 2026-11-19 06:00 UTC" in text


def test_reference_is_printable_with_an_as_of_stamp_on_every_page(site: Path) -> None:
    tree = lxml_html.fromstring((site / "reference.html").read_bytes())
    stamp = tree.xpath("//footer[@class='stamp']")[0].text_content()
    assert "status as of 2026-11-19 06:00 UTC" in stamp
    css = (site / "style.css").read_text()
    print_css = css[css.index("@media print"):]
    # A fixed-position element repeats on every printed page.
    assert ".stamp { position: fixed; bottom: 0;" in print_css


def test_archived_documents_are_copied_by_sha_with_a_fixed_extension(site: Path,
                                                                     store: Store) -> None:
    copies = sorted((site / "documents").iterdir())
    assert copies
    for path in copies:
        sha, extension = path.name.split(".", 1)
        assert len(sha) == 64 and extension in ("xml.txt", "docx", "json", "bin", "pdf")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        assert path.read_bytes() == store.read_document(sha)
    extensions = {p.name.split(".", 1)[1] for p in copies}
    assert extensions == {"xml.txt", "docx", "json"}


def test_a_corrupt_archive_file_is_not_published_as_evidence(settings: Settings,
                                                             store: Store) -> None:
    sha = next(iv.last_document_sha256 for iv in store.current_intervals()
               if iv.record.source_id == "ca-cdsa")
    store.document_path(sha).write_bytes(b"tampered")
    site = publish(settings, store, now=NOW)
    assert not list((site / "documents").glob(f"{sha}.*"))
    assert f"documents/{sha}" not in (site / "index.html").read_text()
    assert "no archived copy in this site" in text_of(site / "index.html")


def test_document_extension_never_comes_from_scraped_text() -> None:
    assert document_extension("application/xml; charset=utf-8") == ".xml.txt"  # as text
    assert document_extension("text/xml") == ".xml.txt"
    assert document_extension("application/vnd.openxmlformats-officedocument."
                              "wordprocessingml.document") == ".docx"
    assert document_extension("application/json") == ".json"
    assert document_extension("text/html") == ".bin"  # never served as a page of the site
    assert document_extension("application/xhtml+xml") == ".bin"
    assert document_extension(None, b"<?xml version='1.0'?>") == ".xml.txt"
    assert document_extension(None, b"PK\x03\x04") == ".bin"
    assert document_extension("../../etc/passwd") == ".bin"


# --- change pages -----------------------------------------------------------------------------

def test_change_page_shows_before_after_and_word_diff(site: Path, store: Store) -> None:
    change = next(c for c in store.changes() if c.kind == "rescheduled")
    tree = lxml_html.fromstring((site / f"changes/{change.id}.html").read_bytes())
    rows = {row.xpath("./th")[0].text_content().replace("changed", "").strip():
            [td.text_content().strip() for td in row.xpath("./td")]
            for row in tree.xpath("//table[@class='compare']/tbody/tr")}
    assert rows["Schedule"] == ["III", "II"]
    assert rows["Provision"] == ["1308.13(c)(7)", "1308.12(c)(8)"]
    inserted = [" ".join(e.text_content().split()) for e in tree.xpath("//ins")]
    deleted = [" ".join(e.text_content().split()) for e in tree.xpath("//del")]
    assert "[inserted: 12]" in inserted and "[deleted: 13]" in deleted
    assert "[inserted: and salts of isomers]" in inserted
    evidence = tree.xpath("//ul[@class='evidence']//a/@href")
    assert evidence == [f"../documents/{change.before_sha256}.xml.txt",
                        f"../documents/{change.after_sha256}.xml.txt"]
    assert "effective: 2026-12-01" in " ".join(tree.text_content().split())


def test_source_and_pending_change_pages(site: Path, store: Store) -> None:
    by_kind = {c.kind: c for c in store.changes()}
    failed = text_of(site / f"changes/{by_kind['source_failed'].id}.html")
    assert "Failing since" in failed and PAYLOAD in failed
    extraction = lxml_html.fromstring(
        (site / f"changes/{by_kind['extraction_failed'].id}.html").read_bytes())
    document = by_kind["extraction_failed"].details["document_sha256"]
    # The document that did not parse is cited by its sha256, never published (issue 16).
    assert not extraction.xpath(f"//a[contains(@href, '{document}')]")
    assert document in extraction.text_content()
    assert not list((site / "documents").glob(f"{document}.*"))
    recovered = text_of(site / f"changes/{by_kind['recovered'].id}.html")
    assert "Previous health" in recovered and "extraction_failed" in recovered
    pending = " ".join(text_of(site / f"changes/{by_kind['pending'].id}.html").split())
    assert "proposed rule to Schedule II" in pending
    assert "comment deadline: 2027-01-10" in pending and "document number 2026-12345" in pending
    assert "effective: 2027-01-10" not in pending  # a deadline is not an effective date


def test_change_context_is_plain_data_with_site_relative_links(store: Store) -> None:
    change = next(c for c in store.changes() if c.kind == "amended")
    assert change.after_sha256 is not None
    context = change_context(change, jurisdiction_name="Australia",
                             documents={change.after_sha256: "documents/x.docx"})
    json.dumps(context)  # plain data: the email engineer can use it as it is
    assert context["href"] == f"changes/{change.id}.html"
    assert context["level"] == "status"
    fields = {d["field"]: d for d in context["diffs"]}
    assert set(fields) == {"listed_as", "provision"}
    inserted = "".join(t for op, t in fields["listed_as"]["segments"] if op == "insert")
    assert " ".join(inserted.split()) == "except when in preparations"
    assert fields["listed_as"]["text"].count("[+") == 2
    assert [e["href"] for e in context["evidence"]] == [None, "documents/x.docx"]


# --- weekly -----------------------------------------------------------------------------------

def test_weekly_page_reports_sources_changes_pending_and_upcoming(site: Path) -> None:
    tree = lxml_html.fromstring((site / "weekly/2026-W47.html").read_bytes())
    rows = {row.xpath("./td")[1].text_content(): [td.text_content() for td in row.xpath("./td")]
            for row in tree.xpath("//table[@class='sources']/tbody/tr")}
    assert set(rows) == {"ca-cdsa", "ca-csr", "us-ecfr-1308", "us-federal-register",
                         "au-poisons-standard"}
    checks, failures = rows["ca-csr"][2], rows["ca-csr"][3]
    assert checks == "3" and failures.startswith("3")
    assert "2 × HTTP 503" in failures
    assert rows["ca-csr"][4].startswith("2026-11-02 06:00 UTC")  # last healthy, before the week
    assert rows["ca-csr"][5].startswith("18 days 6 h")  # to now: the week is in progress
    text = " ".join(tree.text_content().split())
    assert "Changes this week (7)" in text
    upcoming = " ".join(tree.xpath("//table[@class='upcoming']")[0].text_content().split())
    # Within 90 days of 2026-11-23: the CSR's effective date, a deadline, an in-force date.
    assert "in force: 2026-12-20" in upcoming and "comment deadline: 2027-01-10" in upcoming
    assert "in force: 2027-01-15" in upcoming
    assert "550 mailbox unavailable" in text


def test_weekly_context_for_email(settings: Settings, store: Store) -> None:
    context = weekly_context(settings, store, "2026-W45", now=NOW)
    json.dumps(context)
    assert context["week"] == "2026-W45" and context["complete"] is True
    assert context["href"] == "weekly/2026-W45.html"
    assert context["start"] == "2026-11-02T05:00:00+00:00"  # Monday 00:00 in Toronto
    assert context["change_count"] == 0
    assert {s["id"]: s["checks"] for s in context["sources"]}["ca-cdsa"] == 1
    # Within 90 days of 2026-11-09; the proposed rule was not published yet that week.
    assert [u["day"] for u in context["upcoming"]] == ["2026-12-20"] * 3 + ["2027-01-15"]
    assert weekly_context(settings, store, now=NOW)["week"] == "2026-W47"


def test_write_weekly_writes_into_the_current_site(settings: Settings, store: Store,
                                                   site: Path) -> None:
    before = snapshot_of(site)
    path = write_weekly(settings, store, "2026-W50", now=NOW)
    assert path == site / "weekly/2026-W50.html"
    assert "Weekly report 2026-W50" in text_of(path)
    assert "weekly/2026-W50.html" in (site / "weekly/index.html").read_text()
    after = snapshot_of(site)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {"weekly/2026-W50.html", "weekly/index.html", SITE_MARKER}
    assert not list(site.parent.glob(".*.tmp-*")) and not list(site.glob("weekly/.*"))
    # A later publish keeps the week although it has no data.
    publish(settings, store, now=NOW)
    assert (site / "weekly/2026-W50.html").is_file()


def test_write_weekly_defaults_to_the_current_week_and_publishes_first(
        settings: Settings, store: Store) -> None:
    path = write_weekly(settings, store, now=NOW)
    assert path.name == "2026-W47.html"
    assert (settings.site_path / "index.html").is_file()


@pytest.mark.parametrize("week", ["2026-47", "2026-W7", "2026-W54", "2026-W00", "W47",
                                  "2025-W53", "../../x", ""])
def test_a_bad_week_is_one_clear_error(settings: Settings, store: Store, week: str) -> None:
    with pytest.raises(SchedwatchError) as caught:
        write_weekly(settings, store, week, now=NOW)
    message = str(caught.value)
    assert "\n" not in message and "2026-W47" in message
    assert not settings.site_path.exists()


def test_week_bounds_follow_the_reader_zone() -> None:
    from zoneinfo import ZoneInfo

    start, end = week_bounds("2026-W53", ZoneInfo("Australia/Sydney"))
    assert start == datetime(2026, 12, 27, 13, 0, tzinfo=UTC)
    assert end - start == timedelta(days=7)
    assert parse_week(" 2020-W53 ") == (2020, 53)


@pytest.mark.parametrize("text", ["2021-W53", "2026-W00", "2026-w47", "2026-W7", "", None, 47])
def test_a_week_that_does_not_exist_is_refused_every_time_it_is_named(text: object) -> None:
    """Weeks are parsed once per process (a publish names each of years of them several
    times): what is kept is a parsed week, never a refusal or a bad week taken for one."""
    for _ in range(2):
        with pytest.raises(SchedwatchError, match="bad week"):
            parse_week(text)  # type: ignore[arg-type]
    assert parse_week("2026-W47") == parse_week("2026-W47") == (2026, 47)


@pytest.mark.parametrize("zone_name", ["UTC", "America/Toronto", "Australia/Adelaide",
                                       "Asia/Kathmandu", "Pacific/Chatham"])
def test_week_finder_agrees_with_the_calendar_in_every_zone(zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    from reports.weeks import week_finder, week_name

    zone = ZoneInfo(zone_name)
    start = datetime(2025, 12, 20, tzinfo=UTC)
    stamps = [(start + timedelta(minutes=15 * i)).isoformat() for i in range(4 * 24 * 30)]
    find = week_finder(stamps, zone)
    for value in stamps:
        assert find(value) == week_name(datetime.fromisoformat(value), zone), value
    outside = (start - timedelta(days=40)).isoformat()
    assert find(outside) == week_name(start - timedelta(days=40), zone)
    later = (start + timedelta(days=90)).isoformat()
    assert find(later) == week_name(start + timedelta(days=90), zone)


@pytest.mark.parametrize("zone_name", ["UTC", "America/Toronto", "Asia/Kathmandu"])
def test_week_finder_places_moments_written_in_other_forms(zone_name: str) -> None:
    """Stamps as schedwatch writes them are compared as text; a moment written another way
    (another offset, "Z", fractions of a second) is placed by its moment, among them."""
    from zoneinfo import ZoneInfo

    from reports.weeks import week_finder, week_name

    zone = ZoneInfo(zone_name)
    start = datetime(2025, 12, 20, tzinfo=UTC)
    moments = [start + timedelta(minutes=37 * i) for i in range(2000)]
    other = ZoneInfo("America/St_Johns")
    forms = [moments[0].isoformat(), moments[1].astimezone(other).isoformat(),
             moments[2].strftime("%Y-%m-%dT%H:%M:%SZ"),
             (moments[3] + timedelta(microseconds=5)).isoformat()]
    stamps = [*forms, *(m.isoformat() for m in moments[4:])]
    find = week_finder(stamps, zone)
    for value in stamps:
        assert find(value) == week_name(datetime.fromisoformat(value), zone), value
    # A moment in another form before every stored stamp still widens the span it covers.
    early = (start - timedelta(days=20)).astimezone(other).isoformat()
    find = week_finder([early, *stamps], zone)
    assert find(early) == week_name(start - timedelta(days=20), zone)
    assert find(stamps[-1]) == week_name(moments[-1], zone)


@pytest.mark.parametrize("zone_name", ["UTC", "America/Toronto", "Asia/Kathmandu",
                                       "Pacific/Chatham"])
def test_weeks_of_places_every_stamp_as_the_calendar_does(zone_name: str) -> None:
    """``weeks_of`` (the weekly index places ten years of fetches with it) reuses the week of
    the stamp before: out of order, on a week's first and last second, in another form and
    outside the span given, each stamp still gets its own week."""
    from zoneinfo import ZoneInfo

    from reports.weeks import week_bounds, week_finder, week_name
    from scrapers.clock import stamp

    zone = ZoneInfo(zone_name)
    start = datetime(2025, 12, 20, tzinfo=UTC)
    moments = [start + timedelta(hours=7 * i) for i in range(300)]
    monday, next_monday = week_bounds("2026-W02", zone)
    edges = [monday, monday - timedelta(seconds=1), next_monday - timedelta(seconds=1),
             next_monday]
    values = [stamp(m) for m in moments]
    values[10:10] = [stamp(m) for m in edges]                 # boundaries among early rows
    # Reads as a moment of the week just placed, is an hour before it: placed by its moment.
    values.insert(11, (monday - timedelta(hours=1)).astimezone(
        timezone(timedelta(hours=5))).isoformat())
    values[50], values[51] = values[51], values[50]           # two rows out of order
    values.insert(60, stamp(moments[-1]))                     # a late row early
    values.insert(61, moments[61].astimezone(ZoneInfo("America/St_Johns")).isoformat())
    find = week_finder(values, zone)
    outside = [stamp(start - timedelta(days=30)), stamp(start + timedelta(days=400))]
    given = [*values[:30], outside[0], *values[30:], outside[1]]
    expected = [week_name(datetime.fromisoformat(v), zone) for v in given]
    assert find.weeks_of(given) == expected
    assert [find(v) for v in given] == expected
    assert week_finder([], zone).weeks_of(values[:3]) == expected[:3]


# --- escaping ---------------------------------------------------------------------------------

def test_scraped_text_is_text_on_every_page(site: Path) -> None:
    pages_with_payload = 0
    for path in html_files(site):
        raw = path.read_text(encoding="utf-8")
        assert "<script>alert" not in raw, path
        tree = lxml_html.fromstring(raw.encode())
        for script in tree.xpath("//script"):
            assert "alert(1)" not in (script.text or ""), path
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            assert not [a for a in element.attrib if a.lower().startswith("on")], path
            for attribute in ("href", "src"):
                value = (element.get(attribute) or "").strip().lower()
                assert not value.startswith(("javascript:", "data:", "vbscript:")), path
        if PAYLOAD in tree.text_content():
            pages_with_payload += 1
    # The hostile text is shown (as text) wherever a page shows that field.
    for name in ("index.html", "reference.html", "weekly/2026-W47.html",
                 "history/ketamine.html", "history/arketamine.html", "changes/3.html",
                 "changes/4.html", "changes/5.html", "changes/6.html", "changes/7.html"):
        assert PAYLOAD in text_of(site / name), name
    assert pages_with_payload >= 10


def test_scraped_text_in_attributes_stays_inside_them(site: Path) -> None:
    # An http(s) URL from a document becomes a link; its quotes and angle brackets are
    # escaped inside the attribute, so the parsed href is exactly the scraped URL.
    tree = lxml_html.fromstring((site / "reference.html").read_bytes())
    url = f"https://www.legislation.gov.au/?q={PAYLOAD}"
    assert tree.xpath("//a[@class='ext']/@href").count(url) == 3
    raw = (site / "reference.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;dq&#34; &#39;sq&#39; &amp; AT&amp;T" in raw


def test_feed_is_valid_atom_with_escaped_text_and_stable_ids(settings: Settings, store: Store,
                                                             site: Path) -> None:
    feed = etree.fromstring((site / "feed.atom").read_bytes())
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{name}") is not None, name
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == len(store.changes())
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == len(ids) and all(i.startswith("urn:uuid:") for i in ids)
    for entry in entries:
        for name in ("id", "title", "updated", "link", "content"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated"))
        content = entry.find(f"{ATOM}content")
        assert content.get("type") == "html"
        fragment = lxml_html.fragment_fromstring(content.text, create_parent="div")
        assert not fragment.xpath("//script")
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert any(PAYLOAD in title for title in titles)
    amended = next(e for e in entries if "(amended)" in e.findtext(f"{ATOM}title"))
    assert PAYLOAD in lxml_html.fragment_fromstring(
        amended.find(f"{ATOM}content").text, create_parent="div").text_content()
    # The same changes keep the same entry ids on the next publish.
    again = etree.fromstring((publish(settings, store, now=NOW + timedelta(hours=1))
                              / "feed.atom").read_bytes())
    assert [e.findtext(f"{ATOM}id") for e in again.findall(f"{ATOM}entry")] == ids


def test_feed_uses_absolute_links_with_a_site_url(tmp_path: Path, store: Store) -> None:
    settings = make_settings(tmp_path, site_url="https://status.example.org/schedwatch/")
    site = publish(settings, store, now=NOW)
    feed = etree.fromstring((site / "feed.atom").read_bytes())
    self_link = feed.find(f"{ATOM}link[@rel='self']")
    assert self_link.get("href") == "https://status.example.org/schedwatch/feed.atom"
    entry_link = feed.find(f"{ATOM}entry/{ATOM}link").get("href")
    assert entry_link.startswith("https://status.example.org/schedwatch/changes/")


# --- links ------------------------------------------------------------------------------------

def _links(path: Path) -> list[str]:
    if path.suffix == ".atom":
        tree = etree.fromstring(path.read_bytes())
        return [e.get("href") for e in tree.iter(f"{ATOM}link")]
    tree = lxml_html.fromstring(path.read_bytes())
    return [v for e in tree.iter() if isinstance(e.tag, str)
            for v in (e.get("href"), e.get("src")) if v is not None]


def test_every_relative_link_resolves(site: Path) -> None:
    assert links_resolve(site) > 100


def links_resolve(site: Path) -> int:
    """Every relative link of every page and of the feed names a file of the site (and an
    id in it); returns how many links were checked."""
    checked = 0
    ids: dict[Path, set[str]] = {}
    for path in [*html_files(site), site / "feed.atom"]:
        for link in _links(path):
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto"):
                continue
            assert not parts.scheme and not parts.netloc, (path, link)
            assert not link.startswith("/"), (path, link)  # works from file://
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), (path, link)
            assert site.resolve() in target.parents, (path, link)
            if parts.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = set(lxml_html.fromstring(target.read_bytes())
                                      .xpath("//@id"))
                assert parts.fragment in ids[target], (path, link)
            checked += 1
    return checked


def test_no_external_assets(site: Path) -> None:
    for path in html_files(site):
        tree = lxml_html.fromstring(path.read_bytes())
        for value in tree.xpath("//link/@href | //script/@src | //img/@src"):
            assert not urlsplit(value).scheme, (path, value)


# --- atomic publish and reuse -----------------------------------------------------------------

def test_a_render_failure_leaves_the_previous_site(settings: Settings, store: Store,
                                                   site: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   request: pytest.FixtureRequest) -> None:
    before = snapshot_of(site)
    break_the_history_template(tmp_path, monkeypatch, request)
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.add_fetch(source_id="ca-cdsa", started_at=NOW, url="https://example.org",
                         outcome="unchanged")
    import jinja2

    with pytest.raises(PublishError, match="previous site is unchanged") as caught:
        publish(settings, store, now=NOW + timedelta(days=1))
    assert isinstance(caught.value.__cause__, jinja2.UndefinedError)
    assert "\n" not in str(caught.value)
    assert snapshot_of(site) == before
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".site")] == []


def test_a_failed_swap_puts_the_previous_site_back(settings: Settings, store: Store,
                                                   site: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot_of(site)
    real_rename = os.rename

    def rename(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        if Path(source).name.startswith(".site.new-"):
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    monkeypatch.setattr(reports.site.os, "rename", rename)
    with pytest.raises(OSError):
        publish(settings, store, now=NOW + timedelta(days=1))
    assert snapshot_of(site) == before
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".site")] == []


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_publish_pauses_the_collector_and_gives_it_back_as_it_was(
        settings: Settings, store: Store, site: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest, enabled_before: bool) -> None:
    """While a publish runs, the cyclic collector runs only where the publish asks it to —
    a full collection after each group of pages, of what the group made, never one of its
    own young-generation passes — and the process (the scheduler, these tests) gets it back as it was, with
    nothing left frozen, on success and on a failed publish alike."""
    import gc

    collections: list[int] = []
    inside: list[bool] = []
    publish_locked = reports.site._publish_locked

    def publishing(*args: object) -> Path:
        inside.append(True)
        try:
            return publish_locked(*args)  # type: ignore[arg-type]
        finally:
            inside.clear()

    # A container made while the first group's pages are written and kept alive: whether
    # each collection walks it.
    survivor: list[list[object]] = []
    walked: list[bool] = []
    write = reports.site._PageWriter.write

    def writing(self: object, page: object) -> str:
        if not survivor:
            survivor.append([page])
        return write(self, page)  # type: ignore[arg-type]

    monkeypatch.setattr(reports.site._PageWriter, "write", writing)

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and inside:
            collections.append(info["generation"])
            walked.append(any(o is survivor[0] for o in gc.get_objects()))

    monkeypatch.setattr(reports.site, "_publish_locked", publishing)

    # A young-generation pass after every new container, were the collector running.
    thresholds = gc.get_threshold()
    gc.set_threshold(1)
    request.addfinalizer(lambda: gc.set_threshold(*thresholds))
    request.addfinalizer(gc.enable)
    if not enabled_before:
        gc.disable()
    gc.callbacks.append(seen)
    try:
        publish(settings, store, now=NOW + timedelta(days=1))
    finally:
        gc.callbacks.remove(seen)
    assert collections and set(collections) == {2}, collections
    # What a group leaves alive is frozen after its collection: the next group's collection
    # walks only what that group made, not every earlier survivor again.
    assert len(walked) > 2 and walked == [True] + [False] * (len(walked) - 1), walked
    assert gc.isenabled() is enabled_before and gc.get_freeze_count() == 0

    # A page that fails mid-way: after the snapshot was frozen too.
    monkeypatch.setattr(reports.site._PageWriter, "write", _broken_page)
    with pytest.raises(PublishError):
        publish(settings, store, now=NOW + timedelta(days=2))
    assert gc.isenabled() is enabled_before and gc.get_freeze_count() == 0


def _broken_page(*args: object) -> str:
    raise ValueError("a page could not be written")


def test_a_crash_between_the_renames_is_recovered(settings: Settings, store: Store,
                                                  site: Path) -> None:
    retired = site.parent / ".site.old-deadbeef"
    os.rename(site, retired)
    (site.parent / ".site.new-crashed").mkdir()
    publish(settings, store, now=NOW)
    assert (site / "index.html").is_file()
    # The half-built folder is gone; the site put back was swapped out as the spare.
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".site")] == [
        ".site.spare"]


def test_unchanged_pages_are_reused_not_rendered(settings: Settings, store: Store, site: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inodes = {name: (site / name).stat().st_ino for name in snapshot_of(site)}
    rendered = templates_rendered(monkeypatch)
    publish(settings, store, now=NOW + timedelta(minutes=1))
    # Only the pages that show the time of publishing are made again (the running week's
    # "time since" is in whole minutes... of hours here: unchanged, so reused too).
    assert sorted(rendered) == ["index.html", "reference.html"]
    for name in ("changes/1.html", "history/ketamine.html", "weekly/2026-W45.html",
                 "status.csv", "feed.atom") + tuple(
            n for n in inodes if n.startswith("documents/")):
        assert (site / name).stat().st_ino == inodes[name], name


def test_the_running_weeks_report_is_remade_only_when_its_time_since_moves(
        settings: Settings, store: Store, site: Path) -> None:
    """A week's fingerprint takes its sources' last healthy fetches, not the "time since"
    they show: the week's end sets that for a past week, and for the running week now
    does, through what it shows (whole minutes, hours, days)."""
    running, past = site / "weekly" / "2026-W47.html", site / "weekly" / "2026-W45.html"
    shown = re.compile(r"<td>(\d+ (?:min|h|days?)[^<]*?) <small>")
    before = (running.stat().st_ino, past.stat().st_ino, shown.findall(running.read_text()))
    assert before[2], "the running week shows how long since each source's healthy fetch"
    publish(settings, store, now=NOW + timedelta(seconds=20))  # the same minute
    assert (running.stat().st_ino, past.stat().st_ino) == before[:2]
    publish(settings, store, now=NOW + timedelta(days=1, hours=3))
    assert running.stat().st_ino != before[0]
    assert shown.findall(running.read_text()) != before[2]
    assert past.stat().st_ino == before[1]


def test_a_reused_page_is_never_built(settings: Settings, store: Store, site: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages are made one at a time and only when needed: the fingerprint of a history page,
    a change page, the feed or an export comes from the stored rows, not from its context."""
    built: list[str] = []

    def spy(owner: object, name: str) -> None:
        real = getattr(owner, name)

        def counted(*args: object, **kwargs: object) -> object:
            built.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    spy(reports.history_page, "history_context")
    for name in ("feed_context", "status_rows", "change_row"):
        spy(reports.feed, name)
    spy(reports.site, "change_context")
    pages = reports.site.site_pages(reports.site.read_snapshot(settings, store), settings,
                                    reports.render.environment(), now=NOW)
    assert not isinstance(pages, list)  # a generator: nothing is held for the whole site
    publish(settings, store, now=NOW + timedelta(minutes=1))
    assert built == []


def test_a_new_change_rerenders_what_shows_it(settings: Settings, store: Store,
                                              site: Path) -> None:
    old_csv = (site / "changes.csv").read_bytes()
    with store.transaction(started_at=NOW, jurisdictions=["au"]) as writer:
        writer.add_change(detected_at=NOW, jurisdiction="au", substance=None,
                          source_id="au-poisons-standard", kind="source_failed",
                          summary="Australia — au-poisons-standard: source failing: timeout",
                          before=None, after=None, details={"error": "timeout"})
    publish(settings, store, now=NOW)
    assert (site / "changes/8.html").is_file()
    assert (site / "changes.csv").read_bytes() != old_csv
    assert "source failing: timeout" in (site / "feed.atom").read_text()


def _inodes(site: Path) -> dict[str, int]:
    return {name: (site / name).stat().st_ino for name in snapshot_of(site)}


def test_incremental_publish_equals_a_fresh_one_after_every_kind_of_update(
        tmp_path: Path) -> None:
    """A page is reused when its fingerprint (what it is made from) is unchanged: after each
    kind of update the incremental site must be byte for byte the site a fresh publish
    makes, and the pages the update does not touch must still be reused."""
    store = _watch_all_store(tmp_path)
    settings = make_settings(tmp_path, watch="all", site_url="https://example.org/sw/")
    site = publish(settings, store, now=NOW)
    moment = [NOW]

    def check(*, changed: set[str], reused: set[str]) -> None:
        moment[0] += timedelta(minutes=1)
        before = snapshot_of(site)
        inodes = _inodes(site)
        publish(settings, store, now=moment[0])
        fresh = publish(dataclasses.replace(settings, site_dir=tmp_path / "fresh"), store,
                        now=moment[0])
        assert snapshot_of(site) == snapshot_of(fresh)
        shutil.rmtree(fresh)
        after = snapshot_of(site)
        for name in changed:
            assert after.get(name) != before.get(name), name
        for name in reused:
            assert _inodes(site)[name] == inodes[name], name

    pending = {row.item.substance: row for row in store.pending_items(open_only=False)}
    current = {(iv.record.source_id, iv.record.substance): iv.record
               for iv in store.current_intervals()}
    untouched = {"history/esketamine.html", "history/drug-2.html", "changes/1.html",
                 "weekly/2026-W45.html"}
    # A record rewritten in place (a new instrument id for every entry of a document): no
    # change, no new interval, no new confirmation.
    ketamine = current[("au-poisons-standard", "ketamine")]
    with store.transaction(started_at=T4, jurisdictions=["au"]) as writer:
        writer.replace_open_record(dataclasses.replace(ketamine, instrument="F2026L09999"))
    check(changed={"history/ketamine.html", "status.csv", "status.json"},
          reused=untouched | {"feed.atom", "changes.csv"})
    # A pending item seen again with new text, then resolved.
    item = dataclasses.replace(pending["drug-4"].item, description="Now final: Schedule 8")
    with store.transaction(started_at=T4, jurisdictions=["au"]) as writer:
        writer.touch_pending(pending["drug-4"].id, item, at=T4 + timedelta(hours=1))
    check(changed={"history/drug-4.html"}, reused=untouched | {"history/ketamine.html"})
    with store.transaction(started_at=T4, jurisdictions=["ca"]) as writer:
        writer.resolve_pending(pending["ketamine"].id, at=T4 + timedelta(hours=2))
    check(changed={"history/ketamine.html", "weekly/2026-W45.html"},  # open that week
          reused=untouched - {"weekly/2026-W45.html"} | {"history/drug-4.html"})
    # A change of a substance that had no history page gives it one.
    drug = current[("au-poisons-standard", "drug-0")]
    with store.transaction(started_at=T4, jurisdictions=["au"]) as writer:
        writer.close_intervals(drug.source_id, ["drug-0"], at=T4, confirmed_at=None,
                               confirmed_sha256=None)
        writer.add_change(detected_at=T4, jurisdiction="au", substance="drug-0",
                          source_id=drug.source_id, kind="descheduled",
                          summary="Drug-0 — Australia: Schedule 4 → not listed (descheduled)",
                          before=drug.as_dict(), after=None, details={})
    check(changed={"history/drug-0.html", "feed.atom", "changes.csv", "status.csv"},
          reused=untouched - {"weekly/2026-W45.html"})
    # A source's health changes: the pages that show it (status exports) follow.
    with store.transaction(started_at=T4, jurisdictions=["us"]) as writer:
        writer.save_source_state(dataclasses.replace(
            store.source_states()["us-ecfr-1308"], health="source_failed",
            consecutive_failures=2, last_error="HTTP 500"))
    check(changed={"status.csv"}, reused=untouched)
    # An archived copy that could not be published, then can: the evidence becomes a link.
    sha = next(iv.last_document_sha256 for iv in store.current_intervals()
               if iv.record.source_id == "us-ecfr-1308" and iv.record.substance == "esketamine")
    original = store.document_path(sha).read_bytes()
    store.document_path(sha).write_bytes(b"tampered")
    shutil.rmtree(site / "documents")  # the previous site's copy is not used either
    check(changed={"history/esketamine.html"}, reused={"history/drug-2.html"})
    store.document_path(sha).write_bytes(original)
    check(changed={"history/esketamine.html"}, reused={"history/drug-2.html"})
    store.close()


def test_a_folder_not_made_by_schedwatch_is_never_replaced(tmp_path: Path,
                                                           store: Store) -> None:
    settings = make_settings(tmp_path)
    precious = settings.site_path / "thesis.tex"
    precious.parent.mkdir(parents=True)
    precious.write_text("years of work")
    with pytest.raises(SchedwatchError, match="schedwatch did not write"):
        publish(settings, store, now=NOW)
    assert precious.read_text() == "years of work"


def test_an_empty_store_publishes_an_empty_site(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = Store(settings.data_dir)
    site = publish(settings, store, now=NOW)
    text = text_of(site / "index.html")
    assert "no record yet" in text and "No changes." in text
    assert json.loads((site / "status.json").read_text()) == []
    store.close()


def test_a_bad_timezone_is_one_clear_error(tmp_path: Path, store: Store) -> None:
    settings = make_settings(tmp_path, timezone="Mars/Olympus_Mons")
    with pytest.raises(SchedwatchError, match="scheduler.timezone"):
        publish(settings, store, now=NOW)


# --- watch = "all" ----------------------------------------------------------------------------

def test_watch_all_lists_watched_first_then_a_searchable_table(tmp_path: Path) -> None:
    store = build_store(tmp_path, extra_substances=40)
    settings = make_settings(tmp_path, watch="all")
    site = publish(settings, store, now=NOW)
    tree = lxml_html.fromstring((site / "index.html").read_bytes())
    matrix_rows = tree.xpath("//table[@class='matrix']/tbody/tr/th//a/text()")
    assert matrix_rows == ["Ketamine", "Esketamine", "Arketamine"]
    rows = tree.xpath("//table[@id='records']/tbody/tr")
    assert len(rows) == 12 + 40
    assert tree.xpath("//input[@id='filter']")
    # Hidden until the script shows it: without JavaScript the full table is all there is.
    assert tree.xpath("//p[@id='filter-box']")[0].get("hidden") is not None
    script = tree.xpath("//script")[0].text
    assert "filter" in script and "src" not in tree.xpath("//script")[0].attrib
    reference = lxml_html.fromstring((site / "reference.html").read_bytes())
    for href in tree.xpath("//table[@id='records']//a/@href"):
        path, _, anchor = href.partition("#")
        assert (site / path).is_file()
        assert not anchor or reference.xpath(f"//*[@id='{anchor}']"), href
        name = Path(path).name
        assert name == name.lower() and all(c.isalnum() or c in "-." for c in name)
    # A row its source's latest check confirmed points to that source's health (the time
    # is shown there, once); a row whose source failed since keeps its own time.
    for row in rows:
        source, confirmed = (row.xpath(f"./td[{n}]")[0].text_content() for n in (8, 7))
        if "failing" in source:  # ca-csr in the fixture
            assert confirmed.endswith(" UTC"), source
        else:
            assert confirmed == "latest check", source
    store.close()


def _watch_all_store(tmp_path: Path) -> Store:
    """The fixture with six more substances (drug-0, drug-2, drug-4 and three with hostile
    names), of which drug-2 then changes and drug-4 gets a pending item."""
    store = build_store(tmp_path, extra_substances=6)
    current = {(iv.record.source_id, iv.record.substance): iv.record
               for iv in store.current_intervals()}
    before = current[("au-poisons-standard", "drug-2")]
    after = dataclasses.replace(before, schedule="8", control_level="C2",
                                provision="Schedule 8 #2", retrieved_at=stamp(T4))
    with store.transaction(started_at=T4, jurisdictions=["au"]) as writer:
        writer.close_intervals(before.source_id, [before.substance], at=T4, confirmed_at=None,
                               confirmed_sha256=None)
        writer.open_interval(after, at=T4)
        writer.add_change(detected_at=T4, jurisdiction="au", substance="drug-2",
                          source_id=before.source_id, kind="rescheduled",
                          summary="Drug-2 — Australia: Schedule 4 → 8 (rescheduled)",
                          before=before.as_dict(), after=after.as_dict(),
                          details={"fields": ["schedule", "control_level", "provision"]})
        writer.open_pending(PendingItem(
            jurisdiction="au", substance="drug-4", source_id="au-poisons-standard",
            key="AU:drug-4", action="proposed_rule", description="Proposed to Schedule 8",
            reference="Interim decision 2026", date_label="decision", date="2027-02-01"),
            at=T4)
    return store


def test_watch_all_gives_history_pages_only_to_watched_and_changed_substances(
        tmp_path: Path) -> None:
    store = _watch_all_store(tmp_path)
    settings = make_settings(tmp_path, watch="all")
    site = publish(settings, store, now=NOW)
    pages = {p.name for p in (site / "history").iterdir()}
    # The watched substances, the one that changed and the one with a pending item: not a
    # page for each of the unchanged entries.
    assert pages == {"ketamine.html", "esketamine.html", "arketamine.html", "drug-2.html",
                     "drug-4.html"}
    tree = lxml_html.fromstring((site / "index.html").read_bytes())
    rows = {" ".join(row.xpath("./td")[0].text_content().split()): row.xpath("./td")[0]
            for row in tree.xpath("//table[@id='records']/tbody/tr")}
    assert rows["Drug-0"].xpath(".//a") == []  # shown, not linked
    assert rows["Drug-2"].xpath(".//a/@href") == ["history/drug-2.html"]
    assert rows["Drug-4"].xpath(".//a/@href") == ["history/drug-4.html"]
    assert "(unmatched)" in tree.xpath("//table[@id='records']")[0].text_content()
    reference = lxml_html.fromstring((site / "reference.html").read_bytes())
    headings = {" ".join(h.text_content().split()): h for h in reference.xpath("//h3")}
    assert headings["Drug-0 — Australia"].xpath(".//a") == []
    assert headings["Drug-2 — Australia"].xpath(".//a/@href") == ["history/drug-2.html"]
    change = next(c for c in store.changes() if c.substance == "drug-2")
    assert 'href="../history/drug-2.html"' in (site / f"changes/{change.id}.html").read_text()
    assert links_resolve(site) > 100
    store.close()


def test_a_watch_list_keeps_a_history_page_for_every_substance(tmp_path: Path) -> None:
    store = _watch_all_store(tmp_path)
    site = publish(make_settings(tmp_path), store, now=NOW)
    names = {iv.record.substance for iv in store.current_intervals()}
    assert {p.name for p in (site / "history").iterdir()} == {
        f"{substance_slug(name)}.html" for name in names}
    assert links_resolve(site) > 100
    store.close()


@pytest.mark.parametrize("name", ["ketamine", "drug-1", "Ketamine", "../../etc/passwd",
                                  "<script>alert(1)</script>", "", "  ", "a" * 300, "é",
                                  "con", "x.html"])
def test_substance_slugs_are_safe_file_names(name: str) -> None:
    slug = substance_slug(name)
    assert slug and len(slug) <= 80
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in slug)
    assert slug == name or slug.rsplit("-", 1)[1].isalnum()


def test_distinct_names_get_distinct_slugs() -> None:
    names = ["ketamine", "Ketamine", "KETAMINE", "ketamine.", "ketamine-", "é", "è", ""]
    assert len({substance_slug(n) for n in names}) == len(names)


# --- exports ----------------------------------------------------------------------------------

def test_exports(site: Path, store: Store) -> None:
    rows = list(csv.DictReader(io.StringIO((site / "status.csv").read_text())))
    assert len(rows) == len(store.current_intervals())
    us = next(r for r in rows if r["jurisdiction"] == "us" and r["substance"] == "ketamine")
    assert us["schedule"] == "II" and us["provision"] == "1308.12(c)(8)"
    assert us["dates"] == "up to date as of: 2026-11-15"
    data = json.loads((site / "status.json").read_text())
    assert {d["source_id"] for d in data} == {"ca-cdsa", "ca-csr", "us-ecfr-1308",
                                              "au-poisons-standard"}
    au = next(d for d in data if d["source_id"] == "au-poisons-standard"
              and d["substance"] == "ketamine")
    assert PAYLOAD in au["listed_as"]  # exact text in JSON
    changes = list(csv.DictReader(io.StringIO((site / "changes.csv").read_text())))
    assert [int(c["id"]) for c in changes] == [c.id for c in store.changes()]
    assert next(c for c in changes if c["kind"] == "rescheduled")["after_schedule"] == "II"


def test_csv_cells_cannot_run_as_formulas() -> None:
    from reports.exports import to_csv, to_json

    rows = [{"a": "=HYPERLINK(\"http://evil\")", "b": "@SUM(A1)", "c": "plain"}]
    text = to_csv(rows, ["a", "b", "c"]).decode()
    assert "'=HYPERLINK" in text and "'@SUM" in text and ",plain" in text
    assert json.loads(to_json(rows, ["a", "b", "c"]))[0]["a"] == rows[0]["a"]


def test_a_run_committed_while_the_site_reads_the_store_is_in_none_of_its_pages(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's run commits after the site has read the intervals and before it
    reads the changes: the site shows the store before that run everywhere (no change page
    for a status the reference does not show), and the next publish shows it everywhere."""
    from tests.support.site_data import record

    settings = make_settings(tmp_path, watch="all")  # every substance in the reference
    at = T4 + timedelta(hours=2)
    other = Store(tmp_path / "data")
    read_changes = store.changes
    committed: list[int] = []

    def changes_after_a_commit(*args: object, **kwargs: object) -> list[object]:
        if not committed:  # the first read of the changes: the run lands just before it
            with other.transaction(started_at=at, jurisdictions=["ca"]) as writer:
                writer.open_intervals([record("ca-cdsa", "zz-racing", "c" * 64, at)], at=at)
                committed.append(writer.add_change(
                    detected_at=at, jurisdiction="ca", substance="zz-racing",
                    source_id="ca-cdsa", kind="scheduled", summary="ZZ-RACING scheduled",
                    before=None, after={"schedule": "I"}))
                writer.finish(finished_at=at, exit_code=0, summary={})
        return read_changes(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "changes", changes_after_a_commit)
    try:
        site = publish(settings, store, now=at + timedelta(minutes=1))
        first = ((site / f"changes/{committed[0]}.html").exists(),
                 "ZZ-RACING scheduled" in (site / "feed.atom").read_text("utf-8"),
                 "zz-racing" in (site / "reference.html").read_text("utf-8").lower())
        site = publish(settings, store, now=at + timedelta(minutes=2))
        second = ((site / f"changes/{committed[0]}.html").exists(),
                  "ZZ-RACING scheduled" in (site / "feed.atom").read_text("utf-8"),
                  "zz-racing" in (site / "reference.html").read_text("utf-8").lower())
    finally:
        other.close()
    assert first == (False, False, False)
    assert second == (True, True, True)


def test_only_sha256_texts_are_cited_as_documents() -> None:
    """The documents a site copies are named by stored text (a change's before and after,
    its interval's, a source's last): only a sha256 in lower-case hex is one, never a name
    a page would link to or the site would look for elsewhere."""
    good = hashlib.sha256(b"document").hexdigest()
    change = StoredChange(
        id=1, run_id=1, detected_at=stamp(NOW), jurisdiction="ca", substance="ketamine",
        source_id="ca-cdsa", kind="amended", summary="", before=None, after=None,
        effective_date=None, before_sha256=good, after_sha256=None, details={})
    snap = reports.pages.Snapshot(
        intervals=(), changes=(change,), pending=(), states={}, failed_mail=(),
        heartbeat=None, jurisdictions=(), documents={}, watched=(), all_entries=False)
    for bad in ["g" * 64, good.upper(), good[:63], good + "0", "../" + good[3:]]:
        cited = dataclasses.replace(change, after_sha256=bad)
        assert reports.site.referenced_documents(
            dataclasses.replace(snap, changes=(cited,))) == {good}, bad
