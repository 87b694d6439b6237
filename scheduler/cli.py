"""The ``schedwatch`` command: a thin click layer over the pipeline, the store and reports.

Errors a user can cause end in one line on stderr and a non-zero exit code (2), never a
traceback; ``--verbose`` adds the traceback for bug reports. Heavy libraries (pandas, lxml,
requests) are imported only by the commands that need them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from scrapers.errors import ConfigError, SchedwatchError


def _example(*lines: str) -> str:
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


@contextlib.contextmanager
def _quiet_when_locked() -> Iterator[None]:
    """Another process holding the jurisdiction's lock is nothing to do: its line, exit 0."""
    try:
        yield
    except SchedwatchError as error:
        if error.exit_code == 0:
            click.echo(str(error))
            sys.exit(0)
        raise


class State:
    """Per-invocation state: settings are loaded once, on first use."""

    def __init__(self, config: str | None, verbose: bool) -> None:
        self.config = config
        self.verbose = verbose
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from jurisdictions import known_sources
            from scheduler.config import load_settings

            # The registry's static outline: checking source names imports no jurisdiction.
            self._settings = load_settings(self.config, known_sources=known_sources())
        return self._settings

    def store(self, *, readonly: bool = False) -> Any:
        """The store; ``readonly`` for the reading commands, which then work on a copy or a
        data folder this user may only read (and create nothing in it)."""
        from scrapers.store import Store

        return Store(self.settings.data_dir, self.settings.database_url, readonly=readonly)


# --- the shared date option types ---------------------------------------------------------

class DayType(click.ParamType):
    """A YYYY-MM-DD option: a bad value is click's one error naming the option ("Invalid
    value for '--as-of': …")."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a date; write YYYY-MM-DD", param, ctx)


class WeekType(click.ParamType):
    """A YYYY-Www option (an ISO week that exists), checked like a date option."""

    name = "YYYY-Www"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> str:
        from reports.weeks import parse_week

        try:
            parse_week(str(value))
        except SchedwatchError:
            self.fail(f"{value!r} is not an ISO week; write e.g. 2026-W47 (year, \"-W\", a "
                      "two-digit week 01-53 that exists in that year)", param, ctx)
        return str(value).strip()


#: The shared date option types: every date option reports a bad value under its own name.
DAY = DayType()
WEEK = WeekType()


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             epilog=_example("schedwatch run", "schedwatch --config schedwatch.toml status",
                             "SCHEDWATCH_CONFIG=/etc/schedwatch.toml schedwatch changes"))
@click.option("--config", "config", type=str, default=None, metavar="PATH",
              help="TOML configuration file (default: $SCHEDWATCH_CONFIG, else built-in "
                   "defaults).")
@click.option("-v", "--verbose", is_flag=True, help="Print tracebacks of internal errors.")
@click.version_option(package_name="schedwatch", prog_name="schedwatch")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
    """Track the legal scheduling status of ketamine (and its isomers) from the
    regulators' own publications: Canada, the United States and Australia."""
    ctx.obj = State(config, verbose)


# --- run ----------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch run", "schedwatch run --jurisdiction ca",
                             "schedwatch run -j us -j au"))
@click.option("-j", "--jurisdiction", "codes", multiple=True, metavar="CODE",
              help="Only this jurisdiction (repeatable): ca, us, au.")
@click.pass_obj
def run(state: State, codes: Sequence[str]) -> None:
    """Run one tracking cycle: fetch, archive, parse, diff, store, publish, notify.

    Exit code 0 when every source is healthy, 2 when any source failed (the others still
    complete and are stored)."""
    from scheduler.pipeline import deliver_after_run
    from scheduler.pipeline import run as run_cycle

    settings = state.settings
    with _quiet_when_locked():
        # Delivered after the run's lines are printed: a slow or failing mail server (or a
        # locked database while marking) never hides what the run found.
        report = run_cycle(settings, codes=codes or None, notify=False)
    for line in report.lines:
        click.echo(line)
    for line in report.warnings:
        click.echo(line, err=True)
    if settings.email is not None:
        for line in deliver_after_run(settings):
            click.echo(line, err=True)
    click.echo(run_summary(report))
    sys.exit(report.exit_code)


def run_summary(report: Any) -> str:
    """``run 7: 4 sources, 1 change, all healthy`` (or what failed: the sources, or only
    publishing the site)."""
    changes = len(report.change_ids)
    if report.exit_code == 0:
        health = "all healthy"
    elif all(o.healthy for o in report.outcomes) and not report.site_published:
        reason = next((w.removeprefix("site not updated: ") for w in report.warnings
                       if w.startswith("site not updated: ")), "see above")
        health = f"all sources healthy; the site was NOT updated: {reason}"
    else:
        health = "some sources FAILED"
    return (f"run {report.run_id}: {len(report.outcomes)} sources, {changes} change"
            f"{'' if changes == 1 else 's'}, {health}")


# --- backfill -----------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch backfill", "schedwatch backfill --jurisdiction ca",
                             "schedwatch backfill -j ca --since 2022-01-01"))
@click.option("-j", "--jurisdiction", "codes", multiple=True, metavar="CODE",
              help="Only this jurisdiction (repeatable): ca, us, au.")
@click.option("--since", "since", type=DAY, default=None,
              help="Only versions that speak for this day or later.")
@click.pass_obj
def backfill(state: State, codes: Sequence[str], since: date | None) -> None:
    """Read the regulators' own archives of past versions into the history (marked
    backfilled, never alerted): status --as-of then answers for past dates.

    Idempotent: a second backfill adds nothing; after live runs it fills only the gap before
    the first evidence held. Exit code 0, or 2 when a source's archive could not be read (the
    other sources are still done)."""
    from scheduler.backfill import backfill as run_backfill

    day = since
    settings = state.settings
    hooks: dict[str, Any] = {}
    progress: Any = None
    if sys.stdout.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True)
        tasks: dict[str, Any] = {}

        def on_source(source: Any) -> None:
            tasks[source.id] = progress.add_task(f"{source.id}: reading the archive", total=None)

        def on_version(source_id: str, version: Any) -> None:
            task = tasks[source_id]
            progress.advance(task)
            done = int(progress.tasks[task].completed)
            progress.update(task, description=f"{source_id}: {done} versions read (latest of "
                                              f"{version.evidence_date or '?'})")

        hooks = {"on_source": on_source, "on_version": on_version}
    with _quiet_when_locked():
        if progress is not None:
            with progress:
                report = run_backfill(settings, codes=codes or None, since=day, **hooks)
        else:
            report = run_backfill(settings, codes=codes or None, since=day)
    for line in report.lines:
        click.echo(line)
    sys.exit(report.exit_code)


# --- status -------------------------------------------------------------------------------

def _acyclic(command: Callable[..., None]) -> Callable[..., None]:
    """For a reading command: it builds thousands of rows (watch = "all") that hold no
    reference cycles, which the cyclic collector would walk again and again to free nothing
    (measured: ~50 ms of `status` on a ten-year store); reference counting frees them. The
    collector is restored afterwards: tests and the scheduler call commands in a process
    that goes on."""

    @functools.wraps(command)
    def without_collection(*args: Any, **kwargs: Any) -> None:
        enabled = gc.isenabled()
        gc.disable()
        try:
            command(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return without_collection


def _local_today(code: str) -> date:
    """Today in a jurisdiction's own time zone, from the one clock (tests set it)."""
    from zoneinfo import ZoneInfo

    from jurisdictions import outline
    from scrapers import clock

    return clock.utcnow().astimezone(ZoneInfo(outline(code).timezone)).date()


#: The status table's columns: every date says what it is.
STATUS_TABLE = (("jurisdiction", "Jur."), ("substance", "Substance"),
                ("status_label", "Status"), ("control_level", "Level"),
                ("provision", "Provision"), ("source_id", "Source"),
                ("in_force_since", "In force since"), ("in_force_since_kind", "Kind"),
                ("first_observed_at", "First observed"), ("source_health", "Source health"))


#: A source's health in words, in the tables (the JSON and CSV keep the short values).
HEALTH_WORDS = {"disabled": "disabled in the configuration"}


def _health_words(health: str | None) -> str:
    return HEALTH_WORDS.get(str(health), str(health))


@cli.command(epilog=_example("schedwatch status", "schedwatch status --format json",
                             "schedwatch status --as-of 2025-01-31 --format csv"))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--as-of", "as_of", type=DAY, default=None,
              help="The law on that day, from the legal dates of the evidence held.")
@click.pass_obj
@_acyclic
def status(state: State, fmt: str, as_of: date | None) -> None:
    """Show the status of every watched substance: today, or the law on a past day."""
    from reports.status_rows import CSV_COLUMNS, status_row

    day = as_of
    settings = state.settings
    store = state.store(readonly=True)
    with store.snapshot():  # the sources' health and the statuses of one moment
        states = store.source_states()
        intervals = store.status_as_of(day) if day else store.current_intervals()
    codes = {i.record.jurisdiction for i in intervals}
    days = {code: day or _local_today(code) for code in codes}  # one clock read a jurisdiction
    enabled = {sid: settings.source(sid).enabled for sid in {i.record.source_id
                                                             for i in intervals}}
    rows = [status_row(i, on=days[i.record.jurisdiction], state=states.get(i.record.source_id),
                       disabled=not enabled[i.record.source_id])
            for i in intervals]
    if fmt == "json":
        _echo_json(rows)
        return
    if fmt == "csv":
        _csv(rows, list(CSV_COLUMNS))
        return
    if not rows:
        earliest = store.earliest_evidence() if day else None
        if day and earliest:
            click.echo(f"No evidence on or before {day.isoformat()}; the earliest evidence "
                       f"held is of {earliest} (`schedwatch backfill` reads the regulators' "
                       "archives).")
        elif day:
            click.echo(f"No status stored yet, so no evidence on or before {day.isoformat()}: "
                       "run `schedwatch run` first.")
        else:
            click.echo(f"No status stored yet in {state.settings.data_dir}: run "
                       "`schedwatch run` (or `make demo` to see it work offline).")
        return
    if day:
        click.echo(f"The law on {day.isoformat()}, from the legal dates of the evidence held:")
    _table([{**r, "source_health": _health_words(r["source_health"])} for r in rows],
           list(STATUS_TABLE))
    notes = [f"{r['substance']} ({r['source_id']}): REVIEW: {r['review']}"
             for r in rows if r["review"]]
    if day:
        notes += _as_of_evidence(intervals)
    notes += [f"{r['substance']} ({r['source_id']}): {r['legal_note']}"
              for r in rows if r["legal_note"]]
    failing = sorted({r["source_id"] for r in rows
                      if r["source_health"] in ("source_failed", "extraction_failed")})
    disabled = sorted({r["source_id"] for r in rows if r["source_health"] == "disabled"})
    if notes:  # thousands with --as-of and watch = "all": one write, not one a line
        _write_lines(notes)
    if disabled:
        click.echo(f"{HEALTH_WORDS['disabled'].capitalize()}: {', '.join(disabled)} (not "
                   "checked: the last status recorded is shown; set enabled = true under "
                   f"[sources.<id>] to check {'them' if len(disabled) > 1 else 'it'} again)")
    if failing:
        since = {sid: states[sid].failing_since for sid in failing if sid in states}
        click.echo("FAILING: " + "; ".join(f"{sid} since {since.get(sid) or '?'} (the last "
                                           "known good status is shown)" for sid in failing))
    click.echo("In force since: the legal date (per the instrument, or the earliest evidence "
               "held). First observed: when schedwatch first saw it.")


def _as_of_evidence(intervals: Sequence[Any]) -> list[str]:
    """For ``status --as-of``: the document each answer rests on, with the date it speaks
    for (and what kind of date) and whether it was backfilled or observed."""
    from reports.scheduling_history import evidence_date_kind, origin_of

    lines = []
    for interval in intervals:
        record = interval.record
        lines.append(f"{record.substance} ({record.source_id}): evidence of "
                     f"{record.evidence_date or record.retrieved_at[:10]} "
                     f"({evidence_date_kind(record)}), sha256 {record.document_sha256}, "
                     f"{origin_of(interval.backfilled)}")
    return lines


# --- changes ------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch changes", "schedwatch changes --since 2026-01-01",
                             "schedwatch changes --format json"))
@click.option("--since", type=DAY, default=None,
              help="Only changes detected on or after this day.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
@_acyclic
def changes(state: State, since: date | None, fmt: str) -> None:
    """List detected changes: status changes, pending actions, source failures."""
    start = datetime.combine(since, time(0, 0), tzinfo=UTC) if since else None
    found = state.store(readonly=True).changes(since=start)
    if fmt == "json":
        keys = ("id", "detected_at", "jurisdiction", "substance", "kind", "before", "after",
                "summary", "source_id", "effective_date")
        _echo_json([{k: c.as_dict()[k] for k in keys} for c in found])
        return
    if not found:
        click.echo("No changes recorded" + (f" since {since}." if since else "."))
        return
    _table([c.as_dict() for c in found], [("id", "#"), ("detected_at", "Detected"),
                                          ("kind", "Kind"), ("summary", "Summary")])


# --- history ------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch history ketamine", "schedwatch history Spravato",
                             "schedwatch history ketamine --format json"))
@click.argument("substance")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
@_acyclic
def history(state: State, substance: str, fmt: str) -> None:
    """Show one substance's history per jurisdiction: its status intervals, legal (what the
    evidence says, from when to when) beside observed (when schedwatch saw it), with the
    action that started each, then its scheduling history: the dated actions the
    regulators' documents state, the status changes recorded, the earliest evidence held."""
    from jurisdictions import REGISTRY, jurisdiction
    from jurisdictions.substances import KNOWN, WatchList
    from reports import scheduling_history as scheduling
    from reports.status_rows import status_row
    from scrapers.records import name_key

    match = WatchList(substances=KNOWN).match(substance)
    key = match.key if match else name_key(substance)
    store = state.store(readonly=True)
    with store.snapshot():  # the intervals, actions and changes of one moment
        intervals = store.history(key)
        actions = store.actions(key)
        changes = [c for c in store.changes() if c.substance == key]
    if not intervals and not actions:
        click.echo(f"No scheduling history stored for {substance!r} (no status interval, no "
                   "dated action): check the name, then run `schedwatch run` (live) or "
                   "`schedwatch backfill` (the regulators' archives).", err=True)
        sys.exit(1)
    names = {code: str(getattr(jurisdiction(code), "NAME", code.upper())) for code in REGISTRY}
    histories = scheduling.scheduling_history(key, intervals, changes, actions, names,
                                              list(REGISTRY))
    by_code = scheduling.by_jurisdiction(histories)
    rows = [status_row(i) for i in intervals]
    for row, interval in zip(rows, intervals, strict=True):
        row["legal"] = f"{row['legal_from'] or '?'} → {row['legal_to'] or 'now'}"
        row["observed"] = (f"{row['observed_from'][:10]} → "
                           f"{(row['observed_to'] or 'now')[:10]}")
        row["origin"] = "backfilled" if row["backfilled"] else "observed"
        row["started_by"] = scheduling.started_by(interval, actions)
        row["granularity"] = scheduling.granularity(interval.record)
        row["scheduling_history"] = by_code.get(row["jurisdiction"])
    if fmt == "json":
        held = {row["jurisdiction"] for row in rows}
        _echo_json(rows + [
            {"jurisdiction": h["code"], "substance": key, "scheduling_history": h}
            for h in histories if h["code"] not in held])
        return
    for entry in histories:
        _history_section(entry, [r for r in rows if r["jurisdiction"] == entry["code"]])


def _history_section(entry: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """One jurisdiction of ``history``: its intervals, then its scheduling history."""
    click.echo(f"{entry['name']} ({entry['code']})")
    for row in rows:
        start = row["started_by"]
        row["started"] = (f"{start['what']}: {start['citation'] or '?'}, {start['date'] or '?'} "
                          f"({start['date_kind']})")
    if rows:
        _table(rows, [("source_id", "Source"), ("legal", "Legal (in force)"),
                      ("observed", "Observed by schedwatch"), ("origin", "Origin"),
                      ("status_label", "Status"), ("provision", "Provision"),
                      ("started", "Started by (citation, date)"),
                      ("in_force_since_basis", "Basis of the date")])
    for row in rows:
        if row["granularity"]:
            click.echo(f"  {row['source_id']} {row['legal']}: {row['granularity']}")
    click.echo("Scheduling history (oldest first):")
    if entry["rows"]:
        _table([{**r, "when": f"{r['date']} ({r['date_kind']})",
                 "action": f"{r['what']}: {r['detail']}" if r["detail"] else r["what"],
                 "cited": " ".join(filter(None, (r["citation"], r["document"] and
                                                 f"({r['document']})")))}
                for r in entry["rows"]],
               [("when", "Date (kind)"), ("action", "Action or change"),
                ("cited", "Citation (document)"), ("origin", "Origin")])
    else:
        click.echo("  no dated action or status change stored (`schedwatch backfill` reads "
                   "the regulators' archives)")
    found = entry["earliest_evidence"]
    if found:
        click.echo(f"Earliest evidence held: {found['date']} ({found['date_kind']}), "
                   f"{found['source_id']}, sha256 {found['document_sha256']}, "
                   f"{found['origin']}")
    click.echo("")


# --- sources ------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch sources", "schedwatch sources --format json"))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
def sources(state: State, fmt: str) -> None:
    """List the sources with their URL, whether enabled, last fetch and health."""
    from jurisdictions import all_sources

    settings = state.settings
    states = state.store(readonly=True).source_states()
    rows = []
    for source in all_sources():
        configured = settings.source(source.id)
        known = states.get(source.id)
        rows.append({
            "id": source.id, "jurisdiction": source.jurisdiction, "title": source.title,
            "url": configured.endpoints.get("url", source.url),
            "enabled": configured.enabled,
            "last_fetch": known.last_attempt_at if known else None,
            "last_healthy": known.last_healthy_at if known else None,
            "health": ("disabled" if not configured.enabled else
                       known.health if known else "never fetched"),
            "failing_since": known.failing_since if known else None,
            "last_error": known.last_error if known else None,
        })
    if fmt == "json":
        _echo_json(rows)
        return
    _table([{**r, "health": _health_words(r["health"])} for r in rows],
           [("id", "Source"), ("enabled", "On"), ("health", "Health"),
                  ("last_fetch", "Last fetch"), ("url", "URL")])


# --- parse --------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch parse ca-cdsa C-38.8.xml",
                             "schedwatch parse us-ecfr-1308 part-1308.xml --format json",
                             "schedwatch parse au-poisons-standard poisons.docx --all"))
@click.argument("source_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--all", "all_entries", is_flag=True,
              help="Every entry of every schedule, not only the watch list.")
@click.pass_obj
def parse(state: State, source_id: str, file: Path, fmt: str, all_entries: bool) -> None:
    """Run a source's parser on a saved document and print the records (no store, no
    network)."""
    import hashlib

    from jurisdictions import source_by_id
    from jurisdictions.substances import build_watch_list
    from scrapers.records import Document, validate

    try:
        source = source_by_id(source_id)
    except KeyError:
        from jurisdictions import all_sources

        raise SchedwatchError(f"unknown source {source_id!r}; known: "
                              f"{', '.join(s.id for s in all_sources())}") from None
    try:
        content = file.read_bytes()
    except OSError as error:
        raise SchedwatchError(f"cannot read {file}: {error.strerror}") from None
    watch = build_watch_list("all" if all_entries else state.settings.watch)
    document = Document(source_id=source.id, url=file.resolve().as_uri(), content=content,
                        sha256=hashlib.sha256(content).hexdigest(),
                        retrieved_at=datetime.now(UTC).replace(microsecond=0))
    result = validate(source.parse(document, watch), source_id=source.id, watched=watch.keys)
    if fmt == "json":
        click.echo(json.dumps({
            "records": [r.as_dict() for r in result.records],
            "pending": [p.as_dict() for p in result.pending],
            "document_dates": [list(d) for d in result.document_dates],
            "title": result.title, "instrument": result.instrument}, indent=2,
            ensure_ascii=False))
        return
    _table([r.as_dict() for r in result.records],
           [("substance", "Substance"), ("status", "Status"), ("schedule", "Sched."),
            ("provision", "Provision"), ("code", "Code"), ("basis", "Basis")])
    for item in result.pending:
        click.echo(f"pending: {item.substance}: {item.description} ({item.reference}"
                   f"{', ' + str(item.date_label) + ' ' + item.date if item.date else ''})")


# --- record -------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch record us-ecfr-1308",
                             "schedwatch record au-poisons-standard --out tests/fixtures/live"))
@click.argument("source_id")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("recorded"), show_default=True,
              help="Folder to save into (a sub-folder per source).")
@click.pass_obj
def record(state: State, source_id: str, out: Path) -> None:
    """Fetch a source live and save every response (body + status and headers) as a
    fixture, so recordings can replace the constructed fixtures."""
    from scheduler.recording import record_source

    for line in record_source(state.settings, source_id, out):
        click.echo(line)


# --- report -------------------------------------------------------------------------------

@cli.group(epilog=_example("schedwatch report weekly --week 2026-W47"))
def report() -> None:
    """Write reports (the weekly report)."""


def _check_week(state: State, week: str, now: datetime) -> None:
    """A week asked for by name must have begun, and must not end before tracking began."""
    from reports.render import zone
    from reports.weeks import week_bounds, week_name
    from scrapers.clock import parse_stamp

    reader_zone = zone(state.settings.scheduler.timezone)
    start, end = week_bounds(week, reader_zone)
    current = week_name(now, reader_zone)
    if start <= now < end:
        return  # the week in progress: figures so far
    if start > now:
        raise SchedwatchError(f"week {week} has not begun yet (the current week is {current} "
                              f"in {reader_zone.key}): ask for {current} or an earlier week")
    store = state.store(readonly=True)
    if store.fetch_log(until=end)[:1]:
        return
    first = store.fetch_log()[:1]
    if not first:
        raise SchedwatchError(f"nothing to report for week {week}: tracking has not begun "
                              "(no check recorded yet): run `schedwatch run` first")
    began = parse_stamp(str(first[0]["started_at"]))
    raise SchedwatchError(f"nothing to report for week {week}: tracking began on "
                          f"{began.astimezone(reader_zone).date()} ({reader_zone.key}; week "
                          f"{week_name(began, reader_zone)}): ask for that week or a later one")


@report.command("weekly", epilog=_example("schedwatch report weekly",
                                          "schedwatch report weekly --week 2026-W47"))
@click.option("--week", type=WEEK, default=None,
              help="ISO week (default: the current week).")
@click.option("--email/--no-email", "send_email", default=False,
              help="Also queue and send the weekly email to subscribed recipients.")
@click.pass_obj
def report_weekly(state: State, week: str | None, send_email: bool) -> None:
    """Write weekly/<ISO week>.html into the site (and optionally email it)."""
    from reports.site import write_weekly_report
    from scrapers import clock
    from scrapers.errors import LockedError

    now = clock.utcnow()
    if week is not None:
        _check_week(state, week, now)
    store = state.store()
    try:
        path, summary = write_weekly_report(state.settings, store, week, now=now)
    except LockedError as error:
        # A locked run of the tracker is "nothing to do" (exit 0), but a report asked for
        # by name (and its email) was not made: a cron wrapper or a person must see that.
        busy = str(error).removesuffix("; nothing done")
        raise SchedwatchError(f"the site stayed busy: {busy}; the weekly report was not "
                              f"written{' nor emailed' if send_email else ''}, try again "
                              "later") from None
    click.echo(f"weekly report written: {path}")
    if send_email:
        from reports.outbox import send_weekly

        # The summary made with the page: the report is computed once for both.
        for line in send_weekly(state.settings, store, summary):
            click.echo(line)


# --- email --------------------------------------------------------------------------------

@cli.group(epilog=_example("schedwatch email test --to officer@example.org",
                           "schedwatch email send", "schedwatch email retry"))
def email() -> None:
    """Email: test the SMTP settings, deliver the outbox."""


@email.command("test", epilog=_example("schedwatch email test",
                                       "schedwatch email test --to officer@example.org"))
@click.option("--to", "to", default=None, metavar="ADDRESS",
              help="Send to this address (default: every configured recipient).")
@click.pass_obj
def email_test(state: State, to: str | None) -> None:
    """Send a test message; on failure say what failed and what to check."""
    from reports.outbox import send_test

    for line in send_test(state.settings, to):
        click.echo(line)


@email.command("send", epilog=_example("schedwatch email send"))
@click.pass_obj
def email_send(state: State) -> None:
    """Deliver everything queued now, even what waits for its next try after an outage
    (the scheduler delivers what is due every 15 minutes)."""
    from reports.outbox import deliver_outbox

    lines = deliver_outbox(state.settings, state.store(), by_hand=True)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("email: nothing queued")


@email.command("retry", epilog=_example("schedwatch email retry"))
@click.pass_obj
def email_retry(state: State) -> None:
    """Requeue alerts that failed permanently (say, after fixing a wrong password) and
    deliver them now. Delivered messages are never sent again."""
    from reports.outbox import deliver_outbox
    from scrapers.store import utcnow

    store = state.store()
    count = store.requeue_failed(utcnow())
    click.echo(f"email: {count} failed message{'' if count == 1 else 's'} requeued")
    for line in deliver_outbox(state.settings, store):
        click.echo(line)


# --- scheduler ----------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch schedule",
                             "schedwatch --config /etc/schedwatch.toml schedule"))
@click.pass_obj
def schedule(state: State) -> None:
    """Run the scheduler in the foreground (cron jobs per jurisdiction, weekly report,
    outbox retries) until SIGTERM or Ctrl-C."""
    from scheduler.jobs import run_scheduler

    run_scheduler(state.settings)


@cli.command(epilog=_example("schedwatch jobs", "schedwatch jobs --format json"))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
def jobs(state: State, fmt: str) -> None:
    """List scheduled jobs, their triggers, next run times and the last heartbeat."""
    from scheduler.jobs import list_jobs

    rows, heartbeat = list_jobs(state.settings)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    _table(rows, [("id", "Job"), ("trigger", "Trigger"), ("next_run_time", "Next run"),
                  ("next_run_time_utc", "Next run (UTC)")])
    if any(row.get("stored") is False for row in rows):
        click.echo("note: jobs not stored yet are computed from the configuration; start "
                   "`schedwatch schedule` to store them")
    click.echo(f"last heartbeat: {heartbeat or 'never'}")


# --- output helpers -----------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _echo_json(rows: Sequence[Any]) -> None:
    """A JSON array with one object a line (``_json_lines``) to stdout, as the encoder
    wrote it: ``click.echo`` would first search megabytes of it for terminal colour codes
    to strip when stdout is not a terminal (~25 ms for watch = "all"), and JSON text holds
    none (the encoder escapes every control character)."""
    _write_lines(_json_lines(rows))


def _json_lines(rows: Sequence[Any]) -> list[str]:
    """The lines of a JSON array with one object a line: readable, and written by json's C
    encoder (``indent`` would force the pure-Python one: seconds for watch = "all")."""
    if not rows:
        return ["[]"]
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder for thousands of rows
    lines = ["[", *[encode(row) + "," for row in rows], "]"]
    lines[-2] = lines[-2][:-1]  # no comma after the last object
    return lines


def _write_lines(lines: Sequence[str], *, ended: bool = False) -> None:
    """Lines of text to stdout, each followed by a line break (``ended``: each ends in one
    already), each encoded on its own, in stdout's encoding and error handling (what
    writing their text would give). One text of thousands of rows is stored two bytes a
    character as soon as one scraped line holds a "§" or an "α", and then copied and
    encoded a character at a time; line by line, only those lines are."""
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:  # a text-only stream (an embedding program's)
        out.write("".join(lines) if ended else "\n".join(lines) + "\n")
        out.flush()
        return
    out.flush()  # what was written as text comes first
    encoding, errors = out.encoding, out.errors or "strict"
    encoded = [line.encode(encoding, errors) for line in lines]
    buffer.write(b"".join(encoded) if ended else b"\n".join([*encoded, b""]))
    buffer.flush()


#: Above this many rows a table is printed as plain aligned text: rich's layout of thousands of
#: rows (watch = "all") takes seconds.
RICH_ROWS = 200


def _plain_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    keys = [key for key, _ in columns]
    # Most cells are text already: str() and the JSON encoder only for the others.
    cells = [[(value if type(value) is str else _cell(value)).replace("\n", " ")
              for value in map(row.get, keys)] for row in rows]
    widths = [min(60, max([len(title)] + [len(c[i]) for c in cells]))
              for i, (_, title) in enumerate(columns)]
    # One format a line (each cell left-aligned, padded to its column's width, never cut):
    # one call a row instead of a join over a padding per cell.
    line = "  ".join(f"{{:<{width}}}" for width in widths).format
    lines = [line(*[title for _, title in columns])]
    lines += [line(*row) for row in cells]
    _write_lines([text.rstrip() for text in lines])


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    # Boxes for a person at a terminal; plain aligned text for pipes, files and scripts (and
    # for thousands of rows), which also spares them rich's import.
    if len(rows) > RICH_ROWS or not sys.stdout.isatty():
        _plain_table(rows, columns)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for _, title in columns:
        table.add_column(title, overflow="fold")
    for row in rows:
        # Scraped text is shown literally: no rich markup interpretation.
        from rich.text import Text

        table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
    Console(width=max(160, 0), soft_wrap=False).print(table)


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    # The site's CSV writer: a scraped cell that starts like a formula is neutralised here
    # exactly as in status.csv.
    from reports.exports import csv_table_lines

    _write_lines(csv_table_lines(rows, columns), ended=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line and exit code 2 for user errors, never a traceback."""
    verbose = "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="schedwatch",
                 standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("schedwatch: interrupted", err=True)
        sys.exit(130)
    except click.BadParameter as error:
        # One line, naming the option: "Invalid value for '--as-of': …".
        click.echo(f"schedwatch: {error.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as error:
        error.show()
        sys.exit(2)
    except ConfigError as error:
        click.echo(f"schedwatch: {error}", err=True)
        sys.exit(2)
    except SchedwatchError as error:
        if error.exit_code == 0:
            click.echo(str(error))
            sys.exit(0)
        click.echo(f"schedwatch: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("schedwatch: interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback
        if verbose:
            traceback.print_exc()
        click.echo(f"schedwatch: internal error: {type(error).__name__}: "
                   f"{str(error).splitlines()[0] if str(error) else ''} (run with --verbose "
                   "for details and report it)", err=True)
        sys.exit(1)
    sys.exit(0)


def console_main() -> None:
    """The ``schedwatch`` console script: ``main`` in a process of its own. Before the
    interpreter exits, every live object is moved out of the collector's reach
    (``gc.freeze``): its last collection would walk them all only to free them with the
    process (measured: 70 ms of a 0.4 s ``status``, about 250 ms of a warm run). Not done by
    ``main`` itself, which tests and the scheduler call in a process that goes on."""
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    console_main()
