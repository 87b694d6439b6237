"""The scheduler: APScheduler 3.x cron jobs per jurisdiction, the weekly report, outbox retries.

``schedwatch schedule`` runs :func:`run_scheduler` in the foreground (under systemd, say). The
jobs live in the project database (APScheduler's own table ``apscheduler_jobs``), so a missed
run survives a restart: with ``coalesce=True`` and ``misfire_grace_time`` a run missed during
downtime happens once when the scheduler comes back, not once per missed period, and not at
all when it is older than the grace time.

Cadences are standard 5-field crontab expressions in ``[scheduler.cron]`` (job ids: the
jurisdiction codes, ``weekly_report``, ``outbox``; ``"off"`` schedules nothing), read in
``[scheduler] timezone``. Two differences from APScheduler's own ``from_crontab`` are handled
here so that an expression means what it means in a crontab:

* day-of-week numbers follow cron (0 or 7 = Sunday, 1 = Monday … 6 = Saturday), not
  APScheduler 3.x (0 = Monday); ``"0 8 * * 1"`` is Monday 08:00. Numbers, names, ranges,
  lists and steps are expanded to weekday names before APScheduler sees them.
* cron runs a job when *either* day-of-month or day-of-week matches if both are restricted;
  APScheduler needs *both*. Such an expression is refused with a clear message rather than
  silently scheduled differently.

At every start the stored jobs are reconciled with the configuration: new jobs are added, a
changed cadence or time zone reschedules, an unchanged job keeps its stored next run time (so a
run missed while stopped still happens), and stored jobs no longer configured are removed.

Job functions are module-level and take only the configuration path and a code, because the
job store pickles them; they reload the settings on each run.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler.cron import (
    _CRON_FORM,
    FIXED_JOBS,
    OFF,
    OUTBOX,
    WEEKLY_REPORT,
    job_ids,
    parse_crontab,
    scheduler_zone,
)
from scrapers.errors import ConfigError, LockedError, SchedwatchError

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import Settings
    from scrapers.store import Store

DEFAULT_JURISDICTION_CRON = "0 6 * * *"
DEFAULT_CRON = MappingProxyType({WEEKLY_REPORT: "0 8 * * mon", OUTBOX: "*/15 * * * *"})
#: The name of the scheduler's row in the store's heartbeat table, and of its process lock.
HEARTBEAT = "scheduler"
#: The job store alias of the persistent jobs; the heartbeat lives in memory only.
PERSISTENT = "default"

_LOGGER = "schedwatch.scheduler"
_OFFLINE_LOGGER = "apscheduler.offline"


def _log() -> logging.Logger:
    return logging.getLogger(_LOGGER)


# --- what to schedule ---------------------------------------------------------------------

@dataclass(frozen=True)
class JobSpec:
    """One persistent job as the configuration wants it."""

    id: str
    name: str
    func: Callable[..., None]
    args: tuple[Any, ...]
    trigger: Any  # an APScheduler trigger


def _config_arg(settings: Settings) -> str | None:
    # An absolute path: the stored job must still find the file if the scheduler is started
    # from another working directory.
    return str(settings.config_path.resolve()) if settings.config_path is not None else None


def has_enabled_source(settings: Settings, code: str) -> bool:
    """Whether the configuration leaves at least one of the jurisdiction's sources enabled.
    A jurisdiction whose sources are all disabled gets no job (its cron entry, if any, is
    still checked); ``schedwatch run -j CODE`` says the same by fetching nothing."""
    from jurisdictions import jurisdiction

    return any(settings.source(source.id).enabled for source in jurisdiction(code).SOURCES)


def job_specs(settings: Settings, *, overrides: Mapping[str, Any] | None = None
              ) -> list[JobSpec]:
    """Validate ``[scheduler]`` and return the persistent jobs it asks for.

    ``overrides`` maps a job id to a ready-made trigger (tests use an ``IntervalTrigger``).
    Raises ConfigError naming the key and the fix for a bad zone, an unknown job id, a bad
    crontab expression or a non-positive number of seconds.
    """
    zone = scheduler_zone(settings)
    config = settings.scheduler
    for key in ("misfire_grace_time", "heartbeat_seconds"):
        if getattr(config, key) < 1:
            raise ConfigError(f"config: 'scheduler.{key}' must be at least 1 second "
                              f"(got {getattr(config, key)})")
    ids = job_ids()
    for job_id in config.cron:
        if job_id not in ids:
            raise ConfigError(f"config: unknown job 'scheduler.cron.{job_id}'; valid job ids: "
                              f"{', '.join(ids)}")
    for job_id in overrides or {}:
        if job_id not in ids:
            raise ValueError(f"override for unknown job id {job_id!r}")
    path = _config_arg(settings)
    specs: list[JobSpec] = []
    for job_id in ids:
        expression = config.cron.get(job_id, DEFAULT_CRON.get(job_id, DEFAULT_JURISDICTION_CRON))
        if overrides and job_id in overrides:
            trigger = overrides[job_id]
        elif expression.strip().lower() == OFF:
            continue
        else:
            try:
                trigger = parse_crontab(expression, zone)
            except ValueError as error:
                raise ConfigError(f"config: 'scheduler.cron.{job_id}' = {expression!r} is not "
                                  f"a valid crontab expression ({error}); {_CRON_FORM}") from None
        if job_id not in FIXED_JOBS and not has_enabled_source(settings, job_id):
            continue  # nothing to fetch: a job would only record empty runs
        if job_id == WEEKLY_REPORT:
            specs.append(JobSpec(job_id, "weekly report", weekly_report_job, (path,), trigger))
        elif job_id == OUTBOX:
            specs.append(JobSpec(job_id, "outbox delivery", outbox_job, (path,), trigger))
        else:
            specs.append(JobSpec(job_id, f"run {job_id}", jurisdiction_job, (path, job_id),
                                 trigger))
    return specs


def job_options(settings: Settings) -> dict[str, Any]:
    """The options every persistent job gets: one run after downtime, never two at once."""
    return {"coalesce": True, "max_instances": 1,
            "misfire_grace_time": settings.scheduler.misfire_grace_time}


# --- the job store ------------------------------------------------------------------------

def _jobstore(store: Store) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(engine=_job_engine(store), tablename=JOBS_TABLE)


#: APScheduler's table of persistent jobs, in the store's database.
JOBS_TABLE = "apscheduler_jobs"
_engines: dict[str, Any] = {}


def _job_engine(store: Store) -> Any:
    """A SQLAlchemy engine on the store's database, for APScheduler's job store (the one
    part of schedwatch that needs SQLAlchemy, imported here: only the scheduler pays for
    it). One per database, made once; on SQLite it sets the store's own pragmas (WAL,
    busy_timeout), which let the job store and a running pipeline share the file."""
    url = _engine_url(store)
    engine = _engines.get(url)
    if engine is None:
        import sqlalchemy as sa

        if url.startswith("sqlite"):
            engine = sa.create_engine(url)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A long-lived scheduler outlives server restarts: test each pooled connection.
            engine = sa.create_engine(url, pool_pre_ping=True)
        _engines[url] = engine
    return engine


def _engine_url(store: Store) -> str:
    """The store's URL as SQLAlchemy reads it (a bare postgresql:// would mean psycopg2)."""
    if store.url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + store.url.split("://", 1)[1]
    return store.url


def _close(store: Store) -> None:
    """Close the store and the job store's engine on its database."""
    engine = _engines.pop(_engine_url(store), None)
    if engine is not None:
        engine.dispose()
    store.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    from scrapers.db import BUSY_TIMEOUT_MS

    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class SafeBlockingScheduler(BlockingScheduler):
    """``BlockingScheduler`` that does not process jobs once shut down.

    APScheduler 3.x runs one more ``_process_jobs`` pass after ``shutdown()`` (its issues #285
    and #985): submitting to the stopped executor fails, but the due job's next run time has
    already been advanced and stored, so a run due at the moment of a SIGTERM would be lost
    instead of happening at the next start.
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


class SafeBackgroundScheduler(SafeBlockingScheduler, BackgroundScheduler):
    """``BackgroundScheduler`` with the same fix (tests and embedding programs)."""


class _OfflineScheduler(BaseScheduler):
    """A scheduler that only edits job stores: no thread, so it can never run a job."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


@contextlib.contextmanager
def offline_scheduler(store: Store, zone: Any = UTC) -> Iterator[Any]:
    """The persistent jobs, open for reading and editing through APScheduler's API, with
    nothing executed (the scheduler is started paused and has no processing thread)."""
    # Its own logger: "Scheduler started" from this editor would read as the real one.
    scheduler = _OfflineScheduler(jobstores={PERSISTENT: _jobstore(store)}, timezone=zone,
                                  logger=logging.getLogger(_OFFLINE_LOGGER))
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def reconcile_jobs(settings: Settings, store: Store, specs: Sequence[JobSpec]
                   ) -> dict[str, list[str]]:
    """Make the stored jobs match ``specs``; returns the ids added, rescheduled, kept and
    removed. Nothing is executed here."""
    options = job_options(settings)
    zone = scheduler_zone(settings)
    done: dict[str, list[str]] = {"added": [], "rescheduled": [], "kept": [], "removed": []}
    with offline_scheduler(store, zone) as reconciler:
        stored = {job.id: job for job in reconciler.get_jobs(jobstore=PERSISTENT)}
        wanted = {spec.id for spec in specs}
        for job_id in sorted(stored):
            if job_id not in wanted:
                reconciler.remove_job(job_id, jobstore=PERSISTENT)
                done["removed"].append(job_id)
        for spec in specs:
            settings_of_job = dict(func=spec.func, args=spec.args, kwargs={}, name=spec.name,
                                   executor="default", **options)
            job = stored.get(spec.id)
            if job is None:
                reconciler.add_job(id=spec.id, trigger=spec.trigger, jobstore=PERSISTENT,
                                   **settings_of_job)
                done["added"].append(spec.id)
            elif job.next_run_time is None or repr(job.trigger) != repr(spec.trigger):
                reconciler.modify_job(spec.id, jobstore=PERSISTENT, **settings_of_job)
                reconciler.reschedule_job(spec.id, jobstore=PERSISTENT, trigger=spec.trigger)
                done["rescheduled"].append(spec.id)
            else:
                # Same cadence: keep the stored next run time, which may be in the past after
                # downtime; the scheduler then runs it once (coalesce) if within the grace time.
                reconciler.modify_job(spec.id, jobstore=PERSISTENT, trigger=spec.trigger,
                                      **settings_of_job)
                done["kept"].append(spec.id)
        log = _log()
        for action in ("added", "rescheduled", "kept", "removed"):
            if done[action]:
                log.info("jobs %s: %s", action, ", ".join(done[action]))
        for job in reconciler.get_jobs(jobstore=PERSISTENT):
            log.info("job %s %s: next run %s", job.id, job.trigger,
                     _iso(job.next_run_time, zone) or "paused")
    return done


def build_scheduler(settings: Settings, *, store: Store, background: bool = False,
                    overrides: Mapping[str, Any] | None = None) -> BaseScheduler:
    """Reconcile the stored jobs with the configuration and return a scheduler, not yet
    started, over them plus the in-memory heartbeat job.

    The scheduler blocks in ``start()`` unless ``background`` (tests, which also pass
    ``overrides``: job id → trigger, e.g. an ``IntervalTrigger`` of one second).
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.triggers.interval import IntervalTrigger

    specs = job_specs(settings, overrides=overrides)
    zone = scheduler_zone(settings)
    reconcile_jobs(settings, store, specs)
    cls = SafeBackgroundScheduler if background else SafeBlockingScheduler
    scheduler = cls(
        jobstores={PERSISTENT: _jobstore(store), "memory": MemoryJobStore()},
        # One worker for everything that writes: runs, the weekly report and the outbox take
        # turns, so SQLite sees one writer and the site is never published by two runs at once.
        # The heartbeat has its own worker so a long run does not look like a hung scheduler.
        executors={"default": ThreadPoolExecutor(1), "heartbeat": ThreadPoolExecutor(1)},
        job_defaults=job_options(settings), timezone=zone)
    heartbeat = settings.scheduler.heartbeat_seconds
    scheduler.add_job(heartbeat_job, IntervalTrigger(seconds=heartbeat, timezone=zone),
                      args=(store, _now_utc().isoformat()), id="heartbeat",
                      name="heartbeat", jobstore="memory", executor="heartbeat",
                      next_run_time=datetime.now(zone), coalesce=True, max_instances=1,
                      misfire_grace_time=heartbeat)
    return scheduler


# --- running ------------------------------------------------------------------------------

def run_scheduler(settings: Settings) -> None:
    """Run the scheduler in the foreground until SIGTERM or SIGINT (Ctrl-C).

    On either signal the job that is running finishes (jobs already queued behind it run
    too), then the process returns; a run killed harder than that is rolled back by the
    database, since the pipeline writes a run in one transaction. Raises ConfigError for a bad
    ``[scheduler]`` section and LockedError when another scheduler uses the same data folder.
    """
    from scrapers.store import Store

    job_specs(settings)  # validate before touching the database
    _configure_logging()
    store = Store(settings.data_dir, settings.database_url)
    try:
        # One scheduler per data folder: two would fire every job twice (the locks and the
        # outbox's idempotency keys limit the harm, but not the doubled fetches and reports).
        with store.lock(HEARTBEAT, holder="schedwatch schedule"):
            scheduler = build_scheduler(settings, store=store)
            store.beat(HEARTBEAT, now=_now_utc(), detail="starting")
            _serve(scheduler)
            store.beat(HEARTBEAT, now=_now_utc(), detail="stopped")
            _log().info("scheduler stopped")
    finally:
        _close(store)


def _serve(scheduler: BaseScheduler) -> None:
    """``scheduler.start()`` (blocking) with SIGTERM/SIGINT turned into a clean shutdown."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED
    from apscheduler.schedulers import SchedulerNotRunningError

    stop = threading.Event()
    started = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # A handler runs in the main thread wherever it happens to be, possibly inside
        # APScheduler's own locks; so it only raises a flag and the shutdown happens in the
        # stopper thread, which waits for the running job like any other caller would.
        received.append(signum)
        stop.set()

    def stopper() -> None:
        stop.wait()
        started.wait()  # a signal during start(): shut down once it has started
        if received:
            _log().info("received %s: letting the running job finish, then stopping",
                        signal.Signals(received[0]).name)
        try:
            scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:
            pass

    scheduler.add_listener(lambda _event: started.set(), EVENT_SCHEDULER_STARTED)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for caught in (signal.SIGTERM, signal.SIGINT):
            previous[caught] = signal.signal(caught, on_signal)
    thread = threading.Thread(target=stopper, name="schedwatch-stopper")
    thread.start()
    try:
        _log().info("scheduler started (pid %s); stop it with SIGTERM or Ctrl-C",
                    os.getpid())
        scheduler.start()
    finally:
        started.set()
        stop.set()
        thread.join()
        for restored, handler in previous.items():
            signal.signal(restored, handler)


def _configure_logging() -> None:
    # The foreground scheduler logs to stderr (the journal under systemd) unless the embedding
    # program configured logging itself.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Two INFO lines a minute from the heartbeat would bury the runs in the journal, and the
    # job store editor's start/stop lines say nothing the reconciliation summary does not.
    logging.getLogger("apscheduler.executors.heartbeat").setLevel(logging.WARNING)
    logging.getLogger(_OFFLINE_LOGGER).setLevel(logging.WARNING)


def _now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- the jobs (module-level: the job store pickles references to them) ---------------------

def release_memory() -> None:
    """Collect the cyclic garbage a cycle leaves behind, after every job of the long-running
    scheduler. A run leaves 0.5–1 MB of it (the compiled statements of the run's database
    engine, the site's page closures), and a process that runs a cycle a day reaches Python's
    full collection too rarely: the garbage piled up and fragmented the heap (resident memory
    145 → 481 MiB over 500 soak runs; with this, 125 → 132 MiB over 80). ~60 ms a job. A
    one-shot CLI process has no need of it: it exits."""
    gc.collect()


def _releasing_memory(job: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(job)
    def run_job(*args: Any, **kwargs: Any) -> None:
        try:
            job(*args, **kwargs)
        finally:
            release_memory()
    return run_job


@_releasing_memory
def jurisdiction_job(config_path: str | None, code: str) -> None:
    """Run the pipeline for one jurisdiction. Another process holding its lock (a manual
    ``schedwatch run``) is not a failure: the run is skipped."""
    from scheduler.config import load_settings
    from scheduler.pipeline import run

    log = _log()
    try:
        settings = load_settings(config_path)
        report = run(settings, codes=[code], trigger="scheduler")
    except LockedError as error:
        log.info("%s: skipped: %s", code, error)
        return
    except SchedwatchError as error:
        # A user-fixable problem (config, database): one line, no traceback, and the
        # scheduler carries on with the next job.
        log.error("%s: run failed: %s", code, error)
        return
    for line in report.lines:
        log.info("%s: %s", code, line)
    for line in report.warnings:
        log.warning("%s: %s", code, line)
    changes = len(report.change_ids)
    log.log(logging.INFO if report.exit_code == 0 else logging.WARNING,
            "%s: run %s finished: %d sources, %d change%s, %s", code, report.run_id,
            len(report.outcomes), changes, "" if changes == 1 else "s",
            "all healthy" if report.exit_code == 0 else "some sources FAILED")


def last_complete_week(timezone: str, now: datetime | None = None) -> str:
    """The ISO week before the current one in the reader's zone: the weekly job runs early
    in a week and reports the week that has just ended."""
    from zoneinfo import ZoneInfo

    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone)) - timedelta(days=7)
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


@_releasing_memory
def weekly_report_job(config_path: str | None) -> None:
    """Rebuild the site, write last week's report into it and, when email is configured,
    send it."""
    from scheduler.config import load_settings
    from scrapers.store import Store

    log = _log()
    try:
        settings = load_settings(config_path)
    except SchedwatchError as error:
        log.error("weekly report: %s", error)
        return
    store = Store(settings.data_dir, settings.database_url)
    try:
        from reports.site import publish, write_weekly_report

        week = last_complete_week(settings.scheduler.timezone)
        publish(settings, store)
        path, summary = write_weekly_report(settings, store, week)
        log.info("weekly report written: %s", path)
        if settings.email is not None:
            from reports.outbox import send_weekly

            for line in send_weekly(settings, store, summary):
                log.info("weekly email: %s", line)
    except (SchedwatchError, OSError) as error:
        log.error("weekly report: %s", error)
    finally:
        _close(store)


@_releasing_memory
def outbox_job(config_path: str | None) -> None:
    """Deliver queued email (alerts whose earlier attempts failed temporarily)."""
    from scheduler.config import load_settings
    from scrapers.store import Store

    log = _log()
    try:
        settings = load_settings(config_path)
    except SchedwatchError as error:
        log.error("outbox: %s", error)
        return
    if settings.email is None:
        # Email may be configured later; the settings are read again on every run.
        log.debug("outbox: no [email] configured; nothing to deliver")
        return
    store = Store(settings.data_dir, settings.database_url)
    try:
        from reports.outbox import deliver_outbox

        for line in deliver_outbox(settings, store):
            log.info("outbox: %s", line)
    except (SchedwatchError, OSError) as error:
        log.error("outbox: %s", error)
    finally:
        _close(store)


def heartbeat_job(store: Store, started_at: str) -> None:
    """Record that the scheduler is alive, with its next persistent job (in memory only)."""
    from scrapers.db import DatabaseError

    detail = f"running since {started_at}"
    try:
        # Read from the database, not through the scheduler: APScheduler 3.x holds its job
        # store lock while shutdown() waits for running jobs, so a job calling
        # scheduler.get_jobs() at that moment would deadlock the shutdown.
        upcoming = [(when, job_id) for job_id, _trigger, when in _stored_jobs(store)
                    if when is not None]
        if upcoming:
            when, job_id = min(upcoming)
            detail += f"; next: {job_id} at {when.isoformat()}"
        store.beat(HEARTBEAT, now=_now_utc(), detail=detail)
    except (SchedwatchError, DatabaseError) as error:
        # A busy or briefly unavailable database must not stop the scheduler; the next beat
        # tries again, and a stale heartbeat is what monitoring looks for.
        _log().warning("heartbeat not recorded: %s", " ".join(str(error).split())[:300])


# --- listing ------------------------------------------------------------------------------

def _iso(moment: datetime | None, zone: Any) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


def _row(job_id: str, trigger: Any, next_run: datetime | None, zone: ZoneInfo, *,
         stored: bool, configured: bool) -> dict[str, Any]:
    return {"id": job_id, "trigger": str(trigger),
            "timezone": str(getattr(trigger, "timezone", zone)),
            "next_run_time": _iso(next_run, zone), "next_run_time_utc": _iso(next_run, UTC),
            "stored": stored, "configured": configured}


def _stored_jobs(store: Store) -> list[tuple[str, Any, datetime | None]]:
    """(id, trigger, next run time) of each stored job, read without a running scheduler and
    without changing anything (``get_all_jobs`` would delete a job it cannot unpickle), and
    through the store's own connection: ``schedwatch jobs`` does not import SQLAlchemy."""
    with store.db.connect() as conn:
        if JOBS_TABLE not in conn.tables():
            return []
        rows = [(row["id"], bytes(row["job_state"])) for row in conn.rows(
            f"SELECT id, job_state FROM {JOBS_TABLE} ORDER BY next_run_time")]
    jobs: list[tuple[str, Any, datetime | None]] = []
    for job_id, job_state in rows:
        try:
            # Our own database, written by APScheduler in this program; as trusted as the
            # job store itself, which unpickles the same bytes.
            state = pickle.loads(job_state)  # noqa: S301
            jobs.append((job_id, state["trigger"], state["next_run_time"]))
        except Exception:  # noqa: BLE001 - an unreadable job is shown, not fatal
            jobs.append((job_id, "unreadable (replaced at the next scheduler start)", None))
    return jobs


def list_jobs(settings: Settings, *, now: datetime | None = None
              ) -> tuple[list[dict[str, Any]], str | None]:
    """The scheduled jobs and the last heartbeat time (``None``: never), without starting a
    scheduler.

    Each row: ``id``, ``trigger`` (``cron[15 6 * * *]``), ``timezone``, ``next_run_time``
    (ISO 8601 in the configured zone), ``next_run_time_utc``, ``stored`` (False: computed from
    the configuration because the scheduler has not stored it yet) and ``configured`` (False:
    a stored job the next scheduler start will remove). ``now`` is for computed rows.
    """
    from scrapers.store import Store

    zone = scheduler_zone(settings)
    specs = job_specs(settings)
    store = Store(settings.data_dir, settings.database_url, readonly=True)
    try:
        stored = _stored_jobs(store)
        beat = store.heartbeat(HEARTBEAT)
    finally:
        _close(store)
    by_id = {job_id: (trigger, next_run) for job_id, trigger, next_run in stored}
    wanted = {spec.id for spec in specs}
    moment = now or datetime.now(zone)
    rows: list[dict[str, Any]] = []
    for spec in specs:
        if spec.id in by_id:
            trigger, next_run = by_id[spec.id]
            rows.append(_row(spec.id, trigger, next_run, zone, stored=True, configured=True))
        else:
            rows.append(_row(spec.id, spec.trigger, spec.trigger.get_next_fire_time(None, moment),
                             zone, stored=False, configured=True))
    for job_id, trigger, next_run in stored:
        if job_id not in wanted:
            rows.append(_row(job_id, trigger, next_run, zone, stored=True, configured=False))
    return rows, (str(beat["at"]) if beat else None)
