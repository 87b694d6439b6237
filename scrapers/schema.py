"""The store's schema, declared once (SQLAlchemy Core tables), and the columns added to
stores made by earlier versions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32)),
    sa.Column("trigger", sa.String(32), nullable=False, server_default="cli"),
    sa.Column("jurisdictions", sa.String(200), nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("summary", sa.Text),
)

fetches = sa.Table(
    "fetches", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("final_url", sa.Text),
    # fetched | not_modified | unchanged | failed | extraction_failed
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("error_kind", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("http_status", sa.Integer),
    sa.Column("document_sha256", sa.String(64)),
    sa.Column("elapsed_ms", sa.Integer),
    sa.Index("ix_fetches_source_started", "source_id", "started_at"),
)

documents = sa.Table(
    "documents", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("media_type", sa.String(200)),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),  # relative to the documents folder
)

source_state = sa.Table(
    "source_state", metadata,
    sa.Column("source_id", sa.String(64), primary_key=True),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    # healthy | source_failed | extraction_failed (| unknown before the first fetch)
    sa.Column("health", sa.String(32), nullable=False),
    sa.Column("failing_since", sa.String(32)),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("last_attempt_at", sa.String(32)),
    sa.Column("last_healthy_at", sa.String(32)),
    sa.Column("last_document_sha256", sa.String(64)),
    sa.Column("last_url", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("marker", sa.Text),
    sa.Column("watch_keys", sa.Text),  # JSON list: the watch list the records were made for
    sa.Column("document_dates", sa.Text),  # JSON list of [label, date]
    sa.Column("document_meta", sa.Text),  # JSON object
    sa.Column("title", sa.Text),
    sa.Column("instrument", sa.Text),
)

status = sa.Table(
    "status", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    sa.Column("substance", sa.String(200), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("valid_from", sa.String(32), nullable=False),
    sa.Column("valid_to", sa.String(32)),  # NULL: current
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("schedule", sa.String(64)),
    sa.Column("record", sa.Text, nullable=False),  # JSON of the StatusRecord first seen
    # The latest healthy observation that confirmed the status. For an open interval these are
    # only written when it closes: until then the source's own state (last_healthy_at,
    # last_document_sha256) is the confirmation, so an unchanged day rewrites no status row.
    sa.Column("last_confirmed_at", sa.String(32), nullable=False),
    sa.Column("last_document_sha256", sa.String(64), nullable=False),
    # The law over time (dates, YYYY-MM-DD): from when the status held in law (an instrument's
    # date, or the earliest evidence) to when it ceased (NULL: not known to have ceased). The
    # observation interval above says when schedwatch saw it; this one says what it says.
    sa.Column("legal_from", sa.String(10)),
    sa.Column("legal_to", sa.String(10)),
    # 1: written by `schedwatch backfill` from a regulator's archive, not observed live.
    sa.Column("backfilled", sa.Integer, nullable=False, server_default="0"),
    # Partial on SQLite (naming the PostgreSQL option would import that dialect, and asyncio,
    # on every start); a plain index elsewhere.
    sa.Index("ix_status_open", "source_id", "substance", sqlite_where=sa.text("valid_to IS NULL")),
    sa.Index("ix_status_substance", "substance", "valid_from"),
    sa.Index("ix_status_span", "valid_from", "valid_to"),
    sa.Index("ix_status_legal", "legal_from", "legal_to"),
)

changes = sa.Table(
    "changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("detected_at", sa.String(32), nullable=False),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    sa.Column("substance", sa.String(200)),  # NULL for source-level changes
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("before", sa.Text),  # JSON record / pending item, or NULL
    sa.Column("after", sa.Text),
    sa.Column("effective_date", sa.String(32)),
    sa.Column("before_sha256", sa.String(64)),
    sa.Column("after_sha256", sa.String(64)),
    sa.Column("details", sa.Text),  # JSON object: error text, new URL, damping note ...
    sa.Column("backfilled", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_changes_detected", "detected_at"),
)

pending = sa.Table(
    "pending", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    sa.Column("substance", sa.String(200), nullable=False),
    sa.Column("item", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.String(32), nullable=False),
    sa.Column("last_seen_at", sa.String(32), nullable=False),
    sa.Column("resolved_at", sa.String(32)),
    # One row per pending item: a proposal that disappears and comes back reopens its row.
    sa.UniqueConstraint("source_id", "key", "substance"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # alert | weekly | test
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("change_ids", sa.Text, nullable=False),  # JSON list of change ids
    sa.Column("reference", sa.String(64)),  # e.g. the ISO week of a weekly report
    sa.Column("created_at", sa.String(32), nullable=False),
    # queued | delivered | failed (permanent)
    sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.String(32)),
    sa.Column("message_id", sa.String(320)),
)

scheduling_actions = sa.Table(
    # The dated scheduling actions the regulators' documents state (``ScheduledAction``): a
    # substance's scheduling history. One row per action, whoever read it first: a live run
    # (``backfilled`` 0) or ``schedwatch backfill`` (1). A store made before this table gets
    # it from ``metadata.create_all`` when next opened for writing; readers of such a store
    # see no actions (``Store.actions``).
    "actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    sa.Column("substance", sa.String(200), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("date", sa.String(10), nullable=False),
    sa.Column("date_kind", sa.String(32), nullable=False),
    sa.Column("citation", sa.String(200), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("document", sa.String(200)),
    sa.Column("url", sa.Text),
    sa.Column("effect", sa.Text),
    sa.Column("first_observed_at", sa.String(32), nullable=False),
    sa.Column("document_sha256", sa.String(64)),  # the archived document that stated it
    sa.Column("backfilled", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("jurisdiction", "substance", "source_id", "action", "date", "citation",
                        name="uq_actions_identity"),
    sa.Index("ix_actions_substance", "substance", "date"),
)

#: The identity of a stored action: storing it again adds nothing.
ACTION_KEY = ("jurisdiction", "substance", "source_id", "action", "date", "citation")


def select_actions(substance: str | None = None,
                   jurisdiction: str | None = None) -> sa.Select[Any]:
    """The stored actions (of one substance, one jurisdiction), oldest first; on one day in
    the order they were stored (a parser gives them in page order)."""
    query = sa.select(scheduling_actions)
    if substance is not None:
        query = query.where(scheduling_actions.c.substance == substance)
    if jurisdiction is not None:
        query = query.where(scheduling_actions.c.jurisdiction == jurisdiction)
    return query.order_by(scheduling_actions.c.jurisdiction, scheduling_actions.c.date,
                          scheduling_actions.c.id)


heartbeats = sa.Table(
    "heartbeats", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("detail", sa.Text),
)


#: Columns added after a store was first created: (table, column, DDL type, fill statement).
_ADDED_COLUMNS = (
    ("status", "legal_from", "VARCHAR(10)",
     "UPDATE status SET legal_from = substr(valid_from, 1, 10) WHERE legal_from IS NULL"),
    ("status", "legal_to", "VARCHAR(10)",
     "UPDATE status SET legal_to = substr(valid_to, 1, 10) "
     "WHERE legal_to IS NULL AND valid_to IS NOT NULL"),
    ("status", "backfilled", "INTEGER NOT NULL DEFAULT 0", None),
    ("changes", "backfilled", "INTEGER NOT NULL DEFAULT 0", None),
)


def _add_missing_columns(conn: Connection) -> None:
    """Bring a store made by an earlier version up to the current columns: intervals it
    wrote get the legal span of their observation (the best it knew). Runs in the schema
    transaction, under the schema lock (``Store._create_schema``)."""
    inspector = sa.inspect(conn)
    present = {table: {c["name"] for c in inspector.get_columns(table)}
               for table in {t for t, *_ in _ADDED_COLUMNS}}
    missing = [entry for entry in _ADDED_COLUMNS if entry[1] not in present[entry[0]]]
    for table, column, ddl, fill in missing:
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
        if fill:
            conn.exec_driver_sql(fill)


