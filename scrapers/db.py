"""The database under the store: stdlib ``sqlite3`` or ``psycopg`` (PostgreSQL), both DB-API
drivers, behind one small interface (``Database``, ``Connection``).

Why not SQLAlchemy: importing it cost 290–330 ms on every start, most of a warm run (issue
18), for what the store uses of it — a few dozen plain statements. The statements are
written once, with ``:name`` parameters (sqlite3's named style); for psycopg they become
``%(name)s``. The only differences between the two databases the store meets are here: the
URL, the connection's set-up, the catalogue queries and how an inserted row's id comes back.

Every driver error surfaces as ``DatabaseError`` (``OperationalError`` for "could not do it
now": locked, busy, unreachable, read-only), carrying the driver's own exception as
``orig``, so the store words one message for either database.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: How long an idle PostgreSQL connection may sit in the pool before it is tested with a
#: round trip (a long-lived scheduler outlives server restarts).
PING_AFTER_SECONDS = 30.0
#: Idle connections kept for reuse.
POOL_SIZE = 4
#: SQLite's wait for another process's write lock.
BUSY_TIMEOUT_MS = 30000


class DatabaseError(Exception):
    """A database driver's error; ``orig`` is the driver's exception."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig


class OperationalError(DatabaseError):
    """The database could not do it now: locked, busy, unreachable, read-only, I/O."""


def first_line(error: BaseException) -> str:
    """The first line of an error's text (the driver's own, for a wrapped one)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DriverMissing(Exception):
    """The driver for this URL's database is not installed."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed ``database_url``: ``sqlite:///path`` or ``postgresql+psycopg://…``."""

    backend: str  # "sqlite" | "postgresql"
    safe: str  # the URL as it may be shown: its password hidden
    path: str | None = None  # SQLite: the database file (None: in memory)
    conninfo: Mapping[str, str] = field(default_factory=dict)  # PostgreSQL: libpq keywords


def parse_url(url: str) -> DatabaseUrl:
    """``ValueError`` (worded for the user) for a URL schedwatch cannot use."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        # SQLAlchemy's form, kept so existing configurations stay valid: sqlite:///relative,
        # sqlite:////absolute, sqlite:// (in memory).
        path = rest.removeprefix("/").split("?", 1)[0]
        return DatabaseUrl("sqlite", url, path=None if path in ("", ":memory:") else path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parts = urllib.parse.urlsplit(url)
        conninfo: dict[str, str] = {}
        if parts.hostname:
            conninfo["host"] = parts.hostname
        if parts.port:
            conninfo["port"] = str(parts.port)
        if parts.username:
            conninfo["user"] = urllib.parse.unquote(parts.username)
        if parts.password is not None:
            conninfo["password"] = urllib.parse.unquote(parts.password)
        if parts.path.strip("/"):
            conninfo["dbname"] = urllib.parse.unquote(parts.path.strip("/"))
        conninfo.update(urllib.parse.parse_qsl(parts.query))
        safe = url
        if parts.password is not None:
            safe = url.replace(f":{parts.password}@", ":***@", 1)
        return DatabaseUrl("postgresql", safe, conninfo=conninfo)
    shown = scheme if "://" in url else url[:40]
    raise ValueError(f"database_url {shown!r} is not a database URL schedwatch can use: "
                     "sqlite:///path/to/file.db or postgresql+psycopg://user@host/database")


class Connection:
    """One driver connection, in autocommit mode: each statement stands alone unless it runs
    inside ``Database.begin``."""

    def __init__(self, raw: Any, backend: str) -> None:
        self.raw = raw
        self.backend = backend
        self._errors = _error_classes(backend)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    def _run(self, sql: str, params: Any, many: bool = False) -> Any:
        statement = _for_psycopg(sql) if self.backend == "postgresql" else sql
        try:
            cursor = self.raw.cursor()
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params or {})
            return cursor
        except self._errors[0] as error:
            raise OperationalError(error) from error
        except self._errors[1] as error:
            raise DatabaseError(error) from error

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement; returns the rows it changed."""
        cursor = self._run(sql, params)
        count = cursor.rowcount
        cursor.close()
        return int(count if count and count > 0 else 0)

    def executemany(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> int:
        cursor = self._run(sql, list(rows), many=True)
        count = cursor.rowcount
        cursor.close()
        return int(count if count and count > 0 else 0)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._run(sql, params)
        try:
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except self._errors[1] as error:
            raise DatabaseError(error) from error
        finally:
            cursor.close()

    def first(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        cursor = self._run(sql, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return row[0] if row else None

    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        """Insert one row; returns its ``id``."""
        sql = insert_sql(table, list(values))
        if self.backend == "postgresql":
            return int(self.scalar(sql + " RETURNING id", values))
        cursor = self._run(sql, values)
        row_id = cursor.lastrowid
        cursor.close()
        return int(row_id)

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.executemany(insert_sql(table, list(rows[0])), rows)

    def insert_ignoring_duplicates(self, table: str, values: Mapping[str, Any],
                                   keys: Sequence[str]) -> int:
        """Insert unless a row with the same ``keys`` exists (1 if inserted, else 0). ON
        CONFLICT DO NOTHING, not look-then-insert: two processes on a server database add
        the same row at once without either failing on the unique key."""
        sql = insert_sql(table, list(values)) + f" ON CONFLICT ({', '.join(keys)}) DO NOTHING"
        # RETURNING on PostgreSQL: with psycopg the row count of a skipped insert is not
        # reliable.
        if self.backend == "postgresql":
            return len(self.rows(sql + f" RETURNING {keys[0]}", values))
        return self.execute(sql, values)

    def update(self, table: str, values: Mapping[str, Any], where: str,
               params: Mapping[str, Any] | None = None) -> int:
        """``UPDATE table SET <values> WHERE <where>``; value parameters are named ``v_<col>``
        so they never collide with the condition's."""
        assignments = ", ".join(f"{column} = :v_{column}" for column in values)
        bound = {f"v_{column}": value for column, value in values.items()}
        bound.update(params or {})
        return self.execute(f"UPDATE {table} SET {assignments} WHERE {where}", bound)

    def tables(self) -> set[str]:
        return self._catalogue("table")

    def indexes(self) -> set[str]:
        return self._catalogue("index")

    def catalogue(self) -> set[str]:
        """SQLite: the names of every table, index and trigger, in one read."""
        return {str(row["name"]) for row in self.rows(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")}

    def triggers(self) -> set[str]:
        if self.backend == "postgresql":
            return {str(row["name"]) for row in self.rows(
                "SELECT t.tgname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = "
                "t.tgrelid WHERE NOT t.tgisinternal AND c.relnamespace = "
                "CAST(current_schema() AS regnamespace)")}
        return self._catalogue("trigger")

    def _catalogue(self, kind: str) -> set[str]:
        """The names of this schema's tables, indexes or (SQLite) triggers."""
        if self.backend == "sqlite":
            found = self.rows("SELECT name FROM sqlite_master WHERE type = :kind",
                              {"kind": kind})
        else:
            view = {"table": "pg_tables", "index": "pg_indexes"}[kind]
            found = self.rows(f"SELECT {kind}name AS name FROM {view} "
                              "WHERE schemaname = current_schema()")
        return {str(row["name"]) for row in found}

    def columns(self, table: str) -> set[str]:
        if self.backend == "sqlite":
            found = self.rows("SELECT name FROM pragma_table_info(:table)", {"table": table})
        else:
            found = self.rows("SELECT column_name AS name FROM information_schema.columns "
                              "WHERE table_schema = current_schema() AND table_name = :table",
                              {"table": table})
        return {str(row["name"]) for row in found}


def insert_sql(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})")


def in_list(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``(:p0, :p1, …)`` and its parameters, for ``column IN <list>``; an empty list is
    ``(NULL)``, which matches nothing (``IN ()`` is not valid PostgreSQL)."""
    params = {f"{prefix}{n}": value for n, value in enumerate(values)}
    return "(" + (", ".join(":" + name for name in params) or "NULL") + ")", params


@functools.lru_cache(maxsize=512)
def _for_psycopg(sql: str) -> str:
    """``:name`` → ``%(name)s`` (and a literal ``%`` doubled); ``::`` casts are left alone."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


@functools.cache
def _error_classes(backend: str) -> tuple[type[BaseException], type[BaseException]]:
    """(the driver's "operational" error, its base error)."""
    if backend == "sqlite":
        return sqlite3.OperationalError, sqlite3.Error
    import psycopg

    return psycopg.OperationalError, psycopg.Error


class Database:
    """Connections to one database, pooled. ``readonly``: every connection refuses writes
    (SQLite ``mode=ro`` + ``query_only``; PostgreSQL read-only transactions). ``sqlite_uri``:
    open this SQLite URI instead of the URL's path (the store's read-only and immutable
    modes)."""

    def __init__(self, url: DatabaseUrl, *, readonly: bool = False,
                 sqlite_uri: str | None = None) -> None:
        self.url = url
        self.backend = url.backend
        self.readonly = readonly
        self._sqlite_uri = sqlite_uri
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()
        self._memory: Any = None  # the one connection of an in-memory database
        #: Per thread, the connection of the ``snapshot`` it is in.
        self._pinned = threading.local()
        if self.backend == "postgresql":
            try:
                import psycopg  # noqa: F401 - the driver, checked before the first connection
            except ImportError as error:
                raise DriverMissing(str(error)) from None

    def _new_raw(self) -> Any:
        errors = _error_classes(self.backend)
        try:
            if self.backend == "postgresql":
                import psycopg

                options = dict(self.url.conninfo)
                if self.readonly:
                    options["options"] = "-c default_transaction_read_only=on"
                return psycopg.connect(psycopg.conninfo.make_conninfo("", **options),
                                       autocommit=True)
            if self._sqlite_uri is not None:
                raw = sqlite3.connect(self._sqlite_uri, uri=True, isolation_level=None,
                                      check_same_thread=False)
                raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                raw.execute("PRAGMA query_only=ON")
                return raw
            raw = sqlite3.connect(self.url.path or ":memory:", isolation_level=None,
                                  check_same_thread=False)
            # The busy timeout first: switching a brand-new file to WAL takes a lock that
            # another process opening it at the same moment must wait for, not fail on.
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if self.url.path is not None:
                raw.execute("PRAGMA journal_mode=WAL")
                raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA foreign_keys=ON")
            return raw
        except errors[0] as error:
            raise OperationalError(error) from error
        except errors[1] as error:
            raise DatabaseError(error) from error

    @property
    def _in_memory(self) -> bool:
        """An in-memory SQLite database: one connection, which holds the database."""
        return self.backend == "sqlite" and self.url.path is None and self._sqlite_uri is None

    def _checkout(self) -> Any:
        if self._in_memory:
            if self._memory is None:
                self._memory = self._new_raw()
            return self._memory
        while True:
            with self._lock:
                if not self._idle:
                    break
                raw, since = self._idle.pop()
            if self.backend == "postgresql" and not _alive(raw, since):
                with contextlib.suppress(Exception):
                    raw.close()
                continue
            return raw
        return self._new_raw()

    def _checkin(self, raw: Any) -> None:
        if raw is self._memory:
            return
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append((raw, time.monotonic()))
                return
        with contextlib.suppress(Exception):
            raw.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (each statement in its own transaction; inside
        ``snapshot``, the snapshot's)."""
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        raw = self._checkout()
        try:
            yield Connection(raw, self.backend)
        except BaseException:
            self._drop(raw)
            raise
        self._checkin(raw)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read this thread makes in the block sees the database at one moment: one
        connection in one read transaction (SQLite: its first read fixes what the later ones
        see, a writer committing meanwhile is not seen; PostgreSQL: ``REPEATABLE READ``). A
        page made from reads made one after another (the intervals, then the changes) then
        never shows half a run. A snapshot inside another is the outer one. The in-memory
        database (one connection, the tests') reads as it always does."""
        if getattr(self._pinned, "conn", None) is not None or self._in_memory:
            yield
            return
        raw = self._checkout()
        conn = Connection(raw, self.backend)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                         if self.backend == "postgresql" else "BEGIN")
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None
            conn.execute("COMMIT")
        except BaseException:
            self._drop(raw)
            raise
        self._checkin(raw)

    @contextlib.contextmanager
    def begin(self, *, immediate: bool = False) -> Iterator[Connection]:
        """A connection in one transaction: committed when the block ends, rolled back when
        it raises. ``immediate`` (SQLite): take the write lock now, for a transaction that
        reads before it writes (a deferred one that read first cannot wait for another
        writer: SQLite fails it at once)."""
        raw = self._checkout()
        conn = Connection(raw, self.backend)
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate and self.backend == "sqlite"
                         else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._drop(raw)
            raise
        self._checkin(raw)

    def _drop(self, raw: Any) -> None:
        """After an error: roll back whatever is open and close the connection (the memory
        database's one connection is kept: it holds the database)."""
        with contextlib.suppress(Exception):
            raw.execute("ROLLBACK")
        if raw is not self._memory:
            with contextlib.suppress(Exception):
                raw.close()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """One read on a pooled connection."""
        with self.connect() as conn:
            return conn.rows(sql, params)

    def dedicated(self) -> Connection:
        """A connection of its own, not pooled, for the caller to ``close`` (a PostgreSQL
        advisory lock lives as long as its session)."""
        return Connection(self._new_raw(), self.backend)

    def dispose(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for raw, _since in idle:
            with contextlib.suppress(Exception):
                raw.close()
        if self._memory is not None:
            with contextlib.suppress(Exception):
                self._memory.close()
            self._memory = None


def _alive(raw: Any, idle_since: float) -> bool:
    """Whether a pooled PostgreSQL connection can still be used."""
    if raw.closed or getattr(raw, "broken", False):
        return False
    if time.monotonic() - idle_since < PING_AFTER_SECONDS:
        return True
    try:
        raw.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means: make a new one
        return False

