"""The store: the only database and disk code of schedwatch.

SQLAlchemy Core on SQLite (``<data_dir>/schedwatch.db``, or any ``database_url``). Raw
documents are content-addressed by sha256 under ``<data_dir>/documents/`` and written once.
Status history is kept as intervals (``valid_from``/``valid_to``): an unchanged day adds no
row. A run's writes go through one ``RunWriter`` in one transaction, so a crash mid-run
leaves the previous state intact; document files are written before that transaction and
are harmless if the run dies (content-addressed, written atomically).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from scrapers.clock import parse_stamp, stamp, utcnow  # noqa: F401 - re-exported
from scrapers.errors import StoreError
from scrapers.locks import LOCK_NAMESPACE, advisory_lock, file_lock
from scrapers.locks import lock_key as _lock_key
from scrapers.records import PendingItem, ScheduledAction, StatusRecord
from scrapers.rows import (  # noqa: F401 - the row shapes, re-exported for their readers
    PendingRow,
    Prior,
    SourceState,
    StatusInterval,
    StoredAction,
    StoredChange,
    action_values,
)
from scrapers.schema import (  # noqa: F401 - the tables, re-exported
    ACTION_KEY,
    _add_missing_columns,
    changes,
    documents,
    fetches,
    heartbeats,
    metadata,
    outbox,
    pending,
    runs,
    scheduling_actions,
    select_actions,
    source_state,
    status,
)

#: How long an outbox mark waits for a locked database (SQLite) before giving up.
MARK_WAIT_SECONDS = 30.0


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class Store:
    """Opens (and creates) the database and the document archive under ``data_dir``.

    ``readonly=True`` (or ``Store.open_for_reading``) is for the reading commands: it creates
    no folder, table or file, opens SQLite with ``mode=ro`` (``immutable=1`` when the folder
    is not writable and no writer has the database open) and works on a copy or a folder the
    user may only read. A missing or empty database reads as "no data yet".
    """

    def __init__(self, data_dir: Path, database_url: str | None = None, *,
                 readonly: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.documents_dir = self.data_dir / "documents"
        self.readonly = readonly
        self._open_handle: IO[str] | None = None
        self.url = database_url or f"sqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"
        self.database_path = _sqlite_path(self.url)
        if readonly:
            self.engine: Engine = self._reading_engine()
            return
        self._prepare_folder()
        self.engine = self._create_engine()
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open_for_reading(cls, data_dir: Path, database_url: str | None = None) -> Store:
        return cls(data_dir, database_url, readonly=True)

    def _safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _create_engine(self, **options: Any) -> Engine:
        try:
            url = sa.engine.make_url(self.url)
            if url.get_backend_name() != "sqlite":
                # A long-lived scheduler outlives server restarts: test each pooled
                # connection before use.
                options.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(url, **options)
        except (ImportError, sa.exc.NoSuchModuleError) as error:
            hint = (" (pip install 'schedwatch[postgres]')" if "postgres" in self.url else "")
            raise StoreError(f"cannot open the database {self._safe_url()}: its driver is "
                             f"not installed: {error}{hint}") from None
        except sa.exc.ArgumentError as error:
            raise StoreError(f"database_url is not a database URL ({error})") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _prepare_folder(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the data folder {self.data_dir} "
                             f"({error.strerror}); set data_dir to a writable folder") from None
        problem = _not_writable(self.data_dir)
        if problem is None and self.database_path is not None and \
                self.database_path.exists() and not os.access(self.database_path, os.W_OK):
            problem = f"{self.database_path.name} is read-only"
        if problem is None:
            try:
                self.documents_dir.mkdir(exist_ok=True)
                (self.data_dir / "locks").mkdir(exist_ok=True)
            except OSError as error:
                problem = error.strerror or type(error).__name__
        if problem is not None:
            raise StoreError(f"data_dir {self.data_dir} is not writable ({problem}); the "
                             "reading commands (status, changes, history, sources, jobs) "
                             "work on it, this one needs write access")

    def _create_schema(self) -> None:
        """Create the tables once, under a lock: four processes opening a brand-new data
        folder at once would otherwise race to "CREATE TABLE" (issue 16, item 12)."""
        if self.database_path is not None:
            if (not self.database_path.exists() or self.database_path.stat().st_size == 0):
                self._refuse_if_documents_exist()
            with self._file_lock_blocking("schema"):
                self._check_after_unclean_stop()
                self._create_tables(None)
            return
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    # Held to the end of this transaction; DDL is transactional there.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(CAST(:ns AS integer), "
                                         "CAST(:key AS integer))"),
                                 {"ns": LOCK_NAMESPACE, "key": _lock_key("schema")})
                self._create_tables(conn)
        except sa.exc.SQLAlchemyError as error:
            raise self._open_error(error) from None

    def _create_tables(self, conn: Connection | None) -> None:
        try:
            with contextlib.ExitStack() as stack:
                if conn is None:
                    conn = stack.enter_context(self.engine.begin())
                if not sa.inspect(conn).has_table(runs.name):
                    self._refuse_if_documents_exist()
                metadata.create_all(conn)
                _add_missing_columns(conn)
        except sa.exc.SQLAlchemyError as error:
            raise self._open_error(error) from None

    def _open_error(self, error: sa.exc.SQLAlchemyError) -> StoreError:
        detail = _first_line(error)
        if _is_damage(detail):
            return self._damaged(detail)
        if "readonly database" in detail or "read-only" in detail:
            return StoreError(f"data_dir {self.data_dir} is not writable ({detail}); the "
                              "reading commands (status, changes, history, sources, jobs) "
                              "work on it, this one needs write access")
        return StoreError(f"cannot open the database {self._safe_url()}: "
                          f"{type(getattr(error, 'orig', None) or error).__name__}: {detail}; "
                          "check data_dir / database_url")

    def _damaged(self, detail: str) -> StoreError:
        where = self.database_path or self._safe_url()
        return StoreError(
            f"the database {where} is damaged ({detail}); schedwatch will not use it. Keep a "
            "copy of the data folder, then restore schedwatch.db from a backup, or recover "
            "what SQLite can read: sqlite3 schedwatch.db .recover | sqlite3 recovered.db, "
            "and put recovered.db in its place")

    def _has_archived_documents(self) -> bool:
        try:
            for folder in self.documents_dir.iterdir():
                if folder.is_dir() and any(not f.name.startswith(".")
                                           for f in folder.iterdir()):
                    return True
        except OSError:
            return False
        return False

    def _refuse_if_documents_exist(self) -> None:
        """An empty (zero-byte, deleted or replaced) database beside an archive of documents
        is a lost database, not a first run: a new baseline would hide the history and the
        next publish would delete the published change pages (issue 16, item 13)."""
        if not self._has_archived_documents():
            return
        where = self.database_path or self._safe_url()
        raise StoreError(
            f"the database {where} is empty, but {self.documents_dir} holds archived "
            "documents: it was deleted, truncated or replaced, and a new baseline would hide "
            "the recorded history. Restore schedwatch.db from a backup; to start over on "
            "purpose, move the whole data folder aside (or rebuild the history from the "
            "regulators' point-in-time versions with `schedwatch backfill` in an empty one)")

    def _check_after_unclean_stop(self) -> None:
        """``PRAGMA quick_check`` when the database was left by a process that did not close
        it: no other process has it open (the shared lock on ``locks/open.lock``) and yet a
        write-ahead log remains, which SQLite deletes when the last connection closes. A
        damaged database is refused instead of being written on."""
        assert self.database_path is not None
        handle = open(self.data_dir / "locks" / "open.lock", "a+")  # noqa: SIM115 - held open
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(handle, fcntl.LOCK_SH)  # held while this store is open
        self._open_handle = handle
        wal = self.database_path.with_name(self.database_path.name + "-wal")
        if not alone or not wal.exists() or wal.stat().st_size == 0:
            return
        try:
            with self.engine.connect() as conn:
                result = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA quick_check")]
        except sa.exc.SQLAlchemyError as error:
            raise self._damaged(_first_line(error)) from None
        if result != ["ok"]:
            raise self._damaged("PRAGMA quick_check: " + "; ".join(result[:3]))

    @contextlib.contextmanager
    def _file_lock_blocking(self, name: str, timeout: float = 60.0) -> Iterator[None]:
        with open(self.data_dir / "locks" / f"{name}.lock", "a+") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"another schedwatch process kept {name}.lock in "
                                         f"{self.data_dir / 'locks'} for {timeout:.0f} s; "
                                         "try again") from None
                    time.sleep(0.02)
            yield

    def _reading_engine(self) -> Engine:
        """An engine that cannot write: SQLite read-only (see the class docstring), or the
        server's read-only transactions. With no schedwatch tables yet, an empty in-memory
        schema, so that every reading command says "no data" rather than failing."""
        if self.database_path is None:
            engine = self._create_engine(connect_args=(
                {"options": "-c default_transaction_read_only=on"}
                if self.url.startswith("postgresql") else {}))
            try:
                with engine.connect() as conn:
                    present = sa.inspect(conn).has_table(runs.name)
            except sa.exc.SQLAlchemyError as error:
                engine.dispose()
                raise self._open_error(error) from None
            if present:
                return engine
            engine.dispose()
            return _empty_engine()
        path = self.database_path
        if not path.is_file() or path.stat().st_size == 0:
            return _empty_engine()
        uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        if _not_writable(path.parent) is not None and not (wal.exists() and shm.exists()):
            # A read-only folder where no writer has the database open: SQLite cannot create
            # the -shm file a WAL reader needs, and nothing can change under us.
            uri += "&immutable=1"

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA query_only=ON")
            return connection

        engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                present = sa.inspect(conn).has_table(runs.name)
        except sa.exc.SQLAlchemyError as error:
            raise self._open_error(error) from None
        return engine if present else _empty_engine()

    def close(self) -> None:
        self.engine.dispose()
        if self._open_handle is not None:
            self._open_handle.close()
            self._open_handle = None

    # --- documents ----------------------------------------------------------------------

    def archive(self, content: bytes) -> tuple[str, Path]:
        """Write the bytes once under documents/<aa>/<sha256>; return (sha256, path)."""
        sha = hashlib.sha256(content).hexdigest()
        path = self.document_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return sha, path

    def document_path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise StoreError(f"not a sha256: {sha256[:80]!r}")
        return self.documents_dir / sha256[:2] / sha256

    def read_document(self, sha256: str) -> bytes:
        return self.document_path(sha256).read_bytes()

    def document_info(self, sha256: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(documents).where(documents.c.sha256 == sha256)).first()
        return dict(row._mapping) if row else None

    def storage_error(self, error: OSError) -> str:
        """The one line for a document that could not be archived (a full disk above all)."""
        if error.errno == errno.ENOSPC:
            try:
                free = shutil.disk_usage(self.documents_dir).free // (1024 * 1024)
            except OSError:
                free = 0
            return (f"the data folder {self.data_dir} is full: {free} MB free; free some "
                    "space (the last known status is kept)")
        return (f"the document could not be archived under {self.documents_dir} "
                f"({error.strerror or type(error).__name__}); check the data folder")

    def has_document_file(self, sha256: str) -> bool:
        """Whether the archived copy of a document is still on disk (a deleted copy must be
        fetched again in full, never answered by a 304)."""
        return self.document_path(sha256).is_file()

    # --- the site's state ---------------------------------------------------------------

    def _site_behind_marker(self) -> Path:
        return self.data_dir / "site-behind"

    def mark_site_behind(self) -> None:
        """Before publishing: if the publish dies (killed, disk full, lock timeout) the
        marker stays, and the next run publishes even when nothing changed."""
        with contextlib.suppress(OSError):
            self._site_behind_marker().touch()

    def clear_site_behind(self) -> None:
        with contextlib.suppress(OSError):
            self._site_behind_marker().unlink()

    def site_behind(self) -> bool:
        return self._site_behind_marker().exists()

    # --- reads --------------------------------------------------------------------------

    def source_states(self) -> dict[str, SourceState]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(source_state)).mappings().all()
        return {row["source_id"]: SourceState.from_row(row) for row in rows}

    def source_state(self, source_id: str) -> SourceState | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(source_state).where(
                source_state.c.source_id == source_id)).mappings().first()
        return SourceState.from_row(row) if row else None

    def current_intervals(self, source_id: str | None = None) -> list[StatusInterval]:
        query = sa.select(status).where(status.c.valid_to.is_(None))
        if source_id is not None:
            query = query.where(status.c.source_id == source_id)
        return self._intervals(query.order_by(status.c.jurisdiction, status.c.substance,
                                              status.c.source_id))

    def current_records(self, source_id: str) -> list[StatusRecord]:
        return [interval.record for interval in self.current_intervals(source_id)]

    def status_as_of(self, day: date) -> list[StatusInterval]:
        """The law on ``day``: per (source, substance) the interval whose legal span holds
        that day (of two, the later observation). An open interval whose held date passed
        before ``day`` (no run since) still answers; the reader applies its dates."""
        at = day.isoformat()
        query = sa.select(status).where(status.c.legal_from <= at).order_by(
            status.c.jurisdiction, status.c.substance, status.c.source_id,
            status.c.valid_from, status.c.id)
        chosen: dict[tuple[str, str], StatusInterval] = {}
        for interval in self._intervals(query):
            record = interval.record
            key = (record.source_id, record.substance)
            holds = interval.legal_to is None or interval.legal_to > at
            if holds or (interval.valid_to is None and key not in chosen):
                chosen[key] = interval
        return sorted(chosen.values(), key=lambda i: (i.record.jurisdiction,
                                                      i.record.substance, i.record.source_id))

    def earliest_evidence(self) -> str | None:
        """The earliest legal date any stored interval speaks for."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.min(status.c.legal_from))).scalar()
        return str(value) if value else None

    def prior(self, source_ids: Sequence[str], *, since: datetime) -> Prior:
        """Everything a run decides from, for these sources, in one read."""
        chosen = list(source_ids)
        states = {k: v for k, v in self.source_states().items() if k in chosen}
        current: dict[str, list[StatusInterval]] = {sid: [] for sid in chosen}
        query = sa.select(status).where(status.c.valid_to.is_(None)).where(
            status.c.source_id.in_(chosen)).order_by(status.c.substance)
        for interval in self._intervals(query):
            current[interval.record.source_id].append(interval)
        pending_rows: dict[str, list[PendingRow]] = {sid: [] for sid in chosen}
        for row in self.pending_items(open_only=False):
            if row.item.source_id in pending_rows:
                pending_rows[row.item.source_id].append(row)
        recent: dict[tuple[str, str], list[StoredChange]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(changes).where(changes.c.source_id.in_(chosen)).where(
                changes.c.detected_at >= stamp(since)).where(changes.c.kind != "pending").where(
                changes.c.substance.is_not(None)).order_by(changes.c.id.desc())).mappings().all()
            last_run = conn.execute(sa.select(sa.func.max(runs.c.started_at)).where(
                runs.c.finished_at.is_not(None))).scalar()
        for change_row in rows:
            found = recent.setdefault((change_row["source_id"], change_row["substance"]), [])
            if len(found) < 2:
                found.append(StoredChange.from_row(change_row))
        return Prior(states=states,
                     current={k: tuple(v) for k, v in current.items()},
                     pending={k: tuple(v) for k, v in pending_rows.items()},
                     recent={k: tuple(v) for k, v in recent.items()},
                     last_run_started_at=str(last_run) if last_run else None)

    def history(self, substance: str | None = None) -> list[StatusInterval]:
        query = sa.select(status)
        if substance is not None:
            query = query.where(status.c.substance == substance)
        return self._intervals(query.order_by(status.c.jurisdiction, status.c.source_id,
                                              status.c.valid_from))

    def _intervals(self, query: sa.Select[Any]) -> list[StatusInterval]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            confirmed = {row.source_id: (row.last_healthy_at, row.last_document_sha256)
                         for row in conn.execute(sa.select(
                             source_state.c.source_id, source_state.c.last_healthy_at,
                             source_state.c.last_document_sha256))}
        intervals = []
        for row in rows:
            at, sha = row["last_confirmed_at"], row["last_document_sha256"]
            if row["valid_to"] is None:
                latest = confirmed.get(row["source_id"])
                if latest and latest[0] and latest[1] and latest[0] >= at:
                    at, sha = latest
            intervals.append(StatusInterval(
                id=row["id"], record=StatusRecord.from_dict(json.loads(row["record"])),
                valid_from=row["valid_from"], valid_to=row["valid_to"], last_confirmed_at=at,
                last_document_sha256=sha, legal_from=row["legal_from"],
                legal_to=row["legal_to"], backfilled=bool(row["backfilled"])))
        return intervals

    def changes(self, since: datetime | None = None, *, until: datetime | None = None,
                kinds: Sequence[str] | None = None, ids: Sequence[int] | None = None,
                limit: int | None = None, newest_first: bool = False) -> list[StoredChange]:
        query = sa.select(changes)
        if since is not None:
            query = query.where(changes.c.detected_at >= stamp(since))
        if until is not None:
            query = query.where(changes.c.detected_at < stamp(until))
        if kinds is not None:
            query = query.where(changes.c.kind.in_(list(kinds)))
        if ids is not None:
            query = query.where(changes.c.id.in_(list(ids)))
        order = changes.c.id.desc() if newest_first else changes.c.id
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [StoredChange.from_row(row) for row in rows]

    def recent_changes(self, source_id: str, substance: str, *, since: datetime,
                       limit: int = 2) -> list[StoredChange]:
        """The newest changes of one substance in one source since ``since``, newest first."""
        query = sa.select(changes).where(changes.c.source_id == source_id).where(
            changes.c.substance == substance).where(
            changes.c.detected_at >= stamp(since)).where(changes.c.kind != "pending").order_by(
            changes.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [StoredChange.from_row(row) for row in rows]

    def actions(self, substance: str | None = None,
                jurisdiction: str | None = None) -> list[StoredAction]:
        """The stored scheduling actions, oldest first (none in a store made before them)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(scheduling_actions.name):
                return []
            rows = conn.execute(select_actions(substance, jurisdiction)).mappings().all()
        return [StoredAction.from_row(row) for row in rows]

    def pending_items(self, *, open_only: bool = True,
                      source_id: str | None = None) -> list[PendingRow]:
        query = sa.select(pending)
        if open_only:
            query = query.where(pending.c.resolved_at.is_(None))
        if source_id is not None:
            query = query.where(pending.c.source_id == source_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(pending.c.id)).mappings().all()
        return [PendingRow(id=row["id"], item=PendingItem.from_dict(json.loads(row["item"])),
                           first_seen_at=row["first_seen_at"], last_seen_at=row["last_seen_at"],
                           resolved_at=row["resolved_at"]) for row in rows]

    def fetch_log(self, since: datetime | None = None, until: datetime | None = None,
                  source_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(fetches)
        if since is not None:
            query = query.where(fetches.c.started_at >= stamp(since))
        if until is not None:
            query = query.where(fetches.c.started_at < stamp(until))
        if source_id is not None:
            query = query.where(fetches.c.source_id == source_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(fetches.c.id)).mappings()]

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                sa.select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings()]

    # --- writes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, started_at: datetime, jurisdictions: Sequence[str],
                    trigger: str = "cli") -> Iterator[RunWriter]:
        """One run's writes. Commits on success, rolls back on any exception."""
        if self.readonly:
            raise StoreError("this store was opened for reading only")
        try:
            with self.engine.begin() as conn:
                inserted = conn.execute(runs.insert().values(
                    started_at=stamp(started_at), trigger=trigger,
                    jurisdictions=",".join(jurisdictions))).inserted_primary_key
                assert inserted is not None
                run_id = inserted[0]
                yield RunWriter(conn, int(run_id))
        except sa.exc.DatabaseError as error:
            detail = _first_line(error)
            if _is_damage(detail):
                raise self._damaged(detail) from None
            if not isinstance(error, sa.exc.OperationalError):
                raise
            raise StoreError(f"the database {self._safe_url()} could not be written "
                             f"({detail}); nothing of this run was "
                             "stored, the previous state is intact") from None

    # outbox ---------------------------------------------------------------------------

    def outbox_due(self, now: datetime) -> list[dict[str, Any]]:
        query = sa.select(outbox).where(outbox.c.state == "queued").where(
            sa.or_(outbox.c.next_attempt_at.is_(None),
                   outbox.c.next_attempt_at <= stamp(now))).order_by(outbox.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def outbox_rows(self, state: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(outbox)
        if state is not None:
            query = query.where(outbox.c.state == state)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(outbox.c.id)).mappings()]

    def enqueue(self, *, idempotency_key: str, kind: str, recipient: str,
                change_ids: Sequence[int], reference: str | None = None,
                now: datetime | None = None) -> bool:
        """Queue a message once: a second call with the same key does nothing (False)."""
        with self.engine.begin() as conn:
            return _insert_once(conn, _outbox_row(idempotency_key, kind, recipient, change_ids,
                                                  reference, now or utcnow()))

    def mark_delivered_many(self, outbox_ids: Sequence[int], *, message_id: str,
                            now: datetime) -> None:
        """All rows carried by one accepted message, marked in one transaction. A locked
        database is waited for (``MARK_WAIT_SECONDS``, with backoff); after that the mark is
        noted in ``outbox-delivered.jsonl`` (applied by ``settle_delivered`` before the next
        pass sends anything, so the message is not sent again) and StoreError is raised."""
        ids = [int(i) for i in outbox_ids]
        try:
            self._retry_locked(lambda conn: conn.execute(
                _delivered(ids, message_id=message_id, at=stamp(now))))
        except sa.exc.OperationalError as error:
            with open(self._marks_journal, "a", encoding="utf-8") as journal:
                journal.write(json.dumps({"ids": ids, "message_id": message_id,
                                          "at": stamp(now)}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
            raise StoreError(f"the database stayed locked for {MARK_WAIT_SECONDS:g} s "
                             f"({_first_line(error)}); the delivery is noted in "
                             f"{self._marks_journal} and marked at the next delivery, the "
                             "message is not sent again") from None

    @property
    def _marks_journal(self) -> Path:
        return self.data_dir / "outbox-delivered.jsonl"

    def settle_delivered(self) -> set[int]:
        """Apply the deliveries noted while the database was locked; returns the ids still
        not marked (the deliverer must not send them again)."""
        path = self._marks_journal
        if not path.is_file():
            return set()
        notes = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        try:
            for note in notes:
                self._retry_locked(lambda conn, n=note: conn.execute(
                    _delivered(n["ids"], message_id=n["message_id"], at=n["at"]).where(
                        outbox.c.state != "delivered")))
        except sa.exc.OperationalError:
            return {int(i) for note in notes for i in note["ids"]}
        path.unlink()
        return set()

    def _retry_locked(self, write: Any) -> None:
        """Run ``write(conn)`` in a transaction; while SQLite says the database is locked
        or busy, try again with a growing pause until ``MARK_WAIT_SECONDS`` have passed."""
        deadline, pause = time.monotonic() + MARK_WAIT_SECONDS, 0.05
        while True:
            left = deadline - time.monotonic()
            try:
                with self.engine.begin() as conn:
                    if self.engine.dialect.name == "sqlite":  # each try waits ≤ its pause
                        wait_ms = int(min(max(left, 0), pause * 4) * 1000)
                        conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
                    try:
                        write(conn)
                    finally:
                        if self.engine.dialect.name == "sqlite":
                            conn.exec_driver_sql("PRAGMA busy_timeout=30000")
                return
            except sa.exc.OperationalError as error:
                text = str(error).lower()
                if ("locked" not in text and "busy" not in text) or left <= 0:
                    raise
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 2.0)

    def requeue_failed(self, now: datetime) -> int:
        """Put permanently failed messages back in the queue (after the cause was fixed, e.g.
        a wrong password); returns how many. Delivered messages are never requeued."""
        with self.engine.begin() as conn:
            return int(conn.execute(outbox.update().where(outbox.c.state == "failed").values(
                state="queued", attempts=0, next_attempt_at=stamp(now))).rowcount or 0)

    def mark_attempt_failed(self, outbox_id: int, *, error: str, permanent: bool,
                            next_attempt_at: datetime | None) -> None:
        try:
            self._retry_locked(lambda conn: conn.execute(outbox.update().where(
                outbox.c.id == outbox_id).values(
                state="failed" if permanent else "queued", last_error=error[:500],
                attempts=outbox.c.attempts + 1,
                next_attempt_at=stamp(next_attempt_at) if next_attempt_at else None)))
        except sa.exc.OperationalError as failure:
            raise StoreError(f"the database stayed locked for {MARK_WAIT_SECONDS:g} s "
                             f"({_first_line(failure)}); the failed attempt is not recorded "
                             "and the message is tried again") from None

    # heartbeat ------------------------------------------------------------------------

    def beat(self, name: str, *, now: datetime, detail: str | None = None) -> None:
        with self.engine.begin() as conn:
            values = dict(at=stamp(now), pid=os.getpid(), detail=detail)
            updated = conn.execute(heartbeats.update().where(heartbeats.c.name == name)
                                   .values(**values)).rowcount
            if not updated:
                conn.execute(heartbeats.insert().values(name=name, **values))

    def heartbeat(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(heartbeats).where(heartbeats.c.name == name)).first()
        return dict(row._mapping) if row else None

    def integrity_check(self) -> str:
        with self.engine.connect() as conn:
            if self.engine.dialect.name != "sqlite":
                return "ok"
            return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar())

    # locks ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, holder: str = "") -> Iterator[None]:
        """An exclusive, non-blocking lock; LockedError (naming the holder) when taken.

        On SQLite a file lock beside the database (``locks/<name>.lock``): the kernel drops
        it when the process dies, so a crash never leaves it stuck. On a database server it
        is a lock of that database (``pg_try_advisory_lock`` on a connection held for the
        lock's duration), so two trackers on two machines sharing one database never do the
        same work at once; the server drops it when the holder's connection goes."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise StoreError(f"bad lock name {name!r}")
        if self.engine.dialect.name == "postgresql":
            with advisory_lock(self.engine, name, holder, self._open_error):
                yield
            return
        with file_lock(self.data_dir / "locks", name, holder):
            yield

    # --- backfill (``schedwatch backfill``): the regulators' archives --------------------

    def source_intervals(self, source_id: str) -> list[StatusInterval]:
        """Every interval of one source, backfilled or observed, oldest observation first."""
        return self._intervals(sa.select(status).where(status.c.source_id == source_id)
                               .order_by(status.c.valid_from, status.c.id))

    def add_backfilled_interval(self, writer: RunWriter, record: StatusRecord, *,
                                at: datetime, legal_from: str, legal_to: str | None,
                                last_document_sha256: str, is_open: bool) -> None:
        """One interval read from an archive (``backfilled`` = 1), observed at ``at`` (the
        backfill run), with its legal span and the last archived version that confirmed it.
        ``is_open``: the current status of a source with no observed data yet."""
        when = stamp(at)
        writer.conn.execute(status.insert().values(
            jurisdiction=record.jurisdiction, substance=record.substance,
            source_id=record.source_id, valid_from=when, valid_to=None if is_open else when,
            status=record.status, schedule=record.schedule, record=_dumps(record.as_dict()),
            last_confirmed_at=when, last_document_sha256=last_document_sha256,
            legal_from=legal_from, legal_to=legal_to, backfilled=1))

    def rewrite_interval_record(self, writer: RunWriter, interval_id: int,
                                record: StatusRecord) -> None:
        """Rewrite one interval's record in place (an observed interval whose status the
        archive shows held earlier: its ``in_force_since`` moves back; nothing else)."""
        writer.conn.execute(status.update().where(status.c.id == interval_id).values(
            record=_dumps(record.as_dict())))


def _delivered(ids: Sequence[int], *, message_id: str, at: str) -> Any:
    """The update marking outbox rows delivered by one accepted message."""
    return outbox.update().where(outbox.c.id.in_(list(ids))).values(
        state="delivered", delivered_at=at, message_id=message_id,
        attempts=outbox.c.attempts + 1, last_error=None)


DATABASE_FILE = "schedwatch.db"
def _sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for a server or an in-memory database)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _not_writable(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None: it can). Tried, not ``os.access``:
    root passes that test on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test-"):
            return None
    except OSError as error:
        return error.strerror or type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_damage(detail: str) -> bool:
    return any(word in detail for word in ("malformed", "file is not a database",
                                           "database disk image"))


def _empty_engine() -> Engine:
    """An in-memory database with the schema and no rows: what a reader sees before the
    first run, without creating anything on disk."""
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                              connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    return engine


def _outbox_row(idempotency_key: str, kind: str, recipient: str, change_ids: Sequence[int],
                reference: str | None, now: datetime) -> dict[str, Any]:
    return dict(idempotency_key=idempotency_key, kind=kind, recipient=recipient,
                change_ids=_dumps(list(change_ids)), reference=reference,
                created_at=stamp(now), state="queued")


def _insert_once(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert an outbox row unless its idempotency key is there. ON CONFLICT DO NOTHING,
    not look-then-insert: two processes on a server database queue the same alert at once
    without either failing on the unique key."""
    return bool(_insert_ignoring_duplicates(conn, outbox, values, ["idempotency_key"]))


def _insert_ignoring_duplicates(conn: Connection, table: sa.Table, values: dict[str, Any],
                                keys: Sequence[str]) -> int:
    name = conn.dialect.name
    if name == "postgresql":
        # Imported here: the PostgreSQL dialect pulls asyncio in, on every start otherwise.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        # RETURNING: with psycopg the row count of a skipped insert is not reliable.
        return len(conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing(
            index_elements=list(keys)).returning(table.c[keys[0]])).all())
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement: Any = sqlite_insert(table).values(**values).on_conflict_do_nothing(
            index_elements=list(keys))
    else:
        exists = conn.execute(sa.select(*[table.c[k] for k in keys]).where(
            *[table.c[k] == values[k] for k in keys])).first()
        if exists:
            return 0
        statement = table.insert().values(**values)
    return int(conn.execute(statement).rowcount or 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout first: switching a brand-new file to WAL takes a lock that another
    # process opening it at the same moment must wait for, not fail on.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class RunWriter:
    """All writes of one run, inside the transaction opened by ``Store.transaction``."""

    def __init__(self, conn: Connection, run_id: int) -> None:
        self.conn = conn
        self.run_id = run_id

    def add_document(self, *, sha256: str, size: int, media_type: str | None, source_id: str,
                     url: str, seen_at: datetime, path: str) -> None:
        # Two jurisdictions' runs may archive the same bytes at once on a server database.
        _insert_ignoring_duplicates(self.conn, documents, dict(
            sha256=sha256, size=size, media_type=media_type, source_id=source_id, url=url,
            first_seen_at=stamp(seen_at), path=path), ["sha256"])

    def add_fetch(self, *, source_id: str, started_at: datetime, url: str, outcome: str,
                  final_url: str | None = None, error_kind: str | None = None,
                  error: str | None = None, http_status: int | None = None,
                  document_sha256: str | None = None, elapsed_ms: int | None = None) -> None:
        self.conn.execute(fetches.insert().values(
            run_id=self.run_id, source_id=source_id, started_at=stamp(started_at), url=url,
            final_url=final_url, outcome=outcome, error_kind=error_kind,
            error=error[:1000] if error else None, http_status=http_status,
            document_sha256=document_sha256, elapsed_ms=elapsed_ms))

    def save_source_state(self, state: SourceState) -> None:
        values = dict(
            jurisdiction=state.jurisdiction, health=state.health,
            failing_since=state.failing_since, consecutive_failures=state.consecutive_failures,
            last_error=state.last_error, last_attempt_at=state.last_attempt_at,
            last_healthy_at=state.last_healthy_at,
            last_document_sha256=state.last_document_sha256, last_url=state.last_url,
            etag=state.etag, last_modified=state.last_modified, marker=state.marker,
            watch_keys=_dumps(list(state.watch_keys)) if state.watch_keys is not None else None,
            document_dates=_dumps([list(p) for p in state.document_dates]),
            document_meta=_dumps(dict(state.document_meta)), title=state.title,
            instrument=state.instrument)
        updated = self.conn.execute(source_state.update().where(
            source_state.c.source_id == state.source_id).values(**values)).rowcount
        if not updated:
            self.conn.execute(source_state.insert().values(source_id=state.source_id, **values))

    def open_intervals(self, records: Sequence[StatusRecord], *, at: datetime,
                       spans: Sequence[tuple[str, str | None]] | None = None,
                       closed: bool = False, backfilled: bool = False) -> None:
        """New intervals from ``at``, in one executemany (thousands with watch = "all").
        ``spans``: each record's (legal from, legal to); by default from the date its
        document speaks for. ``closed``: a past legal segment, observed now and over."""
        if not records:
            return
        when = stamp(at)
        legal = spans if spans is not None else [
            (r.in_force_since or r.evidence_date or r.retrieved_at[:10], None) for r in records]
        self.conn.execute(status.insert(), [dict(
            jurisdiction=record.jurisdiction, substance=record.substance,
            source_id=record.source_id, valid_from=when, valid_to=when if closed else None,
            status=record.status, schedule=record.schedule, record=_dumps(record.as_dict()),
            last_confirmed_at=when, last_document_sha256=record.document_sha256,
            legal_from=start, legal_to=end, backfilled=int(backfilled))
            for record, (start, end) in zip(records, legal, strict=True)])

    def open_interval(self, record: StatusRecord, *, at: datetime) -> None:
        self.open_intervals([record], at=at)

    def close_intervals(self, source_id: str, substances: Sequence[str], *, at: datetime,
                        confirmed_at: str | None, confirmed_sha256: str | None,
                        legal_to: str | None = None) -> None:
        """End the open intervals of these substances at ``at``, stamping the last healthy
        observation that confirmed them (the source's state until now) and, when given, the
        legal date their status ended."""
        values: dict[str, Any] = {"valid_to": stamp(at)}
        if confirmed_at and confirmed_sha256:
            values.update(last_confirmed_at=confirmed_at, last_document_sha256=confirmed_sha256)
        if legal_to is not None:
            values["legal_to"] = legal_to
        chosen = list(dict.fromkeys(substances))
        for start in range(0, len(chosen), 500):  # SQLite's bound-parameter limit
            self.conn.execute(status.update().where(status.c.source_id == source_id).where(
                status.c.substance.in_(chosen[start:start + 500])).where(
                status.c.valid_to.is_(None)).values(**values))

    def replace_open_record(self, record: StatusRecord) -> None:
        """Rewrite the record of an open interval in place: for a change that is not a
        change of status or wording of a watched substance (a new instrument id for every
        entry of a replaced Poisons Standard), which would otherwise open thousands of
        intervals and changes."""
        self.conn.execute(status.update().where(status.c.source_id == record.source_id).where(
            status.c.substance == record.substance).where(status.c.valid_to.is_(None)).values(
            record=_dumps(record.as_dict())))

    def add_change(self, *, detected_at: datetime, jurisdiction: str, substance: str | None,
                   source_id: str, kind: str, summary: str, before: dict[str, Any] | None,
                   after: dict[str, Any] | None, effective_date: str | None = None,
                   before_sha256: str | None = None, after_sha256: str | None = None,
                   details: dict[str, Any] | None = None, backfilled: bool = False) -> int:
        result = self.conn.execute(changes.insert().values(
            run_id=self.run_id, detected_at=stamp(detected_at), jurisdiction=jurisdiction,
            substance=substance, source_id=source_id, kind=kind, summary=summary,
            before=_dumps(before) if before is not None else None,
            after=_dumps(after) if after is not None else None, effective_date=effective_date,
            before_sha256=before_sha256, after_sha256=after_sha256,
            details=_dumps(details or {}), backfilled=int(backfilled)))
        inserted = result.inserted_primary_key
        assert inserted is not None
        return int(inserted[0])

    def add_actions(self, found: Sequence[ScheduledAction], *, at: datetime,
                    document_sha256: str | None, backfilled: bool = False) -> int:
        """Store dated scheduling actions once each (``ACTION_KEY``: the first reading is
        kept, observed or backfilled); returns how many were new."""
        return sum(_insert_ignoring_duplicates(self.conn, scheduling_actions, action_values(
            action, at=stamp(at), document_sha256=document_sha256, backfilled=backfilled),
            list(ACTION_KEY)) for action in found)

    def open_pending(self, item: PendingItem, *, at: datetime) -> None:
        self.conn.execute(pending.insert().values(
            source_id=item.source_id, key=item.key, jurisdiction=item.jurisdiction,
            substance=item.substance, item=_dumps(item.as_dict()), first_seen_at=stamp(at),
            last_seen_at=stamp(at)))

    def touch_pending(self, pending_id: int, item: PendingItem, *, at: datetime) -> None:
        self.conn.execute(pending.update().where(pending.c.id == pending_id).values(
            last_seen_at=stamp(at), item=_dumps(item.as_dict())))

    def reopen_pending(self, pending_id: int, item: PendingItem, *, at: datetime) -> None:
        self.conn.execute(pending.update().where(pending.c.id == pending_id).values(
            resolved_at=None, last_seen_at=stamp(at), item=_dumps(item.as_dict())))

    def resolve_pending(self, pending_id: int, *, at: datetime) -> None:
        self.conn.execute(pending.update().where(pending.c.id == pending_id).values(
            resolved_at=stamp(at)))

    def enqueue(self, *, idempotency_key: str, kind: str, recipient: str,
                change_ids: Sequence[int], reference: str | None = None,
                now: datetime) -> bool:
        return _insert_once(self.conn, _outbox_row(idempotency_key, kind, recipient, change_ids,
                                                   reference, now))

    def finish(self, *, finished_at: datetime, exit_code: int, summary: Mapping[str, Any]) -> None:
        self.conn.execute(runs.update().where(runs.c.id == self.run_id).values(
            finished_at=stamp(finished_at), exit_code=exit_code, summary=_dumps(dict(summary))))
