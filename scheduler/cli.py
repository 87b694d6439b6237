"""The ``schedwatch`` command: a thin click layer over the pipeline, the store and reports.

Errors a user can cause end in one line on stderr and a non-zero exit code (2), never a
traceback; ``--verbose`` adds the traceback for bug reports. Heavy libraries (pandas, lxml,
requests) are imported only by the commands that need them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator, Sequence
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
            from jurisdictions import all_sources
            from scheduler.config import load_settings

            known = {s.id: tuple(s.endpoints) for s in all_sources()}
            self._settings = load_settings(self.config, known_sources=known)
        return self._settings

    def store(self, *, readonly: bool = False) -> Any:
        """The store; ``readonly`` for the reading commands, which then work on a copy or a
        data folder this user may only read (and create nothing in it)."""
        from scrapers.store import Store

        return Store(self.settings.data_dir, self.settings.database_url, readonly=readonly)


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
    from scheduler.pipeline import run as run_cycle

    with _quiet_when_locked():
        report = run_cycle(state.settings, codes=codes or None)
    for line in report.lines:
        click.echo(line)
    for line in report.warnings:
        click.echo(line, err=True)
    changes = len(report.change_ids)
    click.echo(f"run {report.run_id}: {len(report.outcomes)} sources, {changes} change"
               f"{'' if changes == 1 else 's'}, "
               f"{'all healthy' if report.exit_code == 0 else 'some sources FAILED'}")
    sys.exit(report.exit_code)


# --- backfill -----------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch backfill", "schedwatch backfill --jurisdiction ca",
                             "schedwatch backfill -j ca --since 2022-01-01"))
@click.option("-j", "--jurisdiction", "codes", multiple=True, metavar="CODE",
              help="Only this jurisdiction (repeatable): ca, us, au.")
@click.option("--since", "since", metavar="YYYY-MM-DD", default=None,
              help="Only versions that speak for this day or later.")
@click.pass_obj
def backfill(state: State, codes: Sequence[str], since: str | None) -> None:
    """Read the regulators' own archives of past versions into the history (marked
    backfilled, never alerted): status --as-of then answers for past dates.

    Idempotent: a second backfill adds nothing; after live runs it fills only the gap before
    the first evidence held. Exit code 0, or 2 when a source's archive could not be read (the
    other sources are still done)."""
    from scheduler.backfill import backfill as run_backfill

    day = _day(since, "'--since'")
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

def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD",
                                 param_hint=option) from None


def _as_of(value: str | None) -> datetime | None:
    """The end of a day (UTC), for options that select by detection time."""
    day = _day(value, "'--since'")
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC) if day else None


def _local_today(code: str) -> date:
    """Today in a jurisdiction's own time zone, from the one clock (tests set it)."""
    from zoneinfo import ZoneInfo

    from jurisdictions import jurisdiction
    from scrapers import clock

    return clock.utcnow().astimezone(ZoneInfo(jurisdiction(code).TIMEZONE)).date()


#: The status table's columns: every date says what it is.
STATUS_TABLE = (("jurisdiction", "Jur."), ("substance", "Substance"),
                ("status_label", "Status"), ("control_level", "Level"),
                ("provision", "Provision"), ("source_id", "Source"),
                ("in_force_since", "In force since"), ("in_force_since_kind", "Kind"),
                ("first_observed_at", "First observed"), ("source_health", "Source health"))


@cli.command(epilog=_example("schedwatch status", "schedwatch status --format json",
                             "schedwatch status --as-of 2025-01-31 --format csv"))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", default=None,
              help="The law on that day, from the legal dates of the evidence held.")
@click.pass_obj
def status(state: State, fmt: str, as_of: str | None) -> None:
    """Show the status of every watched substance: today, or the law on a past day."""
    from reports.status_rows import CSV_COLUMNS, status_row

    day = _day(as_of, "'--as-of'")
    store = state.store(readonly=True)
    states = store.source_states()
    intervals = store.status_as_of(day) if day else store.current_intervals()
    rows = [status_row(i, on=day or _local_today(i.record.jurisdiction),
                       state=states.get(i.record.source_id)) for i in intervals]
    if fmt == "json":
        click.echo(_json_list(rows))
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
            click.echo("No status stored yet: run `schedwatch run` first.")
        return
    if day:
        click.echo(f"The law on {day.isoformat()}, from the legal dates of the evidence held:")
    _table(rows, list(STATUS_TABLE))
    notes = [f"{r['substance']} ({r['source_id']}): REVIEW: {r['review']}"
             for r in rows if r["review"]]
    notes += [f"{r['substance']} ({r['source_id']}): {r['legal_note']}"
              for r in rows if r["legal_note"]]
    failing = sorted({r["source_id"] for r in rows
                      if r["source_health"] in ("source_failed", "extraction_failed")})
    for line in notes:
        click.echo(line)
    if failing:
        since = {sid: states[sid].failing_since for sid in failing if sid in states}
        click.echo("FAILING: " + "; ".join(f"{sid} since {since.get(sid) or '?'} (the last "
                                           "known good status is shown)" for sid in failing))
    click.echo("In force since: the legal date (per the instrument, or the earliest evidence "
               "held). First observed: when schedwatch first saw it.")


# --- changes ------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch changes", "schedwatch changes --since 2026-01-01",
                             "schedwatch changes --format json"))
@click.option("--since", metavar="YYYY-MM-DD", default=None,
              help="Only changes detected on or after this day.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
def changes(state: State, since: str | None, fmt: str) -> None:
    """List detected changes: status changes, pending actions, source failures."""
    start = None
    if since is not None:
        moment = _as_of(since)
        assert moment is not None
        start = moment.replace(hour=0, minute=0, second=0)
    found = state.store(readonly=True).changes(since=start)
    if fmt == "json":
        keys = ("id", "detected_at", "jurisdiction", "substance", "kind", "before", "after",
                "summary", "source_id", "effective_date")
        click.echo(_json_list([{k: c.as_dict()[k] for k in keys} for c in found]))
        return
    if not found:
        click.echo("No changes recorded" + (f" since {since}." if since else "."))
        return
    _table([c.as_dict() for c in found], [("id", "#"), ("detected_at", "Detected"),
                                          ("kind", "Kind"), ("summary", "Summary")])


# --- history ------------------------------------------------------------------------------

@cli.command(epilog=_example("schedwatch history ketamine", "schedwatch history Spravato"))
@click.argument("substance")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
def history(state: State, substance: str, fmt: str) -> None:
    """Show one substance's status intervals, per jurisdiction and source: legal (what the
    evidence says, from when to when) beside observed (when schedwatch saw it)."""
    from jurisdictions.substances import KNOWN, WatchList
    from reports.status_rows import status_row
    from scrapers.records import name_key

    match = WatchList(substances=KNOWN).match(substance)
    key = match.key if match else name_key(substance)
    intervals = state.store(readonly=True).history(key)
    if not intervals:
        click.echo(f"No stored status for {substance!r}: check the name, or run "
                   "`schedwatch run` first.")
        return
    rows = [status_row(i) for i in intervals]
    for row in rows:
        row["legal"] = f"{row['legal_from'] or '?'} → {row['legal_to'] or 'now'}"
        row["observed"] = (f"{row['observed_from'][:10]} → "
                           f"{(row['observed_to'] or 'now')[:10]}")
        row["origin"] = "backfilled" if row["backfilled"] else "observed"
    if fmt == "json":
        click.echo(_json_list(rows))
        return
    _table(rows, [("jurisdiction", "Jur."), ("source_id", "Source"),
                  ("legal", "Legal (in force)"), ("observed", "Observed by schedwatch"),
                  ("origin", "Origin"), ("status_label", "Status"),
                  ("provision", "Provision"), ("in_force_since_basis", "Basis of the date")])


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
            "health": known.health if known else "never fetched",
            "failing_since": known.failing_since if known else None,
            "last_error": known.last_error if known else None,
        })
    if fmt == "json":
        click.echo(_json_list(rows))
        return
    _table(rows, [("id", "Source"), ("enabled", "On"), ("health", "Health"),
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
              default=Path("tests/fixtures/recorded"), show_default=True,
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


@report.command("weekly", epilog=_example("schedwatch report weekly",
                                          "schedwatch report weekly --week 2026-W47"))
@click.option("--week", metavar="YYYY-Www", default=None,
              help="ISO week (default: the current week).")
@click.option("--email/--no-email", "send_email", default=False,
              help="Also queue and send the weekly email to subscribed recipients.")
@click.pass_obj
def report_weekly(state: State, week: str | None, send_email: bool) -> None:
    """Write weekly/<ISO week>.html into the site (and optionally email it)."""
    from reports.site import write_weekly
    from scrapers.errors import LockedError

    store = state.store()
    try:
        path = write_weekly(state.settings, store, week)
    except LockedError as error:
        # A locked run of the tracker is "nothing to do" (exit 0), but a report asked for
        # by name (and its email) was not made: a cron wrapper or a person must see that.
        busy = str(error).removesuffix("; nothing done")
        raise SchedwatchError(f"the site stayed busy: {busy}; the weekly report was not "
                              f"written{' nor emailed' if send_email else ''}, try again "
                              "later") from None
    click.echo(f"weekly report written: {path}")
    if send_email:
        from reports.email import send_weekly

        for line in send_weekly(state.settings, store, week):
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
    from reports.email import send_test

    for line in send_test(state.settings, to):
        click.echo(line)


@email.command("send", epilog=_example("schedwatch email send"))
@click.pass_obj
def email_send(state: State) -> None:
    """Deliver everything queued now, even what waits for its next try after an outage
    (the scheduler delivers what is due every 15 minutes)."""
    from reports.email import deliver_outbox

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
    from reports.email import deliver_outbox
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


def _json_list(rows: Sequence[Any]) -> str:
    """A JSON array with one object a line: readable, and written by json's C encoder
    (``indent`` would force the pure-Python one: seconds for watch = "all")."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n]"


#: Above this many rows a table is printed as plain aligned text: rich's layout of thousands of
#: rows (watch = "all") takes seconds.
RICH_ROWS = 200


def _plain_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    cells = [[_cell(row.get(key)).replace("\n", " ") for key, _ in columns] for row in rows]
    widths = [min(60, max([len(title)] + [len(c[i]) for c in cells]))
              for i, (_, title) in enumerate(columns)]
    lines = ["  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
              for row in cells]
    click.echo("\n".join(line.rstrip() for line in lines))


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
    from reports.exports import write_csv_text

    write_csv_text(rows, columns, sys.stdout)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line and exit code 2 for user errors, never a traceback."""
    verbose = "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="schedwatch",
                 standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("schedwatch: interrupted", err=True)
        sys.exit(130)
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


if __name__ == "__main__":  # pragma: no cover
    main()
