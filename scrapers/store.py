"""The store: the only database and disk code of schedwatch.

SQLite (``<data_dir>/schedwatch.db``) or PostgreSQL (``database_url``) through their DB-API
drivers (``scrapers.db``: stdlib ``sqlite3``, ``psycopg``), with the schema declared once in
``scrapers.schema``. Raw
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
import operator
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from scrapers.clock import parse_stamp, stamp, utcnow  # noqa: F401 - re-exported
from scrapers.db import (
    Connection,
    Database,
    DatabaseError,
    DriverMissing,
    OperationalError,
    first_line,
    in_list,
    parse_url,
)
from scrapers.errors import StoreError
from scrapers.locks import LOCK_NAMESPACE, advisory_lock, file_lock
from scrapers.locks import lock_key as _lock_key
from scrapers.outbox_rows import OutboxRows, insert_once, outbox_row
from scrapers.records import PendingItem, ScheduledAction, StatusRecord, record_json
from scrapers.rows import (  # noqa: F401 - the row shapes, re-exported for their readers
    LazyIntervals,
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
    EXPECTED_NAMES,
    SCHEMA_VERSION,
    create_missing,
    rewrite_triggers,
    runs,
    scheduling_actions,
    select_actions,
)
from scrapers.schema import revisions as revisions_table

#: ``json.dumps(value, ensure_ascii=False, sort_keys=True)`` with its encoder made once
#: (``json.dumps`` builds one per call when given options).
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_HEX = frozenset("0123456789abcdef")
#: Values bound in one ``IN`` list (SQLite allows 32,766 parameters a statement).
_IN_LIST_CHUNK = 500


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 in lower-case hex: the only stored text that names a
    document (and so is ever made a path)."""
    return len(text) == 64 and _HEX.issuperset(text)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


class Store(OutboxRows):
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
        self._parsed = _parse(self.url)
        self.database_path = (Path(self._parsed.path) if self._parsed.backend == "sqlite"
                              and self._parsed.path is not None else None)
        if readonly:
            self.db: Database = self._reading_database()
            return
        self._prepare_folder()
        self.db = self._database()
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open_for_reading(cls, data_dir: Path, database_url: str | None = None) -> Store:
        return cls(data_dir, database_url, readonly=True)

    def _safe_url(self) -> str:
        return self._parsed.safe

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._parsed.backend

    def _database(self, *, readonly: bool = False, sqlite_uri: str | None = None) -> Database:
        try:
            return Database(self._parsed, readonly=readonly, sqlite_uri=sqlite_uri)
        except DriverMissing as error:
            hint = " (pip install 'schedwatch[postgres]')" if self.backend == "postgresql" else ""
            raise StoreError(f"cannot open the database {self._safe_url()}: its driver is "
                             f"not installed: {error}{hint}") from None

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
                self._create_tables()
            return
        try:
            with self.db.begin() as conn:
                if self.backend == "postgresql":
                    # Held to the end of this transaction; DDL is transactional there.
                    conn.scalar("SELECT pg_advisory_xact_lock(CAST(:ns AS integer), "
                                "CAST(:key AS integer))",
                                {"ns": LOCK_NAMESPACE, "key": _lock_key("schema")})
                self._create_in(conn)
        except DatabaseError as error:
            raise self._open_error(error) from None

    def _create_tables(self) -> None:
        """SQLite: a store whose ``user_version`` says its columns are current and whose
        catalogue lists every table, index and trigger is left as it is: one read, where inspecting
        each table was most of a warm start's database time."""
        try:
            with self.db.connect() as conn:
                if conn.scalar("PRAGMA user_version") == SCHEMA_VERSION and \
                        conn.catalogue() >= EXPECTED_NAMES:
                    return
            with self.db.begin(immediate=True) as conn:
                self._create_in(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except DatabaseError as error:
            raise self._open_error(error) from None

    def _create_in(self, conn: Connection) -> None:
        if runs.name not in conn.tables():
            self._refuse_if_documents_exist()
        create_missing(conn)

    def _open_error(self, error: DatabaseError) -> StoreError:
        detail = first_line(error)
        if _is_damage(detail):
            return self._damaged(detail)
        if "readonly database" in detail or "read-only" in detail:
            return StoreError(f"data_dir {self.data_dir} is not writable ({detail}); the "
                              "reading commands (status, changes, history, sources, jobs) "
                              "work on it, this one needs write access")
        return StoreError(f"cannot open the database {self._safe_url()}: "
                          f"{type(error.orig).__name__}: {detail}; "
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
            with self.db.connect() as conn:
                result = [str(next(iter(row.values())))
                          for row in conn.rows("PRAGMA quick_check")]
        except DatabaseError as error:
            raise self._damaged(first_line(error)) from None
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

    def _reading_database(self) -> Database:
        """A database that cannot be written: SQLite read-only (see the class docstring), or
        the server's read-only transactions. With no schedwatch tables yet, an empty
        in-memory schema, so that every reading command says "no data" rather than
        failing."""
        path = self.database_path
        if path is None:
            database = self._database(readonly=True)
        elif not path.is_file() or path.stat().st_size == 0:
            return _empty_database()
        else:
            uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
            wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
            if _not_writable(path.parent) is not None and not (wal.exists() and shm.exists()):
                # A read-only folder where no writer has the database open: SQLite cannot
                # create the -shm file a WAL reader needs, and nothing can change under us.
                uri += "&immutable=1"
            database = self._database(readonly=True, sqlite_uri=uri)
        try:
            with database.connect() as conn:
                present = runs.name in conn.tables()
        except DatabaseError as error:
            database.dispose()
            raise self._open_error(error) from None
        if present:
            return database
        database.dispose()
        return _empty_database()

    def close(self) -> None:
        self.db.dispose()
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
        if not is_sha256(sha256):
            raise StoreError(f"not a sha256: {sha256[:80]!r}")
        return self.documents_dir / sha256[:2] / sha256

    def read_document(self, sha256: str) -> bytes:
        return self.document_path(sha256).read_bytes()

    def document_info(self, sha256: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            return conn.first("SELECT * FROM documents WHERE sha256 = :sha", {"sha": sha256})

    def documents_info(self, shas: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored rows of the documents ``shas`` names, by sha256 (those the store
        holds): a few queries of many, not one a document — a publish cites every
        change's documents, hundreds over years of history."""
        wanted = sorted(set(shas))
        found: dict[str, dict[str, Any]] = {}
        with self.db.connect() as conn:
            for start in range(0, len(wanted), _IN_LIST_CHUNK):
                listed, bound = in_list("s", wanted[start:start + _IN_LIST_CHUNK])
                for row in conn.rows(f"SELECT * FROM documents WHERE sha256 IN {listed}",
                                     bound):
                    found[row["sha256"]] = row
        return found

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

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Reads in the block (this thread's) see the store at one moment, whatever a run
        commits meanwhile (``Database.snapshot``): what a page shows of several tables."""
        return self.db.snapshot()

    def source_states(self) -> dict[str, SourceState]:
        return {row["source_id"]: SourceState.from_row(row)
                for row in self.db.rows("SELECT * FROM source_state")}

    def source_state(self, source_id: str) -> SourceState | None:
        found = self.db.rows("SELECT * FROM source_state WHERE source_id = :source",
                           {"source": source_id})
        return SourceState.from_row(found[0]) if found else None

    def current_intervals(self, source_id: str | None = None) -> list[StatusInterval]:
        where, params = "valid_to IS NULL", {}
        if source_id is not None:
            where, params = where + " AND source_id = :source", {"source": source_id}
        return self._intervals(f"SELECT * FROM status WHERE {where}", params,
                               order=("jurisdiction", "substance", "source_id", "id"))

    def current_records(self, source_id: str) -> list[StatusRecord]:
        return [interval.record for interval in self.current_intervals(source_id)]

    def status_as_of(self, day: date) -> list[StatusInterval]:
        """The law on ``day``: per (source, substance) the interval whose legal span holds
        that day (of two, the later observation). An open interval whose held date passed
        before ``day`` (no run since) still answers; the reader applies its dates."""
        at = day.isoformat()

        def answering(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # Chosen on the rows' columns, before their records are decoded: with ten years
            # of history a tenth of the rows read are superseded on the last day.
            chosen: dict[tuple[str, str], dict[str, Any]] = {}
            for row in rows:
                key = (row["source_id"], row["substance"])
                holds = row["legal_to"] is None or row["legal_to"] > at
                if holds or (row["valid_to"] is None and key not in chosen):
                    chosen[key] = row
            return sorted(chosen.values(),
                          key=operator.itemgetter("jurisdiction", "substance", "source_id"))

        return self._intervals("SELECT * FROM status WHERE legal_from <= :at", {"at": at},
                               order=("jurisdiction", "substance", "source_id", "valid_from",
                                      "id"), choose=answering)

    def earliest_evidence(self) -> str | None:
        """The earliest legal date any stored interval speaks for."""
        with self.db.connect() as conn:
            value = conn.scalar("SELECT min(legal_from) FROM status")
        return str(value) if value else None

    def prior(self, source_ids: Sequence[str], *, since: datetime) -> Prior:
        """Everything a run decides from, for these sources, read before its transaction;
        a source's current intervals beyond the dated ones are read when first asked for
        (still the committed state the run started from)."""
        chosen = list(source_ids)
        states = {k: v for k, v in self.source_states().items() if k in chosen}
        confirmed = {sid: (state.last_healthy_at, state.last_document_sha256)
                     for sid, state in states.items()}
        sources, params = in_list("s", chosen)
        dated: dict[str, list[StatusInterval]] = {sid: [] for sid in chosen}
        # Read now: the few records that hold a dated change (``StatusRecord.holds_date``),
        # the only ones the law can move on a day the document did not change; the rest
        # when the run asks for them (a changed document).
        for interval in self._intervals(f"SELECT * FROM status WHERE valid_to IS NULL AND "
                                        f"dated = 1 AND source_id IN {sources}", params,
                                        confirmed=confirmed, order=("substance", "id")):
            dated[interval.record.source_id].append(interval)
        current = LazyIntervals(chosen, lambda source_id: self._intervals(
            "SELECT * FROM status WHERE valid_to IS NULL AND source_id = :source",
            {"source": source_id}, confirmed=confirmed, order=("substance", "id")))
        pending_rows: dict[str, list[PendingRow]] = {sid: [] for sid in chosen}
        for row in self.pending_items(open_only=False):
            if row.item.source_id in pending_rows:
                pending_rows[row.item.source_id].append(row)
        recent: dict[tuple[str, str], list[StoredChange]] = {}
        with self.db.connect() as conn:
            rows = conn.rows(f"SELECT * FROM changes WHERE source_id IN {sources} AND "
                             "detected_at >= :since AND kind != 'pending' AND substance IS "
                             "NOT NULL ORDER BY id DESC", {**params, "since": stamp(since)})
            last_run = conn.scalar("SELECT max(started_at) FROM runs "
                                   "WHERE finished_at IS NOT NULL")
        for change_row in rows:
            found = recent.setdefault((change_row["source_id"], change_row["substance"]), [])
            if len(found) < 2:
                found.append(StoredChange.from_row(change_row))
        return Prior(states=states, current=current,
                     dated={k: tuple(v) for k, v in dated.items()},
                     pending={k: tuple(v) for k, v in pending_rows.items()},
                     recent={k: tuple(v) for k, v in recent.items()},
                     last_run_started_at=str(last_run) if last_run else None)

    def history(self, substance: str | None = None, *, digests: bool = False,
                known: Mapping[int, str] | None = None) -> list[StatusInterval]:
        """Every interval (of one substance), oldest first per source. ``digests``: each
        with its ``record_digest`` (the site's fingerprints; ~10 ms for ten years of
        ``watch = "all"``, which the reading commands do not pay); ``known``: the digests
        the caller holds by interval id, taken instead of made (``revisions``)."""
        where, params = "", {}
        if substance is not None:
            where, params = "WHERE substance = :substance ", {"substance": substance}
        return self._intervals(f"SELECT * FROM status {where}", params, digests=digests,
                               order=("jurisdiction", "source_id", "valid_from", "id"),
                               known=known)

    def revisions(self) -> dict[str, int]:
        """How many times each kind of row the site keeps digests of was rewritten or
        removed (``schema.REVISED``), as the database's triggers counted; none when the
        store lacks the table or one of its triggers (then nothing kept is trusted)."""
        with self.db.connect() as conn:
            if revisions_table.name not in conn.tables() or not conn.triggers() >= {
                    trigger.name for trigger in rewrite_triggers(conn.backend)}:
                return {}
            return {str(row["name"]): int(row["value"])
                    for row in conn.rows("SELECT name, value FROM revisions")}

    def _intervals(self, sql: str, params: Mapping[str, Any], *, order: Sequence[str],
                   confirmed: Mapping[str, tuple[str | None, str | None]] | None = None,
                   digests: bool = False, known: Mapping[int, str] | None = None,
                   choose: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
                   | None = None) -> list[StatusInterval]:
        """``order``: the columns every read of intervals is sorted by, here rather than by
        the database: sorting thousands of rows with their record text in SQLite's
        temporary B-tree took longer than reading them (~25 ms of ``status`` with watch =
        "all"), and code-point order is the same on SQLite and PostgreSQL whatever the
        latter's collation. ``confirmed``: the sources' latest healthy observations when
        the caller has them (``prior`` read the source states already); else read with the
        rows. ``choose``: which of the sorted rows to make intervals of (and in what order),
        decided on their columns alone."""
        with self.db.connect() as conn:
            rows = conn.rows(sql, params)
            if confirmed is None:
                confirmed = self._confirmations(conn)
        rows.sort(key=operator.itemgetter(*order))
        if choose is not None:
            rows = choose(rows)
        return [_interval_of(row, confirmed=confirmed, digest=digests, known=known)
                for row in rows]

    @staticmethod
    def _confirmations(conn: Connection) -> dict[str, tuple[str | None, str | None]]:
        """Per source, its latest healthy observation: what confirms its open intervals."""
        return {row["source_id"]: (row["last_healthy_at"], row["last_document_sha256"])
                for row in conn.rows("SELECT source_id, last_healthy_at, "
                                     "last_document_sha256 FROM source_state")}

    def changes(self, since: datetime | None = None, *, until: datetime | None = None,
                kinds: Sequence[str] | None = None, ids: Sequence[int] | None = None,
                limit: int | None = None, newest_first: bool = False,
                digests: bool = False, known: Mapping[int, str] | None = None
                ) -> list[StoredChange]:
        """The changes (oldest first, or ``newest_first``); ``digests``: each with its
        ``row_digest`` (the site's fingerprints); ``known``: the digests the caller holds by
        change id, taken instead of made (``revisions``)."""
        conditions, params = [], {}
        if since is not None:
            conditions.append("detected_at >= :since")
            params["since"] = stamp(since)
        if until is not None:
            conditions.append("detected_at < :until")
            params["until"] = stamp(until)
        if kinds is not None:
            listed, bound = in_list("k", kinds)
            conditions.append(f"kind IN {listed}")
            params.update(bound)
        if ids is not None:
            listed, bound = in_list("i", ids)
            conditions.append(f"id IN {listed}")
            params.update(bound)
        sql = "SELECT * FROM changes" + _where(conditions) + \
            (" ORDER BY id DESC" if newest_first else " ORDER BY id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        held = known or {}
        return [StoredChange.from_row(row, digest=digests, known=held)
                for row in self.db.rows(sql, params)]

    def recent_changes(self, source_id: str, substance: str, *, since: datetime,
                       limit: int = 2) -> list[StoredChange]:
        """The newest changes of one substance in one source since ``since``, newest first."""
        rows = self.db.rows(
            "SELECT * FROM changes WHERE source_id = :source AND substance = :substance AND "
            "detected_at >= :since AND kind != 'pending' ORDER BY id DESC "
            f"LIMIT {int(limit)}",
            {"source": source_id, "substance": substance, "since": stamp(since)})
        return [StoredChange.from_row(row) for row in rows]

    def actions(self, substance: str | None = None,
                jurisdiction: str | None = None) -> list[StoredAction]:
        """The stored scheduling actions, oldest first (none in a store made before them)."""
        with self.db.connect() as conn:
            if scheduling_actions.name not in conn.tables():
                return []
            rows = conn.rows(*select_actions(substance, jurisdiction))
        return [StoredAction.from_row(row) for row in rows]

    def pending_items(self, *, open_only: bool = True,
                      source_id: str | None = None) -> list[PendingRow]:
        conditions, params = [], {}
        if open_only:
            conditions.append("resolved_at IS NULL")
        if source_id is not None:
            conditions.append("source_id = :source")
            params["source"] = source_id
        rows = self.db.rows("SELECT * FROM pending" + _where(conditions) + " ORDER BY id",
                          params)
        return [PendingRow(id=row["id"], item=PendingItem.from_dict(json.loads(row["item"])),
                           first_seen_at=row["first_seen_at"], last_seen_at=row["last_seen_at"],
                           resolved_at=row["resolved_at"]) for row in rows]

    def check_log(self, after_id: int = 0) -> list[dict[str, Any]]:
        """The fetches after ``after_id`` (by default every fetch), oldest first, with only
        what the weekly reports count of each (its id, source, start, outcome and error):
        ten years of daily checks are ~18,000 rows, and their URLs and digests would double
        what is read."""
        return self.db.rows("SELECT id, source_id, started_at, outcome, error FROM fetches "
                            "WHERE id > :after ORDER BY id", {"after": int(after_id)})

    def check_log_mark(self, last_id: int) -> tuple[int, int, tuple[str, str, str] | None]:
        """(``last_id``, how many fetches have an id up to it, that fetch's source, start
        and outcome): what a tally of the log up to ``last_id`` counted, if the log is the
        one it was made from and no fetch with a lower id was committed since
        (``reports.check_tally``). Counted on the primary key alone: only the last row's
        columns are read."""
        counted = self.db.rows("SELECT count(*) AS n FROM fetches WHERE id <= :last",
                               {"last": int(last_id)})
        found = self.db.rows("SELECT source_id, started_at, outcome FROM fetches "
                             "WHERE id = :last", {"last": int(last_id)})
        row = (str(found[0]["source_id"]), str(found[0]["started_at"]),
               str(found[0]["outcome"])) if found else None
        return int(last_id), int(counted[0]["n"]), row

    def fetch_log(self, since: datetime | None = None, until: datetime | None = None,
                  source_id: str | None = None) -> list[dict[str, Any]]:
        conditions, params = [], {}
        if since is not None:
            conditions.append("started_at >= :since")
            params["since"] = stamp(since)
        if until is not None:
            conditions.append("started_at < :until")
            params["until"] = stamp(until)
        if source_id is not None:
            conditions.append("source_id = :source")
            params["source"] = source_id
        return self.db.rows("SELECT * FROM fetches" + _where(conditions) + " ORDER BY id",
                          params)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.db.rows(f"SELECT * FROM runs ORDER BY id DESC LIMIT {int(limit)}")

    # --- writes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, started_at: datetime, jurisdictions: Sequence[str],
                    trigger: str = "cli") -> Iterator[RunWriter]:
        """One run's writes. Commits on success, rolls back on any exception."""
        if self.readonly:
            raise StoreError("this store was opened for reading only")
        try:
            with self.db.begin() as conn:
                run_id = conn.insert("runs", {"started_at": stamp(started_at),
                                              "trigger": trigger,
                                              "jurisdictions": ",".join(jurisdictions)})
                yield RunWriter(conn, run_id)
        except DatabaseError as error:
            detail = first_line(error)
            if _is_damage(detail):
                raise self._damaged(detail) from None
            if not isinstance(error, OperationalError):
                raise
            raise StoreError(f"the database {self._safe_url()} could not be written "
                             f"({detail}); nothing of this run was "
                             "stored, the previous state is intact") from None

    # heartbeat ------------------------------------------------------------------------

    def beat(self, name: str, *, now: datetime, detail: str | None = None) -> None:
        with self.db.begin() as conn:
            values = dict(at=stamp(now), pid=os.getpid(), detail=detail)
            if not conn.update("heartbeats", values, "name = :name", {"name": name}):
                conn.insert_many("heartbeats", [dict(name=name, **values)])

    def heartbeat(self, name: str) -> dict[str, Any] | None:
        found = self.db.rows("SELECT * FROM heartbeats WHERE name = :name", {"name": name})
        return found[0] if found else None

    def integrity_check(self) -> str:
        if self.backend != "sqlite":
            return "ok"
        with self.db.connect() as conn:
            return str(conn.scalar("PRAGMA integrity_check"))

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
        if self.backend == "postgresql":
            with advisory_lock(self.db, name, holder, self._open_error):
                yield
            return
        with file_lock(self.data_dir / "locks", name, holder):
            yield

    # --- backfill (``schedwatch backfill``): the regulators' archives --------------------

    def source_intervals(self, source_id: str) -> list[StatusInterval]:
        """Every interval of one source, backfilled or observed, oldest observation first."""
        return self._intervals("SELECT * FROM status WHERE source_id = :source",
                               {"source": source_id}, order=("valid_from", "id"))

    def add_backfilled_interval(self, writer: RunWriter, record: StatusRecord, *,
                                at: datetime, legal_from: str, legal_to: str | None,
                                last_document_sha256: str, is_open: bool) -> None:
        """One interval read from an archive (``backfilled`` = 1), observed at ``at`` (the
        backfill run), with its legal span and the last archived version that confirmed it.
        ``is_open``: the current status of a source with no observed data yet."""
        when = stamp(at)
        writer.conn.insert_many("status", [dict(
            jurisdiction=record.jurisdiction, substance=record.substance,
            source_id=record.source_id, valid_from=when, valid_to=None if is_open else when,
            status=record.status, schedule=record.schedule, record=record_json(record),
            dated=int(record.holds_date),
            last_confirmed_at=when, last_document_sha256=last_document_sha256,
            legal_from=legal_from, legal_to=legal_to, backfilled=1)])

    def rewrite_interval_record(self, writer: RunWriter, interval_id: int,
                                record: StatusRecord) -> None:
        """Rewrite one interval's record in place (an observed interval whose status the
        archive shows held earlier: its ``in_force_since`` moves back; nothing else)."""
        writer.conn.update("status", {"record": record_json(record),
                                      "dated": int(record.holds_date)}, "id = :id",
                           {"id": interval_id})


def _interval_of(row: Mapping[str, Any], *,
                 confirmed: Mapping[str, tuple[str | None, str | None]],
                 digest: bool = False, known: Mapping[int, str] | None = None
                 ) -> StatusInterval:
    """A status row as an interval; an open one is confirmed by its source's latest
    healthy observation (an unchanged day rewrites no status row)."""
    at, sha = row["last_confirmed_at"], row["last_document_sha256"]
    if row["valid_to"] is None:
        latest = confirmed.get(row["source_id"])
        if latest and latest[0] and latest[1] and latest[0] >= at:
            at, sha = latest
    text = row["record"]
    # Every field filled in directly, as ``StatusRecord.from_dict`` does: a frozen
    # dataclass's __init__ sets them one object.__setattr__ at a time (~2 µs an interval,
    # thousands of them for ``status`` and every publish with watch = "all").
    interval = object.__new__(StatusInterval)
    interval.__dict__.update(
        id=row["id"], record=StatusRecord.from_dict(json.loads(text)),
        valid_from=row["valid_from"], valid_to=row["valid_to"], last_confirmed_at=at,
        last_document_sha256=sha, legal_from=row["legal_from"], legal_to=row["legal_to"],
        backfilled=bool(row["backfilled"]),
        record_digest=((known and known.get(row["id"])) or hashlib.sha256(
            text.encode("utf-8", "surrogatepass")).hexdigest()) if digest else "")
    return interval


DATABASE_FILE = "schedwatch.db"


def _parse(url: str) -> Any:
    try:
        return parse_url(url)
    except ValueError as error:
        raise StoreError(str(error)) from None


def _where(conditions: Sequence[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def _not_writable(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None: it can). Tried, not ``os.access``:
    root passes that test on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test-"):
            return None
    except OSError as error:
        return error.strerror or type(error).__name__


def _is_damage(detail: str) -> bool:
    return any(word in detail for word in ("malformed", "file is not a database",
                                           "database disk image"))


def _empty_database() -> Database:
    """An in-memory database with the schema and no rows: what a reader sees before the
    first run, without creating anything on disk."""
    database = Database(parse_url("sqlite://"))
    with database.begin() as conn:
        create_missing(conn)
    return database


class RunWriter:
    """All writes of one run, inside the transaction opened by ``Store.transaction``."""

    def __init__(self, conn: Connection, run_id: int) -> None:
        self.conn = conn
        self.run_id = run_id

    def add_document(self, *, sha256: str, size: int, media_type: str | None, source_id: str,
                     url: str, seen_at: datetime, path: str) -> None:
        # Two jurisdictions' runs may archive the same bytes at once on a server database.
        self.conn.insert_ignoring_duplicates("documents", dict(
            sha256=sha256, size=size, media_type=media_type, source_id=source_id, url=url,
            first_seen_at=stamp(seen_at), path=path), ["sha256"])

    def add_fetch(self, *, source_id: str, started_at: datetime, url: str, outcome: str,
                  final_url: str | None = None, error_kind: str | None = None,
                  error: str | None = None, http_status: int | None = None,
                  document_sha256: str | None = None, elapsed_ms: int | None = None) -> None:
        self.conn.insert_many("fetches", [dict(
            run_id=self.run_id, source_id=source_id, started_at=stamp(started_at), url=url,
            final_url=final_url, outcome=outcome, error_kind=error_kind,
            error=error[:1000] if error else None, http_status=http_status,
            document_sha256=document_sha256, elapsed_ms=elapsed_ms)])

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
        if not self.conn.update("source_state", values, "source_id = :source",
                                {"source": state.source_id}):
            self.conn.insert_many("source_state", [dict(source_id=state.source_id, **values)])

    def open_intervals(self, records: Sequence[StatusRecord], *, at: datetime,
                       spans: Sequence[tuple[str, str | None]] | None = None,
                       closed: bool | Sequence[bool] = False, backfilled: bool = False) -> None:
        """New intervals from ``at``, in one executemany (thousands with watch = "all").
        ``spans``: each record's (legal from, legal to); by default from the date its
        document speaks for. ``closed``: a past legal segment, observed now and over (one
        flag for all, or one per record: a cold run's past and present segments, in their
        order, in one statement)."""
        if not records:
            return
        when = stamp(at)
        legal = spans if spans is not None else [
            (r.in_force_since or r.evidence_date or r.retrieved_at[:10], None) for r in records]
        flags = [closed] * len(records) if isinstance(closed, bool) else closed
        self.conn.insert_many("status", [dict(
            jurisdiction=record.jurisdiction, substance=record.substance,
            source_id=record.source_id, valid_from=when, valid_to=when if over else None,
            status=record.status, schedule=record.schedule, record=record_json(record),
            dated=int(record.holds_date),
            last_confirmed_at=when, last_document_sha256=record.document_sha256,
            legal_from=start, legal_to=end, backfilled=int(backfilled))
            for record, (start, end), over in zip(records, legal, flags, strict=True)])

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
            listed, params = in_list("n", chosen[start:start + 500])
            self.conn.update("status", values, f"source_id = :source AND substance IN "
                             f"{listed} AND valid_to IS NULL", {**params, "source": source_id})

    def replace_open_record(self, record: StatusRecord) -> None:
        """Rewrite the record of an open interval in place: for a change that is not a
        change of status or wording of a watched substance (a new instrument id for every
        entry of a replaced Poisons Standard), which would otherwise open thousands of
        intervals and changes."""
        self.replace_open_records([record])

    def replace_open_records(self, records: Sequence[StatusRecord]) -> None:
        """``replace_open_record`` for many records, in one executemany (a new Poisons
        Standard rewrites thousands)."""
        self.conn.executemany(
            "UPDATE status SET record = :record, dated = :dated WHERE source_id = :source AND "
            "substance = :substance AND valid_to IS NULL",
            [{"record": record_json(r), "dated": int(r.holds_date), "source": r.source_id,
              "substance": r.substance}
             for r in records])

    def add_change(self, *, detected_at: datetime, jurisdiction: str, substance: str | None,
                   source_id: str, kind: str, summary: str, before: dict[str, Any] | None,
                   after: dict[str, Any] | None, effective_date: str | None = None,
                   before_sha256: str | None = None, after_sha256: str | None = None,
                   details: dict[str, Any] | None = None, backfilled: bool = False) -> int:
        return self.conn.insert("changes", dict(
            run_id=self.run_id, detected_at=stamp(detected_at), jurisdiction=jurisdiction,
            substance=substance, source_id=source_id, kind=kind, summary=summary,
            before=_dumps(before) if before is not None else None,
            after=_dumps(after) if after is not None else None, effective_date=effective_date,
            before_sha256=before_sha256, after_sha256=after_sha256,
            details=_dumps(details or {}), backfilled=int(backfilled)))

    def add_actions(self, found: Sequence[ScheduledAction], *, at: datetime,
                    document_sha256: str | None, backfilled: bool = False) -> int:
        """Store dated scheduling actions once each (``ACTION_KEY``: the first reading is
        kept, observed or backfilled); returns how many were new."""
        return sum(self.conn.insert_ignoring_duplicates("actions", action_values(
            action, at=stamp(at), document_sha256=document_sha256, backfilled=backfilled),
            list(ACTION_KEY)) for action in found)

    def open_pending(self, item: PendingItem, *, at: datetime) -> None:
        self.conn.insert_many("pending", [dict(
            source_id=item.source_id, key=item.key, jurisdiction=item.jurisdiction,
            substance=item.substance, item=_dumps(item.as_dict()), first_seen_at=stamp(at),
            last_seen_at=stamp(at))])

    def touch_pending(self, pending_id: int, item: PendingItem, *, at: datetime) -> None:
        self.conn.update("pending", {"last_seen_at": stamp(at), "item": _dumps(item.as_dict())},
                         "id = :id", {"id": pending_id})

    def reopen_pending(self, pending_id: int, item: PendingItem, *, at: datetime) -> None:
        self.conn.update("pending", {"resolved_at": None, "last_seen_at": stamp(at),
                                     "item": _dumps(item.as_dict())}, "id = :id",
                         {"id": pending_id})

    def resolve_pending(self, pending_id: int, *, at: datetime) -> None:
        self.conn.update("pending", {"resolved_at": stamp(at)}, "id = :id", {"id": pending_id})

    def enqueue(self, *, idempotency_key: str, kind: str, recipient: str,
                change_ids: Sequence[int], reference: str | None = None,
                now: datetime) -> bool:
        return insert_once(self.conn, outbox_row(idempotency_key, kind, recipient, change_ids,
                                                   reference, now))

    def finish(self, *, finished_at: datetime, exit_code: int, summary: Mapping[str, Any]) -> None:
        self.conn.update("runs", {"finished_at": stamp(finished_at), "exit_code": exit_code,
                                  "summary": _dumps(dict(summary))}, "id = :id",
                         {"id": self.run_id})
