"""Publishing after a run costs what changed: a weekly report whose inputs did not change is
linked from the previous site (same inode), not rebuilt; one that did is rebuilt; and every
weekly file of an incremental publish is byte-identical to what a full rebuild makes.

A real Store with four months of daily checks (watch = "all"), records with dated facts
that fall in many weeks' ninety days of "coming up", then a run with one change."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

import reports.entries
import reports.history_page
import reports.site
from reports.site import publish
from scheduler.config import Settings
from scrapers.clock import stamp
from scrapers.records import StatusRecord
from scrapers.store import Store, StoredChange
from tests.support.history_store import (
    AFTER,
    PUBLISHED,
    RUN,
    SOURCES,
    START,
    build,
    history_settings,
    one_change_run,
)
from tests.support.site_compare import assert_same_site, site_files
from tests.support.site_data import NOW, archive, build_store, fetch, make_settings, record, state
from tests.support.site_spies import templates_rendered


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Store, dict[str, StatusRecord], Settings]]:
    store, records = build(tmp_path)
    yield store, records, history_settings(tmp_path)
    store.close()


def weekly_files(site: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((site / "weekly").glob("*.html"))}


def inodes(site: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (site / "weekly").glob("*.html")}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates rendered, in order (a spy on the site's renderer)."""
    return templates_rendered(monkeypatch, with_week=True)


def test_an_incremental_publish_matches_a_full_rebuild_byte_for_byte(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    store, records, settings = history
    publish(settings, store, now=PUBLISHED)
    # drug-3 has no change before: the run gives it a history page, so every week whose
    # "coming up" lists it now links its name — those weeks must be rebuilt.
    one_change_run(store, records["drug-3"])
    site = publish(settings, store, now=AFTER)
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=AFTER)
    incremental, rebuilt = weekly_files(site), weekly_files(full)
    assert len(incremental) > 15
    assert incremental.keys() == rebuilt.keys()
    for name in incremental:
        assert incremental[name] == rebuilt[name], name
    linked = [name for name, page in incremental.items() if b"history/drug-3" in page]
    assert linked, "the new history page is linked from the weeks that list drug-3"


def test_after_one_change_only_the_weekly_pages_that_change_are_rebuilt(
        history: tuple[Store, dict[str, StatusRecord], Settings],
        rendered: list[str]) -> None:
    store, records, settings = history
    site = publish(settings, store, now=PUBLISHED)
    before, pages_before = inodes(site), weekly_files(site)
    # ketamine is watched (it has a history page already) and its record holds no date:
    # the change shows only in the running week.
    one_change_run(store, records["ketamine"])
    rendered.clear()
    publish(settings, store, now=AFTER)
    after, pages_after = inodes(site), weekly_files(site)
    running = f"{RUN.isocalendar()[0]}-W{RUN.isocalendar()[1]:02d}.html"
    changed = {name for name in after if after[name] != before.get(name)}
    assert running in changed
    assert pages_after[running] != pages_before[running]
    assert b"moved to Schedule V" in pages_after[running]
    # Every other past week is the previous site's file, linked, not rendered again.
    assert changed <= {running, "index.html"}
    weekly_rendered = [name for name in rendered if name.startswith("weekly.html:")]
    # (That the linked pages are right is test_an_incremental_publish_matches_a_full_rebuild.)
    assert weekly_rendered == [f"weekly.html:{running.removesuffix('.html')}"]


def test_a_publish_with_nothing_new_rebuilds_no_past_week(
        history: tuple[Store, dict[str, StatusRecord], Settings],
        rendered: list[str]) -> None:
    store, _, settings = history
    site = publish(settings, store, now=PUBLISHED)
    before = inodes(site)
    rendered.clear()
    publish(settings, store, now=PUBLISHED + timedelta(seconds=30))
    after = inodes(site)
    # The running week's "time since" is in minutes: 30 seconds later it reads the same.
    assert [n for n in rendered if n.startswith("weekly.html:")] == []
    assert after == before


def test_coming_up_lists_legal_dates_not_the_dates_a_document_describes_itself_by(
        tmp_path: Path) -> None:
    """"Coming into force or due" is the law's calendar: a consolidation's or a register's
    own dates (consolidated, registered, published, last amended) are evidence dates and
    are never listed as coming up, even when they fall after a week's end."""
    store = Store(tmp_path / "data")
    try:
        with store.transaction(started_at=START, jurisdictions=["ca"]) as w:
            sha = archive(store, w, "ca-cdsa", "v1", START)
            due = (START + timedelta(days=30)).date().isoformat()
            w.open_intervals([record("ca-cdsa", "drug-a", sha, START, schedule="I", dates=(
                ("consolidated", due), ("registered", due), ("last amended", due),
                ("comes into force", due), ("comment deadline", due)))], at=START)
            fetch(w, "ca-cdsa", START, sha=sha)
        settings = dataclasses.replace(make_settings(tmp_path, watch="all", timezone="UTC"),
                                       site_dir=tmp_path / "site")
        context = reports.site.weekly_context(settings, store, "2026-W28", now=START)
    finally:
        store.close()
    assert sorted(u["label"] for u in context["upcoming"]) == ["comes into force",
                                                              "comment deadline"]


def test_every_page_of_an_incremental_publish_matches_a_full_rebuild(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    """Not only the weekly reports: the history pages, the exports, the change pages, the
    index and the reference of an incremental publish are those of a full rebuild."""
    store, records, settings = history
    publish(settings, store, now=PUBLISHED)
    one_change_run(store, records["drug-3"])
    site = publish(settings, store, now=AFTER)
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=AFTER)
    assert (site / "history" / "drug-3.html").is_file()
    assert_same_site(site, full)


def test_a_record_rewritten_in_place_is_republished_wherever_it_is_shown(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    """A record rewritten in place (a replaced instrument id: same interval, no change row,
    no new check) changes the pages and exports that show it: none is linked unchanged."""
    store, records, settings = history
    site = publish(settings, store, now=PUBLISHED)
    before = site_files(site)
    rewritten = dataclasses.replace(records["ketamine"], instrument="21 CFR 1308 (rev. 2)")
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.replace_open_record(rewritten)
    site = publish(settings, store, now=PUBLISHED)
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store,
                   now=PUBLISHED)
    assert_same_site(site, full)
    after = site_files(site)
    for name in ("history/ketamine.html", "status.csv", "status.json"):
        assert b"rev. 2" in after[name], name
        assert after[name] != before[name], name


# drug-5 comes into force on a Monday (2026-09-14), the first day of some weeks' ninety
# days; drug-9 late in the history (2026-10-24). Moved to Sunday 2026-10-11, drug-9's date
# is the ninetieth day after the end of 2026-W28 (Monday 2026-07-13): the last day of a
# window that did not hold its old date.
@pytest.mark.parametrize(("substance", "moved_to"), [
    ("drug-5", None), ("drug-9", None), ("drug-9", "2026-10-11")])
def test_a_past_week_is_remade_when_a_fact_in_its_ninety_days_changes_and_only_then(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        rendered: list[str], substance: str, moved_to: str | None) -> None:
    """A record whose coming into force falls in the "coming up" of some past weeks,
    rewritten in place (its instrument, or its date moved): exactly the weeks whose ninety
    days after their end hold that date (or the date it had) are made again, the first and
    the ninetieth day included; every other week is the previous site's file."""
    from reports.weeks import week_bounds
    from scrapers.clock import reader_zone_named

    store, records, settings = history
    site = publish(settings, store, now=PUBLISHED)
    before = inodes(site)
    target = records[substance]
    dues = {datetime.fromisoformat(dict(target.dates)["comes into force"]).date()}
    if moved_to is None:
        rewritten = dataclasses.replace(target, instrument="21 CFR 1308 (rev. 2)")
    else:
        rewritten = dataclasses.replace(target, dates=(("comes into force", moved_to),))
        dues.add(datetime.fromisoformat(moved_to).date())
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.replace_open_record(rewritten)
    rendered.clear()
    site = publish(settings, store, now=PUBLISHED)
    utc = reader_zone_named("UTC")
    expected = set()
    for name in before.keys() - {"index.html"}:
        end = week_bounds(name.removesuffix(".html"), utc)[1].date()
        if any(end <= due <= end + timedelta(days=90) for due in dues):
            expected.add(name.removesuffix(".html"))
    if moved_to is not None:
        assert "2026-W28" in expected  # the edge this case is for
    remade = {n.split(":", 1)[1] for n in rendered if n.startswith("weekly.html:")}
    assert remade == expected and 3 <= len(expected) < len(before) - 3
    assert {n for n in inodes(site) if inodes(site)[n] != before[n]} == \
        {f"{week}.html" for week in expected}
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store,
                   now=PUBLISHED)
    assert_same_site(site, full)


def test_a_day_that_changes_nothing_reuses_the_history_pages_and_moves_the_confirmation(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    """Every healthy check confirms every open interval again. The pages show that once per
    source (the reference's source health, the matrix), the exports on every row; a history
    page's open row points to its source's health instead of repeating the time, so a day
    that changes nothing leaves the history pages as they are (linked, not re-rendered)."""
    store, _, settings = history
    site = publish(settings, store, now=PUBLISHED)
    history_pages = sorted((site / "history").glob("*.html"))
    assert len(history_pages) > 1
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in history_pages}
    latest = {sid: store.current_records(sid)[0].document_sha256 for sid in SOURCES}
    with store.transaction(started_at=RUN, jurisdictions=["ca", "us"]) as w:
        for sid in SOURCES:
            fetch(w, sid, RUN, outcome="not_modified")
            w.save_source_state(state(sid, health="healthy", at=RUN, sha=latest[sid]))
    site = publish(settings, store, now=AFTER)
    after = {p.name: (p.stat().st_ino, p.read_bytes()) for p in (site / "history").glob("*.html")}
    assert after == before
    page = (site / "history" / "ketamine.html").read_text(encoding="utf-8")
    assert "at every healthy check of the source" in page
    assert 'href="../reference.html#j-us-sources"' in page
    reference = (site / "reference.html").read_text(encoding="utf-8")
    assert 'id="j-us-sources"' in reference
    assert f"checked {RUN.strftime('%Y-%m-%d %H:%M UTC')}" in reference
    rows = json.loads((site / "status.json").read_text(encoding="utf-8"))
    assert {row["retrieved_at"] for row in rows} == {stamp(RUN)}
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=AFTER)
    assert_same_site(site, full)


def test_a_closed_period_keeps_its_own_last_confirmation_on_the_history_page(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    """A closed period was last confirmed once, before it ended: its row shows that time;
    only the open row defers to its source's latest check."""
    store, records, settings = history
    one_change_run(store, records["ketamine"])
    site = publish(settings, store, now=AFTER)
    page = lxml_html.fromstring((site / "history" / "ketamine.html").read_bytes())
    rows = page.xpath("//table[@class='timeline']/tbody/tr")
    closed, current = rows[0], rows[-1]
    assert current.get("class") == "current"
    (ended,) = [iv for iv in store.history("ketamine") if iv.valid_to is not None]
    confirmed = datetime.fromisoformat(ended.last_confirmed_at).strftime("%Y-%m-%d %H:%M UTC")
    assert confirmed in closed.xpath("./td")[6].text_content()
    assert "at every healthy check" in current.xpath("./td")[6].text_content()


def test_a_history_page_remakes_only_the_rows_of_the_chunks_that_changed(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A history page that changes is written from its previous version's chunks of rows
    whose inputs did not change: a new document is the latest evidence of the open period
    alone, so the chunks of the periods before it, the changes and the scheduling history
    are copied, their rows never made; a move closes the open period and adds a period and
    a change, which remakes only the chunks holding them. Byte for byte a full rebuild."""
    store, records, settings = history
    monkeypatch.setattr(reports.history_page, "HISTORY_CHUNK", 2)
    moved = records["drug-1"]  # in the eCFR, as ketamine
    for day, schedule in enumerate(("III", "IV", "II", "IV", "III"), start=1):
        moved = one_change_run(store, moved, at=RUN + timedelta(days=day), schedule=schedule,
                               control_level=f"C{len(schedule) + 1}", document=f"v{day + 1}")
    periods = store.history("drug-1")
    assert len(periods) == 6 and len(store.changes()) == 5

    timeline: list[int] = []
    listed: list[int] = []
    histories: list[str] = []
    original_chunk = reports.history_page._timeline_chunk

    def counting_chunk(code: str, source_id: str, chunk: Any, snap: Any) -> Any:
        made = original_chunk(code, source_id, chunk, snap)
        rows = made["rows"]

        def counted() -> Any:
            timeline.extend(iv.id for iv in chunk if iv.record.substance == "drug-1")
            return rows()
        return {**made, "rows": counted}

    original_summaries = reports.history_page._change_summaries

    def counting_summaries(changes: Any, snap: Any) -> Any:
        listed.extend(c.id for c in changes if c.substance == "drug-1")
        return original_summaries(changes, snap)

    original_scheduling = reports.site._scheduling

    def counting_scheduling(snap: Any, name: str, rows: Any) -> Any:
        histories.append(name)
        return original_scheduling(snap, name, rows)

    monkeypatch.setattr(reports.history_page, "_timeline_chunk", counting_chunk)
    monkeypatch.setattr(reports.history_page, "_change_summaries", counting_summaries)
    monkeypatch.setattr(reports.site, "_scheduling", counting_scheduling)
    cited = periods[1].last_document_sha256
    whole = store.document_path(cited).read_bytes()
    store.document_path(cited).write_bytes(b"damaged")
    later = RUN + timedelta(days=10)
    site = publish(settings, store, now=later)
    assert sorted(timeline) == sorted(iv.id for iv in periods) and len(listed) == 5
    page = lxml_html.fromstring((site / "history" / "drug-1.html").read_bytes())
    shown = [a.get("href") for a in page.xpath("//ul[@class='changes']/li/a")]
    assert shown == [f"../changes/{c.id}.html" for c in reversed(store.changes())]
    assert len(page.xpath("//table[@class='timeline']/tbody/tr")) == 6

    # A new document moves another substance: drug-1's open period has new evidence.
    timeline.clear(), listed.clear(), histories.clear()
    one_change_run(store, records["drug-3"], at=later, document="v8")
    assert store.history("drug-1")[-1].last_document_sha256 != periods[-1].last_document_sha256
    site = publish(settings, store, now=later + timedelta(hours=1))
    assert timeline == [iv.id for iv in periods[4:]]  # the last chunk: two periods
    assert listed == [] and "drug-1" not in histories and "drug-3" in histories
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "a"),
                                   store, now=later + timedelta(hours=1)))

    # drug-1 moves again: the open period closes (its chunk), a period opens (a new chunk),
    # its sixth change joins the fifth in theirs, and its scheduling history is made.
    timeline.clear(), listed.clear(), histories.clear()
    moved = one_change_run(store, moved, at=later + timedelta(days=1), schedule="V",
                           document="v9")
    site = publish(settings, store, now=later + timedelta(days=1, hours=1))
    now_periods = store.history("drug-1")
    assert timeline == [iv.id for iv in now_periods[4:]]
    mine = [c.id for c in store.changes() if c.substance == "drug-1"]
    assert listed == mine[:-3:-1] and set(histories) == {"drug-1"}  # page and reference
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "b"),
                                   store, now=later + timedelta(days=1, hours=1)))

    # The archived copy of an early period's evidence, damaged until now, is whole again:
    # a link in that period's chunk, which is made again though the period did not change.
    timeline.clear()
    assert f"documents/{cited}" not in (site / "history" / "drug-1.html").read_text("utf-8")
    store.document_path(cited).write_bytes(whole)
    site = publish(settings, store, now=later + timedelta(days=2))
    assert timeline == [iv.id for iv in now_periods[:2]]
    assert f"documents/{cited}" in (site / "history" / "drug-1.html").read_text("utf-8")
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "c"),
                                   store, now=later + timedelta(days=2)))


def test_the_reference_remakes_only_the_entries_whose_inputs_changed(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference is remade on every publish, its entries copied from the previous one
    where nothing they show changed. A new document is the latest evidence of every entry
    of its source, a recovered source no longer says it is failing: those are made again;
    a day that changes nothing copies them all; a source that starts failing says so in each of its entries, and only
    those are made again."""
    store, records, settings = history
    made: list[str] = []
    original = reports.entries.entry_html

    def counting(e: dict[str, object], *args: object) -> str:
        made.append(e["record"]["jurisdiction"])  # type: ignore[index]
        return original(e, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reports.entries, "entry_html", counting)
    publish(settings, store, now=PUBLISHED)
    assert sorted(set(made)) == ["ca", "us"]
    one_change_run(store, records["drug-3"])
    made.clear()
    site = publish(settings, store, now=AFTER)
    # Canada's source recovered (it failed on the last day) and the US one has a new
    # document: every entry shows something new.
    assert len(made) == len(store.current_intervals())
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "a"),
                                   store, now=AFTER))

    quiet = RUN + timedelta(days=1)
    latest = store.source_states()
    with store.transaction(started_at=quiet, jurisdictions=["ca", "us"]) as w:
        for sid in SOURCES:
            fetch(w, sid, quiet, outcome="not_modified")
            w.save_source_state(dataclasses.replace(
                latest[sid], last_attempt_at=stamp(quiet), last_healthy_at=stamp(quiet)))
    made.clear()
    site = publish(settings, store, now=quiet)
    assert made == []
    assert f"checked {quiet.strftime('%Y-%m-%d %H:%M UTC')}" in \
        (site / "reference.html").read_text(encoding="utf-8")

    failing = quiet + timedelta(days=1)
    with store.transaction(started_at=failing, jurisdictions=["ca"]) as w:
        fetch(w, "ca-cdsa", failing, outcome="failed", error="HTTP 503")
        w.save_source_state(dataclasses.replace(
            latest["ca-cdsa"], health="source_failed", failing_since=stamp(failing),
            consecutive_failures=1, last_error="HTTP 503", last_attempt_at=stamp(failing),
            last_healthy_at=stamp(quiet)))
    made.clear()
    site = publish(settings, store, now=failing)
    current_ca = [iv for iv in store.current_intervals() if iv.record.jurisdiction == "ca"]
    assert sorted(made) == ["ca"] * len(current_ca)
    reference = (site / "reference.html").read_text(encoding="utf-8")
    assert reference.count("The status below is the last healthy one.") == len(current_ca)
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "b"),
                                   store, now=failing))


def test_a_new_document_remakes_the_entries_it_confirms_not_their_scheduling_histories(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each substance's block in the reference is two parts: its entries, which show the
    source's latest document, and its scheduling history, which does not (it grows with
    the history's length). A run whose new document confirms every other entry as it was
    remakes the entries and the one history that changed, and copies the other histories
    from the previous reference, byte for byte what a full rebuild makes."""
    store, records, settings = history
    made: list[str] = []
    original = reports.site._scheduling_of

    def counting(snap: Any, name: str) -> Any:
        made.append(name)
        return original(snap, name)

    monkeypatch.setattr(reports.site, "_scheduling_of", counting)
    sections = '<section class="scheduling-history">'
    shown = (publish(settings, store, now=PUBLISHED) / "reference.html").read_text(
        encoding="utf-8").count(sections)
    assert made == ["ketamine"] and shown >= 1  # the one with a history page (watched)
    moved = records["drug-3"]

    def ketamine_here() -> Any:
        (found,) = [iv for iv in store.current_intervals()
                    if iv.record.source_id == moved.source_id
                    and iv.record.substance == "ketamine"]
        return found

    before = ketamine_here()
    one_change_run(store, moved)
    assert ketamine_here().last_document_sha256 != before.last_document_sha256
    made.clear()
    site = publish(settings, store, now=AFTER)
    assert made == ["drug-3"]  # its first change gives it a history page
    # Ketamine's histories copied, drug-3's made: each shown.
    assert (site / "reference.html").read_text(encoding="utf-8").count(sections) == shown + 1
    assert_same_site(site, publish(dataclasses.replace(settings, site_dir=tmp_path / "full"),
                                   store, now=AFTER))


def test_every_module_that_makes_pages_is_in_the_sites_version() -> None:
    """A page is reused while its fingerprint holds, and the fingerprint holds the code that
    makes pages: every module of reports/ the site imports, directly or not, is in it (a
    changed entries.py must not leave yesterday's markup in the reference)."""
    import ast

    top = Path(reports.site.__file__).resolve().parent.parent
    seen: set[str] = set()
    todo = ["reports/site.py"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((top / name).read_text(encoding="utf-8"))):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for module in modules:
                path = module.replace(".", "/") + ".py"
                if module.startswith("reports.") and (top / path).is_file():
                    todo.append(path)
    assert seen - set(reports.site._CODE) == set()


def test_an_interval_is_digested_by_its_stored_text_or_else_by_every_field(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    """A page's fingerprint digests each interval it shows: read from the store, by the
    record's stored text (the same text decodes to the same record); made otherwise (a
    backfill's prior), by every field of the record."""
    store, _, settings = history
    snap = reports.site.read_snapshot(settings, store)
    interval = next(i for i in snap.intervals if i.record.substance == "ketamine")
    with store.db.connect() as conn:
        text = conn.rows("SELECT record FROM status WHERE id = :id", {"id": interval.id})[0]
    assert interval.record_digest == hashlib.sha256(text["record"].encode()).hexdigest()
    unstored = dataclasses.replace(interval, record_digest="")
    other = dataclasses.replace(unstored, record=dataclasses.replace(
        interval.record, listed_as="Ketamine, as listed in another version"))

    def key(of: Any) -> str:  # a snapshot keeps an interval's key by id: a fresh one each
        return reports.site.read_snapshot(settings, store).interval_key(of)

    assert key(unstored) != key(other)
    assert key(unstored) != key(interval)  # digested another way, never mistaken for it
    assert key(interval) == key(interval)


def test_a_change_is_digested_by_its_stored_row_or_else_by_every_field(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    """A page's fingerprint digests each change it shows: read for the site, by its row as
    stored (every column, its JSON as text: a rewrite of the text is a new key even where
    it decodes to the same); made otherwise, by every field. Either way the change is the
    one the store holds, every field filled in."""
    store, records, settings = history
    one_change_run(store, records["drug-3"])
    [change] = reports.site.read_snapshot(settings, store).changes
    # Every field there (the JSON ones decoded when first read: test_change_carry.py).
    assert all(hasattr(change, f.name) for f in dataclasses.fields(StoredChange))
    assert {f.name for f in dataclasses.fields(StoredChange)} <= set(change.__dict__)
    [plain] = store.changes()  # not read for the site: no digest
    assert plain.row_digest == "" and dataclasses.replace(change, row_digest="") == plain

    def key(of: Any) -> str:  # a snapshot keeps a change's key by id: a fresh one each
        return reports.site.read_snapshot(settings, store).change_key(of)

    assert key(change) == change.row_digest and len(change.row_digest) == 64
    assert key(plain) != key(change)  # digested another way, never mistaken for it
    assert key(plain) != key(dataclasses.replace(plain, summary="another summary"))
    with store.db.connect() as conn:
        conn.update("changes", {"details": json.dumps(change.details, indent=1)}, "id = :id",
                    {"id": change.id})
    [rewritten] = reports.site.read_snapshot(settings, store).changes
    assert rewritten.details == change.details
    assert rewritten.row_digest != change.row_digest


def test_the_index_remakes_only_the_chunks_of_its_table_whose_rows_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index is remade on every publish (it shows when), its all-records table copied
    chunk by chunk from the previous one where no row of the chunk shows anything new: a
    quiet day copies every chunk, a record rewritten in place remakes the one chunk that
    holds it, a source that starts failing remakes the chunks of its rows. Each step is
    byte for byte what a full rebuild makes."""
    store = build_store(tmp_path, extra_substances=300)
    settings = dataclasses.replace(make_settings(tmp_path, watch="all"),
                                   site_dir=tmp_path / "site")
    seen: list[reports.site.Parts] = []

    class Counted(reports.site.Parts):
        def __init__(self, salt: str, previous: Path | None = None) -> None:
            super().__init__(salt, previous)
            if salt.endswith("\0index.html"):
                seen.append(self)

    monkeypatch.setattr(reports.site, "Parts", Counted)

    def index_publish(now: datetime, folder: str = "site") -> tuple[int, int, bytes]:
        seen.clear()
        site = publish(dataclasses.replace(settings, site_dir=tmp_path / folder), store,
                       now=now)
        (parts,) = seen
        return parts.made, parts.reused, (site / "index.html").read_bytes()

    made, reused, first = index_publish(NOW)
    assert reused == 0 and made > 5  # ~1 chunk in RECORD_CHUNK rows
    chunks = made
    assert first.count(b"<!--part:") == chunks

    later = NOW + timedelta(hours=1)
    made, reused, page = index_publish(later)
    assert (made, reused) == (0, chunks)
    assert page == index_publish(later, "full-quiet")[2]

    # A new document confirms every Australian status as it was: the reference shows the
    # new evidence on every entry, the index's rows show nothing new.
    newer = later + timedelta(minutes=30)
    with store.transaction(started_at=newer, jurisdictions=["au"]) as w:
        sha = archive(store, w, "au-poisons-standard", "v2 au", newer)
        fetch(w, "au-poisons-standard", newer, sha=sha)
        w.save_source_state(state("au-poisons-standard", health="healthy", at=newer, sha=sha))
    made, reused, page = index_publish(newer)
    assert (made, reused) == (0, chunks)
    assert page == index_publish(newer, "full-new-document")[2]

    au = {r.substance: r for r in store.current_records("au-poisons-standard")}
    with store.transaction(started_at=newer, jurisdictions=["au"]) as w:
        w.replace_open_record(dataclasses.replace(au["drug-100"], provision="Schedule 4 #X"))
    made, reused, page = index_publish(newer)
    assert (made, reused) == (1, chunks - 1)
    assert b"Schedule 4 #X" in page
    assert page == index_publish(newer, "full-rewritten")[2]

    failing = newer + timedelta(hours=1)
    latest = store.source_states()["au-poisons-standard"]
    with store.transaction(started_at=failing, jurisdictions=["au"]) as w:
        fetch(w, "au-poisons-standard", failing, outcome="failed", error="HTTP 503")
        w.save_source_state(dataclasses.replace(
            latest, health="source_failed", failing_since=stamp(failing),
            consecutive_failures=1, last_error="HTTP 503", last_attempt_at=stamp(failing)))
    made, reused, page = index_publish(failing)
    tree = lxml_html.fromstring(page)
    rows = tree.xpath("//table[@id='records']/tbody/tr")
    au_rows = [r for r in rows if "au-poisons-standard" in r.xpath("./td[8]")[0].text_content()]
    assert all("failing" in r.xpath("./td[8]")[0].text_content() for r in au_rows)
    # Nearly every chunk holds an Australian row (300 of its 312): those are made again.
    assert made + reused == chunks and made > chunks // 2
    assert page == index_publish(failing, "full-failing")[2]


def test_a_change_rewritten_in_the_store_is_republished_wherever_it_is_shown(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    """A change's fingerprint is a digest of every stored field (made once per publish and
    shared by its page, its substance's history page and changes.csv): a change row that
    differs (here its summary, rewritten by hand) remakes those three and nothing else that
    does not show it; the site is what a full rebuild makes."""
    from reports.pages import history_path

    store, records, settings = history
    one_change_run(store, records["ketamine"])
    site = publish(settings, store, now=AFTER)
    before = site_files(site)
    [change] = store.changes()
    with store.db.connect() as conn:
        conn.update("changes", {"summary": change.summary + " (corrected)"}, "id = :id",
                    {"id": change.id})
    site = publish(settings, store, now=AFTER)
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=AFTER)
    assert_same_site(site, full)
    after = site_files(site)
    assert change.substance is not None
    for name in (f"changes/{change.id}.html", history_path(change.substance), "changes.csv"):
        assert b"(corrected)" in after[name], name
        assert after[name] != before[name], name
    # Pages that do not show it are kept: every other history page, every weekly report
    # but the one of its week.
    kept = [name for name in before if name.startswith("history/")
            and name != history_path(change.substance)]
    assert kept and all(after[name] == before[name] for name in kept)


def test_a_pending_item_rewritten_in_the_store_is_republished_in_every_week_it_is_open(
        tmp_path: Path) -> None:
    """A weekly report's fingerprint holds each open pending item by a digest of its row
    and view (made once per publish, not written out in every week): a pending row that
    differs (here its description, rewritten by hand) remakes every weekly report that
    lists it and each is what a full rebuild makes."""
    store = build_store(tmp_path)
    settings = make_settings(tmp_path)
    site = publish(settings, store, now=NOW)
    before = site_files(site)
    [row] = [r for r in store.pending_items(open_only=False) if r.item.source_id == "ca-cdsa"]
    shown = [name for name, page in before.items()
             if name.startswith("weekly/2") and b"Amendment not yet in force" in page]
    assert shown  # the fixture's item is open in the weeks tracked
    [stored] = store.db.rows("SELECT item FROM pending WHERE id = :id", {"id": row.id})
    item = json.loads(stored["item"])
    item["description"] = item["description"].replace("not yet in force", "not yet in force, "
                                                      "corrected")
    with store.db.connect() as conn:
        conn.update("pending", {"item": json.dumps(item)}, "id = :id", {"id": row.id})
    site = publish(settings, store, now=NOW)
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=NOW)
    assert_same_site(site, full)
    after = site_files(site)
    for name in shown:
        assert b"not yet in force, corrected" in after[name], name
        assert after[name] != before[name], name
