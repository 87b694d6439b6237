"""The published site: status matrix, compliance reference, change pages, weekly reports,
substance histories, the Atom feed and table exports, under ``settings.site_path``.

``publish`` builds every page into a folder beside the site and swaps it in (rename the old
site away, rename the new one in), so a reader never sees a half-written site and a failed
render leaves the previous site in place. Pages are made one at a time (context, render,
write, drop), so memory holds one page, not the site. A page whose inputs (data, templates,
code) did not change since the last publish is not rendered again — its fingerprint is a
digest of what it is made from (the stored rows it shows), worked out without building it;
archived documents are copied once, checked against their sha256, and then linked from one
site to the next.

The site swapped out is kept beside the live one as the *spare* (``reports.site_folder``),
and the next publish builds in it: a page the spare holds with the right fingerprint stays as
it is, one the live site holds with it is hard-linked from there, and only the rest is
written. So a publish touches the files that changed since the site before last, not every
file of the site (linking each of ten or twenty years' pages into a new folder, and deleting
the old site, grew with the history). A page in the building folder may be a hard link to
the live site's: it is always replaced, never written into.

With ``watch = "all"`` only the watched substances and those with a change or a pending
item get a history page (``Snapshot.history_substances``); every other page links a name to
its history only when that page exists (``pages.history_href``).

The pure work (what each page shows) is in ``reports.pages``; this module reads the store,
and writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import io
import os
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from reports import (
    change_carry,
    check_tally,
    digest_carry,
    document_names,
    exports,
    feed,
    history_page,
    pages,
    reference,
    status_exports,
    week_carry,
    weekly,
)
from reports import scheduling_history as scheduling
from reports.page_worker import make_shared
from reports.pages import (
    Snapshot,
    change_context,
    substance_slug,
)
from reports.parts import Parts
from reports.render import (
    TEMPLATES,
    environment,
    render_into,
    stylesheet,
    templates_digest,
    zone,
)
from reports.site_folder import (
    FORMAT,
    SITE_MARKER,
    Staging,
    atomic_write,
    check_site_folder,
    give_mode,
    link_or_copy,
    manifest_bytes,
    read_manifest,
    recover,
    remove_files,
    replace_file,
    staging_folder,
    swap_in,
    umask_mode,
)
from reports.weeks import parse_week, week_name
from scrapers.errors import LockedError, SchedwatchError, StoreError
from scrapers.store import is_sha256

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from reports.settings import Settings
    from scrapers.store import Store, StoredChange

__all__ = ["publish", "write_weekly", "weekly_context", "change_context", "site_pages",
           "substance_slug", "PublishError", "SITE_MARKER"]

#: How long a publish waits for another one (the scheduler's, a CLI weekly report) to finish.
LOCK_WAIT_SECONDS = 60.0
_CHUNK = 1 << 20
_WEEK_FILE = re.compile(r"(\d{4}-W\d{2})\.html")
_Row = TypeVar("_Row")
#: The modules whose code decides what a page looks like: a change to them re-renders.
_CODE = ("reports/pages.py", "reports/weekly.py", "reports/render.py", "reports/site.py",
         "reports/worddiff.py", "reports/diff.py", "reports/status_rows.py",
         "reports/exports.py", "reports/entries.py", "reports/feed.py", "reports/parts.py",
         "reports/scheduling_history.py", "reports/settings.py", "reports/reference.py",
         "reports/page_worker.py", "reports/status_exports.py", "reports/weeks.py",
         "reports/check_tally.py", "reports/kept.py", "reports/site_folder.py",
         "reports/week_carry.py", "reports/history_page.py", "reports/change_carry.py",
         "reports/sorted_lines.py", "reports/digest_carry.py",
         "reports/document_names.py",
         "scrapers/records.py", "scrapers/rows.py")


class PublishError(SchedwatchError):
    """The site could not be built (a template or data the pages did not expect). The
    previous site is untouched; the pipeline reports this as a warning, never a failed run."""


@dataclass(frozen=True)
class Page:
    """One file of the site: its path (site-relative, POSIX), what it is made from and how
    to write it. ``inputs`` is cheap (the stored rows the page shows, not its context): its
    ``repr`` goes into the page's fingerprint, and it must change whenever the page would.
    Nothing is built until ``write`` is called."""

    path: str
    inputs: Callable[[], Any] | None  # None: made on every publish, never reused
    write: Callable[[BinaryIO], object]
    #: Its fingerprint when known already (a weekly report's, ``reports.week_carry``):
    #: ``inputs`` is then not called.
    fingerprint: str | None = None

    def produce(self) -> bytes:
        buffer = io.BytesIO()
        self.write(buffer)
        return buffer.getvalue()


# --- public API ---------------------------------------------------------------------------

def publish(settings: Settings, store: Store, *, now: datetime | None = None) -> Path:
    """Regenerate the whole site (reusing unchanged pages) and swap it in atomically.
    Returns the site folder."""
    moment = _now(now)
    with _site_lock(store), _as_publish_error(), _collector_paused() as collector:
        return _publish_locked(settings, store, moment, collector)


def write_weekly(settings: Settings, store: Store, week: str | None = None, *,
                 now: datetime | None = None) -> Path:
    """Write ``weekly/<week>.html`` (default: the current ISO week in the configured zone)
    into the current site, atomically; publishes the site first when there is none yet.
    Returns the page's path."""
    return write_weekly_report(settings, store, week, now=now)[0]


def write_weekly_report(settings: Settings, store: Store, week: str | None = None, *,
                        now: datetime | None = None) -> tuple[Path, weekly.WeeklySummary]:
    """``write_weekly``, also returning the week's summary for the weekly email: the
    report is computed once, from one read of the store, for the page and the email."""
    moment = _now(now)
    reader_zone = zone(settings.scheduler.timezone)
    week = _resolve_week(week, moment, reader_zone)  # a bad week fails before any work
    site = settings.site_path
    with _site_lock(store), _as_publish_error():
        if not (site / SITE_MARKER).is_file():
            with _collector_paused() as collector:
                _publish_locked(settings, store, moment, collector)
        version = _version(settings)
        snap = read_snapshot(settings, store, version=version)
        index = weekly.week_index(snap, reader_zone)
        env = environment(settings.scheduler.timezone)
        existing = _existing_weeks(site)
        parts = weekly.week_parts(snap, index, week, reader_zone, moment)
        context = weekly.weekly_context_from(snap, index, week, reader_zone=reader_zone,
                                             now=moment, parts=parts)
        written = [
            _html(env, pages.weekly_href(week), "weekly.html", lambda: context,
                  lambda: weekly.week_inputs(snap, index, week, reader_zone=reader_zone,
                                             now=moment, parts=parts)),
            _weekly_index_page(env, set(index.weeks) | existing | {week}),
        ]
        manifest, file_mode = read_manifest(site)
        for page in written:
            target = site / page.path
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, page.produce())
            manifest[page.path] = _fingerprint(version, page)
        # Written under this umask: the site's mode holds only if it is the same.
        same_mode = file_mode if file_mode == umask_mode(0o666) else None
        atomic_write(site / SITE_MARKER, manifest_bytes(manifest, moment, same_mode))
    return site / pages.weekly_href(week), weekly.weekly_summary(context)


def weekly_context(settings: Settings, store: Store, week: str | None = None, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """The weekly report's data (for the weekly email): sources' checks and failures, the
    week's changes by jurisdiction, pending items, what comes into force within 90 days,
    undeliverable email. Every ``href`` is relative to the site root."""
    moment = _now(now)
    reader_zone = zone(settings.scheduler.timezone)
    week = _resolve_week(week, moment, reader_zone)
    snap = read_snapshot(settings, store)
    context = weekly.weekly_context_from(snap, weekly.week_index(snap, reader_zone), week,
                                        reader_zone=reader_zone, now=moment)
    context["href"] = pages.weekly_href(week)
    return context


# --- reading the store --------------------------------------------------------------------

def read_snapshot(settings: Settings, store: Store,
                  documents: Mapping[str, str] | None = None, *,
                  version: str | None = None, reuse: bool = True) -> Snapshot:
    """Everything the site shows, in a handful of queries (intervals make ten years of an
    unchanged status one row; the fetch log is read from where the last publish's tally of
    it stopped, ``reports.check_tally``). ``version``: the site's (``_version``), when the
    caller has it; ``reuse`` False: the whole fetch log counted again (a full rebuild)."""
    from jurisdictions.substances import build_watch_list

    reader_zone = zone(settings.scheduler.timezone)
    version = _version(settings) if version is None else version
    kept = check_tally.load(settings.data_dir, version, reader_zone) if reuse else None
    # One moment of the store: a run that commits while this reads must not leave the site
    # with its new change but not its new status (or the other way round).
    carried = digest_carry.load(settings.data_dir, version) if reuse else digest_carry.NONE_KEPT
    with store.snapshot():
        revisions = store.revisions()
        intervals, interval_digests = _read_digested(
            lambda known: store.history(digests=True, known=known), "record_digest",
            carried.trusted(digest_carry.INTERVALS, revisions))
        changes, change_digests = _read_digested(
            lambda known: store.changes(digests=True, known=known), "row_digest",
            carried.trusted(digest_carry.CHANGES, revisions))
        pending = tuple(store.pending_items(open_only=False))
        states = store.source_states()
        if kept is not None and store.check_log_mark(kept.last_id) != kept.mark:
            kept = None  # not the log it was made from, or a fetch committed late: count again
        fetches = store.check_log(after_id=kept.last_id if kept is not None else 0)
        failed_mail = tuple(store.outbox_rows("failed"))
        heartbeat = store.heartbeat("scheduler")
        actions = tuple(store.actions())
    digest_carry.save(settings.data_dir, version, carried, revisions,
                      {digest_carry.INTERVALS: interval_digests,
                       digest_carry.CHANGES: change_digests})
    checks = check_tally.tallied(kept, fetches, reader_zone)
    if checks is not kept:
        check_tally.save(settings.data_dir, version, checks)
    seen: dict[str, set[str]] = defaultdict(set)
    for interval in intervals:
        seen[interval.record.jurisdiction].add(interval.record.source_id)
    for change in changes:
        seen[change.jurisdiction].add(change.source_id)
    for row in pending:
        seen[row.item.jurisdiction].add(row.item.source_id)
    for state in states.values():
        seen[state.jurisdiction].add(state.source_id)
    known = {sid for sids in seen.values() for sid in sids}
    for source_id in checks.sources:
        if source_id not in known:  # no state yet: its id prefix is its jurisdiction
            seen[source_id.split("-", 1)[0]].add(source_id)
    watch = build_watch_list(settings.watch)
    listed = pages.jurisdiction_list(_registry(), seen)
    return Snapshot(
        intervals=intervals, changes=changes, pending=pending, states=states,
        checks=checks, failed_mail=failed_mail, heartbeat=heartbeat, jurisdictions=listed,
        actions=actions,
        documents=dict(documents or {}), watched=watch.keys, all_entries=watch.all_entries,
        disabled=frozenset(sid for j in listed for sid in j.sources
                           if not settings.source(sid).enabled))


def _read_digested(read: Callable[[Mapping[int, str]], Sequence[_Row]], attribute: str,
                   trusted: digest_carry.Trusted) -> tuple[tuple[_Row, ...], dict[int, str]]:
    """The rows ``read`` gives, taking the ``trusted`` digests, and their digests by id. When
    the anchor's digest made again is not the kept one, the store is not the one they were
    kept from: read again, every digest made (``reports.digest_carry``)."""
    rows = tuple(read(trusted.known))
    digests = digest_carry.by_id(rows, attribute)
    if not trusted.confirmed(digests):
        rows = tuple(read({}))
        digests = digest_carry.by_id(rows, attribute)
    return rows, digests


def _registry() -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(code, name, ((source id, title), ...)) of every registered jurisdiction. A module
    that cannot be imported (not written yet, removed) still gets a column from the data."""
    from jurisdictions import REGISTRY, jurisdiction

    result: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
    for code in REGISTRY:
        try:
            module = jurisdiction(code)
        except ImportError:
            result.append((code, code.upper(), ()))
            continue
        result.append((code, str(module.NAME),
                       tuple((source.id, source.title) for source in module.SOURCES)))
    return result


def referenced_documents(snap: Snapshot) -> set[str]:
    """The archived documents the site publishes: those that *parsed* — the evidence of a
    status (its first and latest document), of a change (before and after) and a source's
    last parsed document. The document of a failed extraction (a change's ``details``) is
    never published: it is what the parser did not recognise (a maintenance page, another
    service's answer), not evidence, and its page cites it by sha256 only."""
    shas: set[str | None] = set()
    for interval in snap.intervals:
        shas.update((interval.last_document_sha256, interval.record.document_sha256))
    for change in snap.changes:
        shas.update((change.before_sha256, change.after_sha256))
    for state in snap.states.values():
        shas.add(state.last_document_sha256)
    return {sha for sha in shas if isinstance(sha, str) and is_sha256(sha)}


# --- pages --------------------------------------------------------------------------------

def site_pages(snap: Snapshot, settings: Settings, env: jinja2.Environment, *,
               now: datetime, extra_weeks: set[str] | frozenset[str] = frozenset(),
               version: str = "", previous: Path | None = None) -> Iterator[Page]:
    """Every file of the site except the archived documents and the stylesheet, one at a
    time: a page's context is made when the page is written and dropped after it.
    ``previous``: the site as last published, whose reference's and index's parts are
    reused when made from the same inputs by the same ``version`` of the code
    (``reports.parts``)."""
    for group in page_groups(snap, settings, env, now=now, extra_weeks=extra_weeks,
                             version=version, previous=previous):
        yield from group()


def page_groups(snap: Snapshot, settings: Settings, env: jinja2.Environment, *,
                now: datetime, extra_weeks: set[str] | frozenset[str] = frozenset(),
                version: str = "", previous: Path | None = None
                ) -> list[Callable[[], Iterator[Page]]]:
    """The site's pages in groups that share nothing but the snapshot, so that two
    processes can make them (``reports.page_worker``); costliest first, nothing made until
    a group is called."""
    reader_zone = zone(settings.scheduler.timezone)

    def _parts(path: str) -> Parts:
        """The parts of a page remade every publish, reused from its previous version."""
        return Parts(f"{version}\0{path}", None if previous is None else previous / path)

    def reference_page() -> Iterator[Page]:
        # The reference shows the time of publishing: made every time (from the parts of
        # the previous one that did not change).
        yield _html_of_parts(env, "reference.html", "reference.html",
                             lambda parts: reference.reference_context(
                                 snap, now=now, scheduling=reference.Histories(
                                     [j.code for j in snap.jurisdictions],
                                     snap.history_substances,
                                     functools.partial(_scheduling_of, snap)),
                                 parts=parts),
                             _parts)

    def exports_() -> Iterator[Page]:
        columns = feed.STATUS_COLUMNS
        status_rows = functools.cache(lambda: feed.status_rows(snap))
        # Each row's text kept from the last publish, its source's latest check filled in
        # (reports/status_exports.py); a site made afresh makes every row.
        texts = functools.cache(lambda: status_exports.status_texts(
            snap, columns, data_dir=settings.data_dir, version=version,
            reuse=previous is not None))

        def write_csv(out: BinaryIO) -> None:
            made = texts()
            if made is None:
                exports.write_csv(status_rows(), columns, out)
            else:
                exports.write_csv_lines(columns, made[0], out)

        def write_json(out: BinaryIO) -> None:
            made = texts()
            if made is None or not exports.write_json_objects(made[1], out):
                exports.write_json(status_rows(), columns, out)

        # status.csv and status.json are made from the same rows: one digest for both.
        status_inputs = functools.cache(lambda: pages.digest_of(feed.status_inputs(snap)))
        yield Page("status.csv", status_inputs, write_csv)
        yield Page("status.json", status_inputs, write_json)

    def index_page() -> Iterator[Page]:
        # The index shows the time of publishing: made every time (its all-records table
        # from the chunks of the previous one that did not change).
        yield _html_of_parts(env, "index.html", "index.html",
                             lambda parts: pages.index_context(snap, now=now, parts=parts),
                             _parts)

    def weekly_pages() -> Iterator[Page]:
        index = weekly.week_index(snap, reader_zone)
        weeks = sorted(set(index.weeks) | set(extra_weeks))
        # The closed weeks none of whose inputs changed since the last publish keep their
        # fingerprints (reports.week_carry); a site made afresh works out every one.
        tables, carried = week_carry.carry(
            week_carry.load(settings.data_dir, version) if previous is not None else None,
            snap, index, weeks, reader_zone, now)
        fingerprints: dict[str, str] = {}
        for week in weeks:
            page = _weekly_page(env, snap, index, week, reader_zone, now)
            fingerprints[week] = carried.get(week) or _fingerprint(version, page)
            # Made directly (dataclasses.replace costs more than the rest, years of weeks).
            yield Page(page.path, page.inputs, page.write, fingerprints[week])
        week_carry.save(settings.data_dir, version, tables.with_fingerprints(fingerprints))
        yield _weekly_index_page(env, set(weeks))

    def change_pages() -> Iterator[Page]:
        # What each fingerprint reads of a change's JSON, kept from the last publish
        # (reports.change_carry): years of changes are not decoded for a day's one.
        found = change_carry.facts(snap.changes, data_dir=settings.data_dir, version=version,
                                   reuse=previous is not None)
        for change, facts in zip(snap.changes, found, strict=True):
            yield _change_page(env, snap, change, facts)

    def feed_pages() -> Iterator[Page]:
        site_url = settings.email.site_url if settings.email is not None else None
        feed_id = feed.feed_id_for(site_url or str(settings.site_path.absolute()))
        yield _html(env, "feed.atom", "feed.xml",
                    lambda: feed.feed_context(snap, feed_id=feed_id, site_url=site_url,
                                              now=now),
                    lambda: feed.feed_inputs(snap, feed_id=feed_id, site_url=site_url,
                                             now=now))
        def write_changes(out: BinaryIO) -> None:
            # Each change's line kept from the last publish (reports.change_carry).
            exports.write_csv_lines(feed.CHANGE_COLUMNS, change_carry.csv_lines(
                snap.changes, feed.CHANGE_COLUMNS, feed.change_row, data_dir=settings.data_dir,
                version=version, reuse=previous is not None), out)

        yield Page("changes.csv", lambda: tuple(snap.change_key(c) for c in snap.changes),
                   write_changes)

    # Costliest first, as measured on the ten-year store (reports.page_worker: each process
    # takes the next when free): the reference and the exports lead every publish; the
    # weekly reports' fingerprints and the history pages follow after a day's run.
    return [reference_page, exports_, weekly_pages,
            functools.partial(_history_pages, snap, env, _parts),
            index_page, change_pages, feed_pages]


def _html(env: jinja2.Environment, path: str, template: str,
          context: Callable[[], Mapping[str, Any]], inputs: Callable[[], Any] | None) -> Page:
    """A page rendered from ``template``; ``context`` is called only when it is written."""
    return Page(path, inputs, lambda out: _render(env, path, template, context(), out))


def _html_of_parts(env: jinja2.Environment, path: str, template: str,
                   context: Callable[[Parts], Mapping[str, Any]],
                   parts: Callable[[str], Parts]) -> Page:
    """A page made on every publish from parts (``reports.parts``): ``parts(path)`` are
    those of its previous version, given to ``context`` and written from the previous page
    where reused."""

    def write(out: BinaryIO) -> None:
        chosen = parts(path)
        _render(env, path, template, context(chosen), out, chosen)

    return Page(path, None, write)


def _render(env: jinja2.Environment, path: str, template: str, context: Mapping[str, Any],
            out: BinaryIO, parts: Parts | None = None) -> None:
    """``template`` with ``context``, the page's way back to the site's root and the
    content security policy, into ``out``."""
    render_into(env, template, {**context, "root": "../" * path.count("/"),
                                "csp": content_security_policy()}, out, parts=parts)


def _change_page(env: jinja2.Environment, snap: Snapshot, change: StoredChange,
                 facts: pages.Facts) -> Page:
    return _html(env, pages.change_href(change.id), "change.html", lambda: change_context(
        change, jurisdiction_name=snap.jurisdiction(change.jurisdiction).name,
        source_title=snap.source_title(change.source_id), documents=snap.documents,
        history=snap.history_substances), lambda: pages.change_inputs(change, snap, facts))


def _history_pages(snap: Snapshot, env: jinja2.Environment,
                   parts: Callable[[str], Parts]) -> Iterator[Page]:
    """The history pages (``Snapshot.history_substances``: with ``watch = "all"`` not one
    per entry, only the watched substances and those with a change or pending item)."""
    for name in sorted(snap.history_substances):
        yield _history_page(env, snap, name, snap.history_rows.get(name) or pages.HistoryRows(),
                            parts)


def _history_page(env: jinja2.Environment, snap: Snapshot, name: str,
                  rows: pages.HistoryRows, parts: Callable[[str], Parts]) -> Page:
    """A substance's history page: written only when its fingerprint changed, and then
    from the parts of its previous version that did not (``history_page``): a new latest
    document remakes the open period's rows, not the years before it."""
    path = pages.history_path(name)

    def write(out: BinaryIO) -> None:
        chosen = parts(path)
        # Its scheduling histories (all of the substance's at once) are made only if the
        # part of one of them is not copied.
        histories = reference.Histories([j.code for j in snap.jurisdictions], [name],
                                        lambda _name: _scheduling(snap, name, rows))
        _render(env, path, "history.html",
                {**history_page.history_context(name, rows, snap, parts=chosen),
                 "scheduling_history": histories}, out, chosen)

    return Page(path, lambda: history_page.history_inputs(name, rows, snap), write)


def _scheduling(snap: Snapshot, name: str, rows: pages.HistoryRows
                ) -> dict[str, dict[str, Any]]:
    """jurisdiction → substance → the scheduling history (``reports.scheduling_history``)
    of one substance, from its own intervals, changes and actions (``rows``)."""
    return scheduling.histories(
        [name], rows.intervals, rows.changes, rows.actions,
        {j.code: j.name for j in snap.jurisdictions}, [j.code for j in snap.jurisdictions],
        snap.documents)


def _scheduling_of(snap: Snapshot, name: str) -> dict[str, dict[str, Any]]:
    """The scheduling history of one substance with a history page, from its rows in
    ``Snapshot.history_rows``: what the reference shows of it."""
    return _scheduling(snap, name, snap.history_rows.get(name) or pages.HistoryRows())


def _weekly_page(env: jinja2.Environment, snap: Snapshot, index: weekly.WeekIndex, week: str,
                 reader_zone: ZoneInfo, now: datetime) -> Page:
    """A weekly report. What it shows depends on the time of publishing (the running week's
    "time since") and on the data of ninety days after the week; its fingerprint is worked
    out from the indexed rows (``weekly.week_inputs``), and its context (hundreds of
    "coming up" rows with ``watch = "all"``) is built only when the page is written."""
    # The week's parts are made once, for the fingerprint and (if written) the page: by a
    # closure, not functools.cache, whose wrapper cost more than the look-ups of a week
    # whose fingerprint is carried over (reports.week_carry), for years of weeks.
    made: list[weekly.WeekParts] = []

    def parts() -> weekly.WeekParts:
        if not made:
            made.append(weekly.week_parts(snap, index, week, reader_zone, now))
        return made[0]

    return _html(env, pages.weekly_href(week), "weekly.html",
                 lambda: weekly.weekly_context_from(snap, index, week, reader_zone=reader_zone,
                                                    now=now, parts=parts()),
                 lambda: weekly.week_inputs(snap, index, week, reader_zone=reader_zone,
                                            now=now, parts=parts()))


def _weekly_index_page(env: jinja2.Environment, weeks: set[str]) -> Page:
    context = weekly.weekly_index_context(sorted(weeks))
    return _html(env, "weekly/index.html", "weekly_index.html", lambda: context,
                 lambda: context)


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@functools.cache
def content_security_policy() -> str:
    """The ``Content-Security-Policy`` every page carries (a ``<meta>`` in base.html): only
    the site's own stylesheet and the site's own inline scripts (by their sha256, read from
    the templates, which render them verbatim) may run — no other script, no plugin, no
    form, no frame, no base URL. Even a page or copy that slipped through could not read
    the site. Templates without a script make ``script-src 'none'``."""
    import base64

    hashes = []
    for template in sorted(TEMPLATES.glob("*.html")):
        for body in _INLINE_SCRIPT.findall(template.read_text(encoding="utf-8")):
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest())
            hashes.append(f"'sha256-{digest.decode('ascii')}'")
    scripts = " ".join(dict.fromkeys(hashes)) or "'none'"
    return (f"default-src 'none'; script-src {scripts}; style-src 'self'; img-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-src 'none'")


# --- writing ------------------------------------------------------------------------------

def _publish_locked(settings: Settings, store: Store, now: datetime,
                    collector: _Collector) -> Path:
    site = settings.site_path.absolute()
    check_site_folder(site)
    recover(site)
    env = environment(settings.scheduler.timezone)
    version = _version(settings)
    old_manifest, old_mode = read_manifest(site)
    site.parent.mkdir(parents=True, exist_ok=True)
    building = staging_folder(site, reuse=bool(old_manifest))
    staging = building.folder
    try:
        # A site made afresh (none to reuse pages from) counts the fetch log afresh too.
        snap = read_snapshot(settings, store, version=version, reuse=bool(old_manifest))
        mode = umask_mode(0o666)
        # Each file kept from the previous site (a hard link) is made of this mode unless
        # that site's files are all of it already (its manifest says so; one written before
        # the umask was honoured, or under another umask, says nothing or another mode).
        fix_mode = None if old_mode == mode else mode
        # The same for the files kept as the spare holds them.
        held_fix_mode = None if building.file_mode == mode else mode
        documents = _stage_documents(building, site, store, referenced_documents(snap),
                                     fix_mode, held_fix_mode, data_dir=settings.data_dir,
                                     version=version, reuse=bool(old_manifest))
        snap = dataclasses.replace(snap, documents=documents)
        collector.keep()  # the snapshot: every group reads it, none frees it
        writer = _PageWriter(os.fspath(staging), os.fspath(site), version, old_manifest,
                             fix_mode, building.pages, held_fix_mode)

        def write(group: Callable[[], Iterator[Page]]) -> dict[str, str]:
            made = {page.path: writer.write(page) for page in group()}
            collector.collect()  # the group's cyclic garbage, before the next group
            return made

        groups = page_groups(snap, settings, env, now=now, extra_weeks=_existing_weeks(site),
                             version=version, previous=site if old_manifest else None)
        # Made by this process and, where one can be had, a second (reports.page_worker).
        manifest = make_shared([functools.partial(write, group) for group in groups]).manifest
        remove_files(staging, building.pages.keys() - manifest.keys())
        replace_file(staging / "style.css", stylesheet().encode("utf-8"))
        replace_file(staging / SITE_MARKER, manifest_bytes(manifest, now, mode))
        swap_in(staging, site)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return site


@dataclass
class _PageWriter:
    """Writes the pages into the staging folder: a page the folder holds already (the spare
    site's) with its fingerprint unchanged stays; else it is linked from the live site when
    that one's fingerprint is unchanged, else made, streamed into its file. Paths are joined
    as text (thousands of pages are looked at on every publish: ``pathlib`` cost more than
    the file operations themselves)."""

    staging: str
    site: str
    version: str
    old_manifest: Mapping[str, str]
    fix_mode: int | None  # the mode to give a linked page; None: it has it already
    held: Mapping[str, str]  # the pages the staging folder holds already → their fingerprint
    held_fix_mode: int | None  # the mode to give a page kept as held; None: it has it already
    folders: set[str] = dataclasses.field(default_factory=lambda: {""})

    def write(self, page: Page) -> str:
        fingerprint = _fingerprint(self.version, page)
        target = f"{self.staging}/{page.path}"
        held = self.held.get(page.path)
        if held is not None and page.inputs is not None and held == fingerprint:
            if self.held_fix_mode is not None:
                give_mode(target, self.held_fix_mode)
            return fingerprint
        folder = page.path.rpartition("/")[0]
        if folder not in self.folders:
            os.makedirs(os.path.join(self.staging, folder), exist_ok=True)
            self.folders.add(folder)
        linked = page.inputs is not None and self.old_manifest.get(page.path) == fingerprint
        # What is there (the spare's page, or one a failed page worker left) may be a hard
        # link to the live site's page: replaced, never written into — by ``link_or_copy``
        # when the page is linked (nearly always nothing is there, in a folder made for
        # this publish: no removal tried first), removed here before a page is made.
        if linked and link_or_copy(f"{self.site}/{page.path}", target):
            if self.fix_mode is not None:
                give_mode(target, self.fix_mode)
            return fingerprint
        if held is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
        # A page the spare held is made under another name and renamed over it (a new file,
        # the old one untouched): were the page worker killed halfway through it, what it
        # leaves is never taken for the spare's finished page when this process makes the
        # group again.
        made = f"{target}.partial" if held is not None else target
        with open(made, "wb", buffering=_CHUNK) as out:
            page.write(out)
        if made != target:
            os.replace(made, target)
        return fingerprint


def _fingerprint(version: str, page: Page) -> str:
    """What the page is made from (its ``inputs``), the code and templates that make it
    (``version``) and its path. ``repr`` of stored rows, tuples, dicts and strings is
    deterministic from one process to the next. A page made on every publish has none."""
    if page.fingerprint is not None:
        return page.fingerprint
    if page.inputs is None:
        return ""
    digest = hashlib.sha256(version.encode())
    digest.update(b"\0" + page.path.encode() + b"\0")
    digest.update(repr(page.inputs()).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _version(settings: Settings) -> str:
    """What every page also depends on: the templates, the rendering code, the reader's
    zone and the site URL (feed links)."""
    digest = hashlib.sha256(f"{FORMAT}\0{settings.scheduler.timezone}\0".encode())
    if settings.email is not None:
        digest.update((settings.email.site_url or "").encode())
    digest.update(templates_digest().encode())
    top = Path(__file__).resolve().parent.parent
    for name in _CODE:
        digest.update((top / name).read_bytes())
    return digest.hexdigest()


def _stage_documents(building: Staging, site: Path, store: Store, shas: set[str],
                     fix_mode: int | None, held_fix_mode: int | None, *,
                     data_dir: Path | None = None, version: str = "", reuse: bool = False
                     ) -> dict[str, str]:
    """Copy the archived documents the pages cite into ``documents/``: linked from the
    previous site when it has them under the same name (kept as they are when the staging
    folder, the spare site, has that copy too), else copied from the archive (or from the
    previous site's copy under an older name) and checked against their sha256 (a copy that
    does not match is left out, never published as evidence); the spare's others are
    deleted. The name's extension is one a browser shows as text or downloads, never runs
    (``pages.document_extension``), kept between publishes (``reports.document_names``;
    ``reuse`` False: none taken): a document's first bytes are read only when none is kept
    for it under its media type. ``fix_mode``, ``held_fix_mode``: the mode to give a linked
    copy, a kept one (None: it has it already)."""
    result: dict[str, str] = {}
    folder = building.folder / "documents"
    folder.mkdir(exist_ok=True)
    held = set(building.documents)
    live = site / "documents"
    previous: dict[str, list[str]] = defaultdict(list)  # sha256 → the live site's names
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(live) as found:
        for entry in found:
            if not entry.name.startswith(".") and entry.is_file():
                previous[entry.name.split(".", 1)[0]].append(entry.name)
    known = document_names.load(data_dir, version) if reuse else {}
    names: dict[str, document_names.Named] = {}
    infos = store.documents_info(shas)
    for sha in sorted(shas):
        olds = [live / name for name in previous.get(sha, ())]
        media_type = (infos.get(sha) or {}).get("media_type")
        extension = document_names.extension(known, sha, media_type)
        # The archived copy: looked for now when the extension must be worked out from it,
        # else only if neither the spare's nor the live site's copy will do.
        source: Path | None = None
        looked = extension is None
        if extension is None:
            try:
                source = _archived(store, sha)
            except StoreError:
                continue
            head = _head(source) if source is not None else _head(olds[0]) if olds else b""
            if source is None and not olds:
                continue
            extension = pages.document_extension(media_type, head)
        names[sha] = (media_type, extension)
        name = sha + extension
        same = [old for old in olds if old.name == name]
        if name in held:
            held.discard(name)
            # The spare's copy stands for the live site's, which a fresh site would link:
            # kept only when the live site has it too.
            if same:
                if held_fix_mode is not None:
                    give_mode(folder / name, held_fix_mode)
                result[sha] = f"documents/{name}"
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / name)
        if same and link_or_copy(same[0], folder / name):
            if fix_mode is not None:
                give_mode(folder / name, fix_mode)
            result[sha] = f"documents/{name}"
            continue
        if not looked:
            with contextlib.suppress(StoreError):
                source = _archived(store, sha)
        for candidate in ([source] if source is not None else []) + olds:
            if _copy_checked(candidate, folder / name, sha):
                result[sha] = f"documents/{name}"
                break
    for name in held:  # the spare's that no page cites now (the folder stays, if empty)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    document_names.save(data_dir, version, known, names)
    return result


def _archived(store: Store, sha: str) -> Path | None:
    """The archive's copy of a document, None when it has none (``StoreError``: not a
    document's name)."""
    path = store.document_path(sha)
    return path if path.is_file() else None


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(16)
    except OSError:
        return b""


def _copy_checked(source: Path, target: Path, sha: str) -> bool:
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        return False
    if digest.hexdigest() != sha:
        target.unlink()
        return False
    return True


def _existing_weeks(site: Path) -> set[str]:
    """Weeks whose page the current site has (a week written by ``write_weekly`` without
    data stays published)."""
    folder = site / "weekly"
    if not folder.is_dir():
        return set()
    weeks = set()
    for name in os.listdir(folder):  # names, not a Path each: years of weeks
        match = _WEEK_FILE.fullmatch(name)
        if match:
            try:
                parse_week(match.group(1))
            except SchedwatchError:
                continue
            weeks.add(match.group(1))
    return weeks


@contextlib.contextmanager
def _as_publish_error() -> Iterator[None]:
    """Publishing comes after the run's data is committed and before email goes out: a bug
    in a page must not escape as a crash that stops the alerts. User errors and disk errors
    keep their own (one-line) messages; anything else becomes one line, chained so that
    ``--verbose`` still shows where."""
    try:
        yield
    except (SchedwatchError, OSError):
        raise
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise PublishError(f"the site could not be built ({type(error).__name__}: {first}); "
                           "the previous site is unchanged — run with --verbose and report "
                           "it") from error


@dataclass(frozen=True)
class _Collector:
    """The cyclic garbage collector during a publish that paused it (``owned``): what
    exists is kept out of its reach (``keep``: ``gc.freeze``) and the garbage of each group
    of pages is collected when the group is done (``collect``), what the group leaves alive
    kept out of reach in turn. Not owned: both do nothing, and the collector runs as the
    process set it."""

    owned: bool

    def keep(self) -> None:
        if self.owned:
            gc.freeze()

    def collect(self) -> None:
        """A full collection of what the group made; then what survived it (the
        snapshot's caches the next groups read: keys, views, rows per substance, more of
        them the longer the history) is frozen too, so that the next group's collection
        walks only what that group made, not every earlier group's survivors again."""
        if self.owned:
            gc.collect()
            gc.freeze()


@contextlib.contextmanager
def _collector_paused() -> Iterator[_Collector]:
    """The cyclic garbage collector leaves alone what existed before the publish
    (imported modules, the run's data) and the snapshot it reads, and runs only between
    groups of pages, over what the group left. Its passes otherwise walked all of that again
    and again while a publish allocates millions of containers — a sixth of a cold publish
    — and, in the forked page worker, touched every shared object (an incremental publish
    on the ten-year store: median 1.16–1.28 → 1.06–1.12 s, 2026-12-04). The collector is
    given back as it was, even when the publish fails. A process that freezes objects
    itself (``gc.get_freeze_count()``) is left as it is."""
    if gc.get_freeze_count():
        yield _Collector(owned=False)
        return
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield _Collector(owned=True)
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _site_lock(store: Store, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """One writer of the site at a time; a second one waits for the first to finish."""
    deadline = time.monotonic() + wait
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(store.lock("site", holder="publish"))
                break
            except LockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        yield


def _resolve_week(week: str | None, now: datetime, reader_zone: ZoneInfo) -> str:
    """The week asked for (checked: a bad one is a one-line ``SchedwatchError``), or the
    current ISO week in the reader's zone."""
    if week is None:
        return week_name(now, reader_zone)
    parse_week(week)
    return week.strip()


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
