"""Publishing after a run costs what changed: a weekly report whose inputs did not change is
linked from the previous site (same inode), not rebuilt; one that did is rebuilt; and every
weekly file of an incremental publish is byte-identical to what a full rebuild makes.

A real Store with four months of daily checks (watch = "all"), records with dated facts
that fall in many weeks' ninety days of "coming up", then a run with one change."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import html as lxml_html

import reports.entries
import reports.site
from reports.site import publish
from scheduler.config import Settings
from scrapers.clock import stamp
from scrapers.records import StatusRecord
from scrapers.store import Store
from tests.support.site_data import archive, fetch, make_settings, record, state

START = datetime(2026, 7, 6, 6, 0, tzinfo=UTC)  # a Monday (2026-W28)
DAYS = 120
LAST = START + timedelta(days=DAYS - 1)
PUBLISHED = LAST + timedelta(hours=2)
RUN = LAST + timedelta(days=1)  # the one-change run, the next morning
AFTER = RUN + timedelta(hours=1)
SOURCES = ("ca-cdsa", "us-ecfr-1308")


def _records(sha: dict[str, str], at: datetime) -> list[StatusRecord]:
    """Substances whose records hold dates spread over the history (so most weeks list some
    in their "coming up")."""
    found = []
    for i in range(12):
        day = (START + timedelta(days=10 * i + 20)).date().isoformat()
        source = SOURCES[i % 2]
        found.append(record(source, f"drug-{i}", sha[source], at,
                            schedule="I" if source == "ca-cdsa" else "II",
                            dates=(("comes into force", day),)))
    found.append(record("us-ecfr-1308", "ketamine", sha["us-ecfr-1308"], at,
                        schedule="III"))
    return found


def build(tmp_path: Path) -> tuple[Store, dict[str, StatusRecord]]:
    store = Store(tmp_path / "data")
    with store.transaction(started_at=START, jurisdictions=["ca", "us"]) as w:
        sha = {sid: archive(store, w, sid, "v1", START) for sid in SOURCES}
        records = _records(sha, START)
        w.open_intervals(records, at=START)
        for sid in SOURCES:
            fetch(w, sid, START, sha=sha[sid])
            w.save_source_state(state(sid, health="healthy", at=START, sha=sha[sid]))
    for day in range(1, DAYS):
        at = START + timedelta(days=day)
        with store.transaction(started_at=at, jurisdictions=["ca", "us"]) as w:
            for sid in SOURCES:
                if day % 17 == 0 and sid == "ca-cdsa":
                    fetch(w, sid, at, outcome="failed", error="HTTP 503")
                    w.save_source_state(dataclasses.replace(
                        state(sid, health="source_failed", at=at, sha=sha[sid],
                              failing_since=stamp(at), error="HTTP 503", failures=1),
                        last_healthy_at=stamp(at - timedelta(days=1))))
                else:
                    fetch(w, sid, at, outcome="not_modified")
                    w.save_source_state(state(sid, health="healthy", at=at, sha=sha[sid]))
    return store, {r.substance: r for r in records}


def one_change_run(store: Store, before: StatusRecord) -> None:
    """The next day's run: both sources checked, one record moved to another schedule."""
    latest = store.source_states()
    with store.transaction(started_at=RUN, jurisdictions=["ca", "us"]) as w:
        sha = archive(store, w, before.source_id, "v2", RUN)
        after = dataclasses.replace(before, schedule="V", control_level="C5",
                                    document_sha256=sha)
        w.close_intervals(before.source_id, [before.substance], at=RUN, confirmed_at=None,
                          confirmed_sha256=None)
        w.open_interval(after, at=RUN)
        w.add_change(detected_at=RUN, jurisdiction=after.jurisdiction,
                     substance=after.substance, source_id=after.source_id, kind="moved",
                     summary=f"{after.substance} moved to Schedule V", before=before.as_dict(),
                     after=after.as_dict(), effective_date=None,
                     before_sha256=before.document_sha256, after_sha256=sha,
                     details={"fields": ["schedule", "control_level"]})
        for sid in SOURCES:
            if sid != before.source_id:
                fetch(w, sid, RUN, outcome="not_modified")
                w.save_source_state(state(sid, health="healthy", at=RUN,
                                          sha=latest[sid].last_document_sha256))
            else:
                fetch(w, sid, RUN, sha=sha)
                w.save_source_state(state(sid, health="healthy", at=RUN, sha=sha))


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Store, dict[str, StatusRecord], Settings]]:
    store, records = build(tmp_path)
    settings = dataclasses.replace(make_settings(tmp_path, watch="all", timezone="UTC"),
                                   site_dir=tmp_path / "site")
    yield store, records, settings
    store.close()


def weekly_files(site: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((site / "weekly").glob("*.html"))}


def inodes(site: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (site / "weekly").glob("*.html")}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates rendered, in order (a spy on the site's renderer)."""
    made: list[str] = []
    real = reports.site.render_into

    def spy(env, template, context, out):  # type: ignore[no-untyped-def]
        made.append(f"{template}:{context.get('week', '')}")
        return real(env, template, context, out)

    monkeypatch.setattr(reports.site, "render_into", spy)
    return made


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


def site_files(site: Path) -> dict[str, bytes]:
    """Every file of a site but its manifest and the feed (whose id is made from the site's
    folder, which differs between the two sites compared)."""
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*"))
            if p.is_file() and p.name not in (reports.site.SITE_MARKER, "feed.atom")}


def assert_same_site(site: Path, full: Path) -> None:
    incremental, rebuilt = site_files(site), site_files(full)
    assert incremental.keys() == rebuilt.keys()
    different = [name for name in incremental if incremental[name] != rebuilt[name]]
    assert different == []


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
