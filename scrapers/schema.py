"""The store's schema, declared once (tables, columns, indexes) for both databases, the
statements that create it, and the columns added to stores made by earlier versions.

Plain declarations, not SQLAlchemy's: the store speaks DB-API (``scrapers.db``). The DDL is
what SQLAlchemy emitted for the same declarations, so stores it created are read and
extended as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from scrapers.db import Connection

INTEGER = "INTEGER"
TEXT = "TEXT"

#: SQLite's ``PRAGMA user_version`` of a store whose schema is complete: opening it checks
#: nothing more (nine catalogue reads saved on every start). Raise it with every change below.
SCHEMA_VERSION = 3  # 2: status.dated; 3: the revisions table and its triggers


def String(length: int) -> str:  # noqa: N802 - reads like the type it declares
    return f"VARCHAR({length})"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    primary_key: bool = False
    nullable: bool = True
    default: str | None = None
    unique: bool = False
    references: str | None = None  # "table.column"

    def ddl(self, backend: str) -> str:
        kind = "SERIAL" if (self.primary_key and self.type == INTEGER
                            and backend == "postgresql") else self.type
        text = f"{self.name} {kind}"
        if not self.nullable or self.primary_key:
            text += " NOT NULL"
        if self.default is not None:
            text += " DEFAULT " + (self.default if self.default.isdigit()
                                   else "'" + self.default.replace("'", "''") + "'")
        return text


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    where: str | None = None  # a partial index

    def __init__(self, name: str, *columns: str, where: str | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "where", where)


@dataclass(frozen=True)
class Unique:
    columns: tuple[str, ...]
    name: str | None = None

    def __init__(self, *columns: str, name: str | None = None) -> None:
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "name", name)


class Table:
    """A table's declaration: ``Table(name, Column(...), Index(...), Unique(...))``."""

    def __init__(self, name: str, *parts: Column | Index | Unique) -> None:
        self.name = name
        self.columns = tuple(p for p in parts if isinstance(p, Column))
        self.indexes = tuple(p for p in parts if isinstance(p, Index))
        self.uniques = tuple(p for p in parts if isinstance(p, Unique)) + tuple(
            Unique(c.name) for c in self.columns if c.unique)
        self.column_names = tuple(c.name for c in self.columns)

    def create_table(self, backend: str) -> str:
        lines = [column.ddl(backend) for column in self.columns]
        keys = [c.name for c in self.columns if c.primary_key]
        if keys:
            lines.append(f"PRIMARY KEY ({', '.join(keys)})")
        for unique in self.uniques:
            named = f"CONSTRAINT {unique.name} " if unique.name else ""
            lines.append(f"{named}UNIQUE ({', '.join(unique.columns)})")
        for column in self.columns:
            if column.references:
                table, _, target = column.references.partition(".")
                lines.append(f"FOREIGN KEY({column.name}) REFERENCES {table} ({target})")
        return f"CREATE TABLE {self.name} (\n\t" + ", \n\t".join(lines) + "\n)"

    def create_index(self, index: Index) -> str:
        where = f" WHERE {index.where}" if index.where else ""
        return (f"CREATE INDEX IF NOT EXISTS {index.name} ON {self.name} "
                f"({', '.join(index.columns)}){where}")


runs = Table(
    "runs",
    Column("id", INTEGER, primary_key=True),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("trigger", String(32), nullable=False, default="cli"),
    Column("jurisdictions", String(200), nullable=False),
    Column("exit_code", INTEGER),
    Column("summary", TEXT),
)

fetches = Table(
    "fetches",
    Column("id", INTEGER, primary_key=True),
    Column("run_id", INTEGER, references="runs.id", nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("url", TEXT, nullable=False),
    Column("final_url", TEXT),
    # fetched | not_modified | unchanged | failed | extraction_failed
    Column("outcome", String(32), nullable=False),
    Column("error_kind", String(32)),
    Column("error", TEXT),
    Column("http_status", INTEGER),
    Column("document_sha256", String(64)),
    Column("elapsed_ms", INTEGER),
    Index("ix_fetches_source_started", "source_id", "started_at"),
)

documents = Table(
    "documents",
    Column("sha256", String(64), primary_key=True),
    Column("size", INTEGER, nullable=False),
    Column("media_type", String(200)),
    Column("source_id", String(64), nullable=False),
    Column("url", TEXT, nullable=False),
    Column("first_seen_at", String(32), nullable=False),
    Column("path", TEXT, nullable=False),  # relative to the documents folder
)

source_state = Table(
    "source_state",
    Column("source_id", String(64), primary_key=True),
    Column("jurisdiction", String(8), nullable=False),
    # healthy | source_failed | extraction_failed (| unknown before the first fetch)
    Column("health", String(32), nullable=False),
    Column("failing_since", String(32)),
    Column("consecutive_failures", INTEGER, nullable=False, default="0"),
    Column("last_error", TEXT),
    Column("last_attempt_at", String(32)),
    Column("last_healthy_at", String(32)),
    Column("last_document_sha256", String(64)),
    Column("last_url", TEXT),
    Column("etag", TEXT),
    Column("last_modified", TEXT),
    Column("marker", TEXT),
    Column("watch_keys", TEXT),  # JSON list: the watch list the records were made for
    Column("document_dates", TEXT),  # JSON list of [label, date]
    Column("document_meta", TEXT),  # JSON object
    Column("title", TEXT),
    Column("instrument", TEXT),
)

status = Table(
    "status",
    Column("id", INTEGER, primary_key=True),
    Column("jurisdiction", String(8), nullable=False),
    Column("substance", String(200), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("valid_from", String(32), nullable=False),
    Column("valid_to", String(32)),  # NULL: current
    Column("status", String(32), nullable=False),
    Column("schedule", String(64)),
    Column("record", TEXT, nullable=False),  # JSON of the StatusRecord first seen
    # The latest healthy observation that confirmed the status. For an open interval these are
    # only written when it closes: until then the source's own state (last_healthy_at,
    # last_document_sha256) is the confirmation, so an unchanged day rewrites no status row.
    Column("last_confirmed_at", String(32), nullable=False),
    Column("last_document_sha256", String(64), nullable=False),
    # The law over time (dates, YYYY-MM-DD): from when the status held in law (an instrument's
    # date, or the earliest evidence) to when it ceased (NULL: not known to have ceased). The
    # observation interval above says when schedwatch saw it; this one says what it says.
    Column("legal_from", String(10)),
    Column("legal_to", String(10)),
    # 1: written by `schedwatch backfill` from a regulator's archive, not observed live.
    Column("backfilled", INTEGER, nullable=False, default="0"),
    # 1: the record holds a dated change (``StatusRecord.holds_date``): a run whose document
    # did not change reads these open intervals only, not the thousands of watch = "all".
    Column("dated", INTEGER, nullable=False, default="0"),
    Index("ix_status_open", "source_id", "substance", where="valid_to IS NULL"),
    Index("ix_status_dated", "source_id", where="valid_to IS NULL AND dated = 1"),
    Index("ix_status_substance", "substance", "valid_from"),
    Index("ix_status_span", "valid_from", "valid_to"),
    Index("ix_status_legal", "legal_from", "legal_to"),
)

changes = Table(
    "changes",
    Column("id", INTEGER, primary_key=True),
    Column("run_id", INTEGER, references="runs.id", nullable=False),
    Column("detected_at", String(32), nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("substance", String(200)),  # NULL for source-level changes
    Column("source_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("summary", TEXT, nullable=False),
    Column("before", TEXT),  # JSON record / pending item, or NULL
    Column("after", TEXT),
    Column("effective_date", String(32)),
    Column("before_sha256", String(64)),
    Column("after_sha256", String(64)),
    Column("details", TEXT),  # JSON object: error text, new URL, damping note ...
    Column("backfilled", INTEGER, nullable=False, default="0"),
    Index("ix_changes_detected", "detected_at"),
)

pending = Table(
    "pending",
    Column("id", INTEGER, primary_key=True),
    Column("source_id", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("substance", String(200), nullable=False),
    Column("item", TEXT, nullable=False),
    Column("first_seen_at", String(32), nullable=False),
    Column("last_seen_at", String(32), nullable=False),
    Column("resolved_at", String(32)),
    # One row per pending item: a proposal that disappears and comes back reopens its row.
    Unique("source_id", "key", "substance"),
)

outbox = Table(
    "outbox",
    Column("id", INTEGER, primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # alert | weekly | test
    Column("recipient", String(320), nullable=False),
    Column("change_ids", TEXT, nullable=False),  # JSON list of change ids
    Column("reference", String(64)),  # e.g. the ISO week of a weekly report
    Column("created_at", String(32), nullable=False),
    # queued | delivered | failed (permanent)
    Column("state", String(16), nullable=False, default="queued"),
    Column("attempts", INTEGER, nullable=False, default="0"),
    Column("next_attempt_at", String(32)),
    Column("last_error", TEXT),
    Column("delivered_at", String(32)),
    Column("message_id", String(320)),
)

scheduling_actions = Table(
    # The dated scheduling actions the regulators' documents state (``ScheduledAction``): a
    # substance's scheduling history. One row per action, whoever read it first: a live run
    # (``backfilled`` 0) or ``schedwatch backfill`` (1). A store made before this table gets
    # it from ``create_missing`` when next opened for writing; readers of such a store
    # see no actions (``Store.actions``).
    "actions",
    Column("id", INTEGER, primary_key=True),
    Column("jurisdiction", String(8), nullable=False),
    Column("substance", String(200), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("action", String(100), nullable=False),
    Column("date", String(10), nullable=False),
    Column("date_kind", String(32), nullable=False),
    Column("citation", String(200), nullable=False),
    Column("title", TEXT, nullable=False),
    Column("document", String(200)),
    Column("url", TEXT),
    Column("effect", TEXT),
    Column("first_observed_at", String(32), nullable=False),
    Column("document_sha256", String(64)),  # the archived document that stated it
    Column("backfilled", INTEGER, nullable=False, default="0"),
    Unique("jurisdiction", "substance", "source_id", "action", "date", "citation",
                        name="uq_actions_identity"),
    Index("ix_actions_substance", "substance", "date"),
)

#: The identity of a stored action: storing it again adds nothing.
ACTION_KEY = ("jurisdiction", "substance", "source_id", "action", "date", "citation")


heartbeats = Table(
    "heartbeats",
    Column("name", String(64), primary_key=True),
    Column("at", String(32), nullable=False),
    Column("pid", INTEGER),
    Column("detail", TEXT),
)

revisions = Table(
    # How many times the rows the site keeps digests of were rewritten or removed, counted
    # by the database's own triggers (``rewrite_triggers``) whoever writes: schedwatch only
    # adds changes, and rewrites intervals' records only in a backfill or for a replaced
    # Poisons Standard, so these stay put for months. The site trusts the row digests it
    # kept (``reports.digest_carry``) only while the count it kept them at is the count here.
    "revisions",
    Column("name", String(32), primary_key=True),
    Column("value", INTEGER, nullable=False, default="0"),
)

TABLES = (runs, fetches, documents, source_state, status, changes, pending, outbox,
          scheduling_actions, heartbeats, revisions)

#: What each count in ``revisions`` counts, as (table, the columns whose UPDATE counts (""
#: any), the table's key): a statement that may have rewritten or removed a row of
#: ``changes`` or an interval's ``record`` (or its id) in ``status``. Adding rows is not
#: counted: a new row has a new key.
REVISED = {"changes": ("changes", "", "id"), "status.record": ("status", "id, record", "id")}

#: The triggers that keep the counts. SQLite has no statement triggers: one a row; it does
#: not truncate a table that has a DELETE trigger. PostgreSQL: one a statement, TRUNCATE too
#: (it has no INSERT OR REPLACE; its ON CONFLICT DO UPDATE runs the UPDATE trigger).
_PG_COUNT = ("CREATE OR REPLACE FUNCTION schedwatch_count_revision() RETURNS trigger "
             "LANGUAGE plpgsql AS $$ BEGIN UPDATE revisions SET value = value + 1 WHERE "
             "name = TG_ARGV[0]; RETURN NULL; END $$")


class Trigger(NamedTuple):
    """One trigger of ``rewrite_triggers``: its name, its table, the count it keeps (its
    name in ``revisions``), its DDL."""

    name: str
    table: str
    kind: str
    ddl: str


def rewrite_triggers(backend: str) -> list[Trigger]:
    """Each trigger that counts a table's rewrites in ``revisions``."""
    made: list[Trigger] = []
    for name, (table, columns, key) in REVISED.items():
        trigger = f"{table}_revised"
        of = f" OF {columns}" if columns else ""
        if backend == "postgresql":
            made.append(Trigger(trigger, table, name,
                                f"CREATE TRIGGER {trigger} AFTER UPDATE{of} OR DELETE OR "
                                f"TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION "
                                f"schedwatch_count_revision('{name}')"))
            continue
        count = f"UPDATE revisions SET value = value + 1 WHERE name = '{name}';"
        made.append(Trigger(f"{trigger}_update", table, name,
                            f"CREATE TRIGGER {trigger}_update AFTER UPDATE{of} ON {table} "
                            f"BEGIN {count} END"))
        made.append(Trigger(f"{trigger}_delete", table, name,
                            f"CREATE TRIGGER {trigger}_delete AFTER DELETE ON {table} "
                            f"BEGIN {count} END"))
        # INSERT OR REPLACE of a row's id removes the row without its DELETE trigger (unless
        # recursive triggers are on): counted before, when the id is taken.
        made.append(Trigger(f"{trigger}_replace", table, name,
                            f"CREATE TRIGGER {trigger}_replace BEFORE INSERT ON {table} WHEN "
                            f"EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
                            f"BEGIN {count} END"))
    return made


#: The tables, indexes and triggers of a complete SQLite store.
EXPECTED_NAMES = frozenset({t.name for t in TABLES} | {i.name for t in TABLES for i in t.indexes}
                           | {trigger.name for trigger in rewrite_triggers("sqlite")})


def select_actions(substance: str | None = None,
                   jurisdiction: str | None = None) -> tuple[str, dict[str, Any]]:
    """The stored actions (of one substance, one jurisdiction), oldest first; on one day in
    the order they were stored (a parser gives them in page order)."""
    conditions, params = [], {}
    if substance is not None:
        conditions.append("substance = :substance")
        params["substance"] = substance
    if jurisdiction is not None:
        conditions.append("jurisdiction = :jurisdiction")
        params["jurisdiction"] = jurisdiction
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    return f"SELECT * FROM actions{where} ORDER BY jurisdiction, date, id", params


#: The flag of the open intervals that hold a dated change, from their stored records (the
#: JSON functions of each database: SQLite's built in, PostgreSQL's on the text cast).
_DATED_FILL = {
    "sqlite": "UPDATE status SET dated = 1 WHERE valid_to IS NULL AND (json_extract(record, "
              "'$.status') = 'not_in_force' OR json_extract(record, '$.in_force_until') IS "
              "NOT NULL)",
    "postgresql": "UPDATE status SET dated = 1 WHERE valid_to IS NULL AND ((record::json ->> "
                  "'status') = 'not_in_force' OR (record::json ->> 'in_force_until') IS NOT "
                  "NULL)",
}

#: Columns added after a store was first created: (table, column, DDL type, fill statement
#: or one per database).
_ADDED_COLUMNS = (
    ("status", "legal_from", "VARCHAR(10)",
     "UPDATE status SET legal_from = substr(valid_from, 1, 10) WHERE legal_from IS NULL"),
    ("status", "legal_to", "VARCHAR(10)",
     "UPDATE status SET legal_to = substr(valid_to, 1, 10) "
     "WHERE legal_to IS NULL AND valid_to IS NOT NULL"),
    ("status", "backfilled", "INTEGER NOT NULL DEFAULT 0", None),
    ("changes", "backfilled", "INTEGER NOT NULL DEFAULT 0", None),
    ("status", "dated", "INTEGER NOT NULL DEFAULT 0", _DATED_FILL),
)


def create_missing(conn: Connection) -> bool:
    """Create the tables and indexes a store lacks, and bring a store made by an earlier
    version up to the current columns (intervals it wrote get the legal span of their
    observation: the best it knew). Returns whether the store had no tables at all. Runs in
    the schema transaction, under the schema lock (``Store._create_schema``)."""
    present = conn.tables()
    for table in TABLES:
        if table.name not in present:
            conn.execute(table.create_table(conn.backend))
    for table_name, column, ddl, fill in _ADDED_COLUMNS:
        if table_name in present and column not in conn.columns(table_name):
            conn.execute(f"ALTER TABLE {table_name} ADD COLUMN {column} {ddl}")
            if fill:
                conn.execute(fill if isinstance(fill, str) else fill[conn.backend])
    indexes = conn.indexes()  # after the columns: an index may be on an added one
    for table in TABLES:
        for index in table.indexes:
            if index.name not in indexes:
                conn.execute(table.create_index(index))
    _count_revisions(conn)
    return runs.name not in present


def _count_revisions(conn: Connection) -> None:
    """The ``revisions`` rows and the triggers that keep them, where missing. A store that
    had rows before its triggers starts at 0: nothing was kept against it yet. A trigger
    made again (dropped by hand) moves its count: what was written while it was missing
    was not counted."""
    counted = {str(row["name"]) for row in conn.rows("SELECT name FROM revisions")}
    for name in REVISED.keys() - counted:
        conn.execute("INSERT INTO revisions (name, value) VALUES (:name, 0)", {"name": name})
    triggers = conn.triggers()
    missing = [trigger for trigger in rewrite_triggers(conn.backend)
               if trigger.name not in triggers]
    if conn.backend == "postgresql" and missing:
        conn.execute(_PG_COUNT)
    for trigger in missing:
        conn.execute(trigger.ddl)
        if trigger.kind in counted:  # it was counting before it went missing
            conn.execute("UPDATE revisions SET value = value + 1 WHERE name = :name",
                         {"name": trigger.kind})
