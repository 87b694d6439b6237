"""The published site: status matrix, compliance reference, change pages, weekly reports,
substance histories, the Atom feed and table exports, under ``settings.site_path``.

``publish`` builds every page into a temporary folder beside the site and swaps it in
(rename the old site away, rename the new one in, delete the old), so a reader never sees a
half-written site and a failed render leaves the previous site in place. A page whose
inputs (data, templates, code) did not change since the last publish is hard-linked from
the previous site instead of rendered again; archived documents are copied once, checked
against their sha256, and then linked from one site to the next.

The pure work (what each page shows) is in ``reports.pages``; this module reads the store,
and writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reports import exports, pages
from reports.pages import (
    Snapshot,
    change_context,
    parse_week,
    substance_slug,
    week_name,
)
from reports.render import environment, render, stylesheet, templates_digest, zone
from scrapers.errors import LockedError, SchedwatchError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from scheduler.config import Settings
    from scrapers.store import Store

__all__ = ["publish", "write_weekly", "weekly_context", "change_context", "site_pages",
           "substance_slug", "PublishError", "SITE_MARKER"]

#: The manifest a schedwatch site carries: its presence marks a folder as ours (publish
#: replaces only such a folder) and it maps each page to the fingerprint it was made from.
SITE_MARKER = ".schedwatch-site.json"
FORMAT = 1
#: How long a publish waits for another one (the scheduler's, a CLI weekly report) to finish.
LOCK_WAIT_SECONDS = 60.0
_CHUNK = 1 << 20
_WEEK_FILE = re.compile(r"(\d{4}-W\d{2})\.html")
#: The modules whose code decides what a page looks like: a change to them re-renders.
_CODE = ("pages.py", "render.py", "site.py", "worddiff.py", "diff.py", "exports.py")


class PublishError(SchedwatchError):
    """The site could not be built (a template or data the pages did not expect). The
    previous site is untouched; the pipeline reports this as a warning, never a failed run."""


@dataclass(frozen=True)
class Page:
    """One file of the site: its path (site-relative, POSIX), the data it is made from
    (hashed into its fingerprint) and how to make it."""

    path: str
    data: Any
    produce: Callable[[], bytes]


# --- public API ---------------------------------------------------------------------------

def publish(settings: Settings, store: Store, *, now: datetime | None = None) -> Path:
    """Regenerate the whole site (reusing unchanged pages) and swap it in atomically.
    Returns the site folder."""
    moment = _now(now)
    with _site_lock(store), _as_publish_error():
        return _publish_locked(settings, store, moment)


def write_weekly(settings: Settings, store: Store, week: str | None = None, *,
                 now: datetime | None = None) -> Path:
    """Write ``weekly/<week>.html`` (default: the current ISO week in the configured zone)
    into the current site, atomically; publishes the site first when there is none yet.
    Returns the page's path."""
    moment = _now(now)
    reader_zone = zone(settings.scheduler.timezone)
    week = _resolve_week(week, moment, reader_zone)  # a bad week fails before any work
    site = settings.site_path
    with _site_lock(store), _as_publish_error():
        if not (site / SITE_MARKER).is_file():
            _publish_locked(settings, store, moment)
        snap = read_snapshot(settings, store)
        index = pages.week_index(snap, reader_zone)
        env = environment(settings.scheduler.timezone)
        version = _version(settings)
        existing = _existing_weeks(site)
        written = [
            _weekly_page(env, snap, index, week, reader_zone, moment),
            _weekly_index_page(env, set(index.weeks) | existing | {week}),
        ]
        manifest = _read_manifest(site)
        for page in written:
            target = site / page.path
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, page.produce())
            manifest[page.path] = _fingerprint(version, page)
        _atomic_write(site / SITE_MARKER, _manifest_bytes(manifest, moment))
    return site / pages.weekly_href(week)


def weekly_context(settings: Settings, store: Store, week: str | None = None, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """The weekly report's data (for the weekly email): sources' checks and failures, the
    week's changes by jurisdiction, pending items, what comes into force within 90 days,
    undeliverable email. Every ``href`` is relative to the site root."""
    moment = _now(now)
    reader_zone = zone(settings.scheduler.timezone)
    week = _resolve_week(week, moment, reader_zone)
    snap = read_snapshot(settings, store)
    context = pages.weekly_context_from(snap, pages.week_index(snap, reader_zone), week,
                                        reader_zone=reader_zone, now=moment)
    context["href"] = pages.weekly_href(week)
    return context


# --- reading the store --------------------------------------------------------------------

def read_snapshot(settings: Settings, store: Store,
                  documents: Mapping[str, str] | None = None) -> Snapshot:
    """Everything the site shows, in a handful of queries (intervals make ten years of an
    unchanged status one row)."""
    from jurisdictions.substances import build_watch_list

    intervals = tuple(store.history())
    changes = tuple(store.changes())
    pending = tuple(store.pending_items(open_only=False))
    states = store.source_states()
    fetches = tuple(store.fetch_log())
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
    for fetch in fetches:
        source_id = str(fetch["source_id"])
        if source_id not in known:  # no state yet: its id prefix is its jurisdiction
            seen[source_id.split("-", 1)[0]].add(source_id)
    watch = build_watch_list(settings.watch)
    return Snapshot(
        intervals=intervals, changes=changes, pending=pending, states=states,
        fetches=fetches, failed_mail=tuple(store.outbox_rows("failed")),
        heartbeat=store.heartbeat("scheduler"),
        jurisdictions=pages.jurisdiction_list(_registry(), seen),
        documents=dict(documents or {}), watched=watch.keys, all_entries=watch.all_entries)


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
    shas: set[str | None] = set()
    for interval in snap.intervals:
        shas.update((interval.last_document_sha256, interval.record.document_sha256))
    for change in snap.changes:
        shas.update((change.before_sha256, change.after_sha256,
                     change.details.get("document_sha256")))
    for state in snap.states.values():
        shas.add(state.last_document_sha256)
    return {sha for sha in shas if isinstance(sha, str) and _is_sha(sha)}


def _is_sha(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --- pages --------------------------------------------------------------------------------

def site_pages(snap: Snapshot, settings: Settings, env: jinja2.Environment, *,
               now: datetime, extra_weeks: set[str] | frozenset[str] = frozenset()
               ) -> list[Page]:
    """Every file of the site except the archived documents and the stylesheet."""
    reader_zone = zone(settings.scheduler.timezone)
    result = [
        _html(env, "index.html", "index.html", pages.index_context(snap, now=now)),
        _html(env, "reference.html", "reference.html",
              pages.reference_context(snap, now=now)),
    ]
    for change in snap.changes:
        j = snap.jurisdiction(change.jurisdiction)
        result.append(_html(env, pages.change_href(change.id), "change.html", change_context(
            change, jurisdiction_name=j.name, source_title=snap.source_title(change.source_id),
            documents=snap.documents)))
    result += _history_pages(snap, env)
    index = pages.week_index(snap, reader_zone)
    weeks = set(index.weeks) | set(extra_weeks)
    result += [_weekly_page(env, snap, index, week, reader_zone, now) for week in sorted(weeks)]
    result.append(_weekly_index_page(env, weeks))
    site_url = settings.email.site_url if settings.email is not None else None
    feed = pages.feed_context(snap, feed_id=pages.feed_id_for(
        site_url or str(settings.site_path.absolute())), site_url=site_url, now=now)
    result.append(_html(env, "feed.atom", "feed.xml", feed))
    status_rows, change_rows = pages.status_rows(snap), pages.change_rows(snap)
    result += [
        Page("status.csv", status_rows,
             lambda: exports.to_csv(status_rows, pages.STATUS_COLUMNS)),
        Page("status.json", status_rows,
             lambda: exports.to_json(status_rows, pages.STATUS_COLUMNS)),
        Page("changes.csv", change_rows,
             lambda: exports.to_csv(change_rows, pages.CHANGE_COLUMNS)),
    ]
    return result


def _html(env: jinja2.Environment, path: str, template: str,
          context: Mapping[str, Any]) -> Page:
    full = {**context, "root": "../" * path.count("/")}
    return Page(path, {"template": template, "context": full},
                lambda: render(env, template, full).encode("utf-8"))


def _history_pages(snap: Snapshot, env: jinja2.Environment) -> list[Page]:
    intervals: dict[str, list[Any]] = defaultdict(list)
    for interval in snap.intervals:
        intervals[interval.record.substance].append(interval)
    changes: dict[str, list[Any]] = defaultdict(list)
    for change in snap.changes:
        if change.substance is not None:
            changes[change.substance].append(change)
    pending: dict[str, list[Any]] = defaultdict(list)
    for row in snap.pending:
        pending[row.item.substance].append(row)
    # Every substance some page links to has a history page.
    names = set(snap.watched) | set(intervals) | set(changes) | set(pending)
    return [_html(env, pages.history_href(name), "history.html", pages.history_context(
        name, intervals[name], changes[name], pending[name], snap)) for name in sorted(names)]


def _weekly_page(env: jinja2.Environment, snap: Snapshot, index: pages.WeekIndex, week: str,
                 reader_zone: ZoneInfo, now: datetime) -> Page:
    context = pages.weekly_context_from(snap, index, week, reader_zone=reader_zone, now=now)
    return _html(env, pages.weekly_href(week), "weekly.html", context)


def _weekly_index_page(env: jinja2.Environment, weeks: set[str]) -> Page:
    return _html(env, "weekly/index.html", "weekly_index.html",
                 pages.weekly_index_context(sorted(weeks)))


# --- writing ------------------------------------------------------------------------------

def _publish_locked(settings: Settings, store: Store, now: datetime) -> Path:
    site = settings.site_path.absolute()
    _check_site_folder(site)
    _recover(site)
    env = environment(settings.scheduler.timezone)
    version = _version(settings)
    old_manifest = _read_manifest(site)
    site.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{site.name}.new-", dir=site.parent))
    try:
        snap = read_snapshot(settings, store)
        documents = _stage_documents(staging, site, store, referenced_documents(snap))
        snap = dataclasses.replace(snap, documents=documents)
        manifest: dict[str, str] = {}
        for page in site_pages(snap, settings, env, now=now,
                               extra_weeks=_existing_weeks(site)):
            manifest[page.path] = _write_page(staging, site, page, version, old_manifest)
        (staging / "style.css").write_text(stylesheet(), encoding="utf-8")
        (staging / SITE_MARKER).write_bytes(_manifest_bytes(manifest, now))
        _swap(staging, site)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return site


def _write_page(staging: Path, site: Path, page: Page, version: str,
                old_manifest: Mapping[str, str]) -> str:
    fingerprint = _fingerprint(version, page)
    target = staging / page.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if old_manifest.get(page.path) == fingerprint and _link_or_copy(site / page.path, target):
        return fingerprint
    target.write_bytes(page.produce())
    return fingerprint


def _fingerprint(version: str, page: Page) -> str:
    digest = hashlib.sha256(version.encode())
    digest.update(page.path.encode())
    digest.update(json.dumps(page.data, sort_keys=True, default=str,
                             ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _version(settings: Settings) -> str:
    """What every page also depends on: the templates, the rendering code, the reader's
    zone and the site URL (feed links)."""
    digest = hashlib.sha256(f"{FORMAT}\0{settings.scheduler.timezone}\0".encode())
    if settings.email is not None:
        digest.update((settings.email.site_url or "").encode())
    digest.update(templates_digest().encode())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _stage_documents(staging: Path, site: Path, store: Store, shas: set[str]) -> dict[str, str]:
    """Copy the archived documents the pages cite into ``documents/``: linked from the
    previous site when it has them, else copied from the archive and checked against their
    sha256 (a copy that does not match is left out, never published as evidence)."""
    result: dict[str, str] = {}
    folder = staging / "documents"
    folder.mkdir()
    previous = {path.name.split(".", 1)[0]: path
                for path in (site / "documents").glob("*") if path.is_file()} \
        if (site / "documents").is_dir() else {}
    for sha in sorted(shas):
        old = previous.get(sha)
        if old is not None and _link_or_copy(old, folder / old.name):
            result[sha] = f"documents/{old.name}"
            continue
        try:
            source = store.document_path(sha)
        except StoreError:
            continue
        if not source.is_file():
            continue
        info = store.document_info(sha) or {}
        with source.open("rb") as handle:
            head = handle.read(16)
        name = sha + pages.document_extension(info.get("media_type"), head)
        if _copy_checked(source, folder / name, sha):
            result[sha] = f"documents/{name}"
    return result


def _copy_checked(source: Path, target: Path, sha: str) -> bool:
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    if digest.hexdigest() != sha:
        target.unlink()
        return False
    return True


def _link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link (cheap: the previous site's file is not modified, only replaced), else
    copy; False when the source is gone."""
    try:
        os.link(source, target)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        try:
            shutil.copyfile(source, target)
            return True
        except OSError:
            return False


def _swap(staging: Path, site: Path) -> None:
    if not site.exists():
        os.rename(staging, site)
        return
    retired = site.parent / f".{site.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(site, retired)
    try:
        os.rename(staging, site)
    except BaseException:
        os.rename(retired, site)  # put the previous site back
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _recover(site: Path) -> None:
    """Tidy up after a publish that died: a half-built folder is deleted; a site renamed
    away but not replaced is put back."""
    parent = site.parent
    if not parent.is_dir():
        return
    for path in parent.glob(f".{site.name}.new-*"):
        shutil.rmtree(path, ignore_errors=True)
    retired = sorted(parent.glob(f".{site.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if retired and not site.exists():
        os.rename(retired.pop(), site)
    for path in retired:
        shutil.rmtree(path, ignore_errors=True)


def _check_site_folder(site: Path) -> None:
    """Publishing replaces the whole folder: refuse a folder schedwatch did not make."""
    if not site.exists():
        return
    if not site.is_dir():
        raise SchedwatchError(f"site_dir {site} is a file, not a folder; point site_dir at a "
                              "new or empty folder")
    if not (site / SITE_MARKER).is_file() and any(site.iterdir()):
        raise SchedwatchError(f"site_dir {site} holds files schedwatch did not write (no "
                              f"{SITE_MARKER}); point site_dir at a new or empty folder, "
                              "publishing replaces its whole content")


def _read_manifest(site: Path) -> dict[str, str]:
    try:
        data = json.loads((site / SITE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    pages_map = data.get("pages") if isinstance(data, dict) else None
    if not isinstance(pages_map, dict) or data.get("format") != FORMAT:
        return {}
    return {str(k): str(v) for k, v in pages_map.items()}


def _manifest_bytes(manifest: Mapping[str, str], now: datetime) -> bytes:
    return json.dumps({"format": FORMAT, "generator": "schedwatch",
                       "published_at": now.astimezone(UTC).replace(microsecond=0).isoformat(),
                       "pages": dict(sorted(manifest.items()))}, indent=1).encode("utf-8")


def _existing_weeks(site: Path) -> set[str]:
    """Weeks whose page the current site has (a week written by ``write_weekly`` without
    data stays published)."""
    folder = site / "weekly"
    if not folder.is_dir():
        return set()
    weeks = set()
    for path in folder.iterdir():
        match = _WEEK_FILE.fullmatch(path.name)
        if match:
            try:
                parse_week(match.group(1))
            except SchedwatchError:
                continue
            weeks.add(match.group(1))
    return weeks


def _atomic_write(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
