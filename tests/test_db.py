"""The database layer under the store (``scrapers.db``): database URLs, the statements on
both databases, and a store made by an earlier version brought up to the current schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from scrapers import db
from scrapers.errors import StoreError
from scrapers.schema import SCHEMA_VERSION
from scrapers.store import Store
from tests.support.postgres import database_url, postgres_server  # noqa: F401 - fixtures


@pytest.mark.parametrize(("url", "backend", "path"), [
    ("sqlite:////srv/schedwatch/schedwatch.db", "sqlite", "/srv/schedwatch/schedwatch.db"),
    ("sqlite:///data/schedwatch.db", "sqlite", "data/schedwatch.db"),
    ("sqlite://", "sqlite", None),
    ("sqlite:///:memory:", "sqlite", None),
])
def test_sqlite_urls_in_the_form_earlier_configurations_used(url, backend, path) -> None:
    parsed = db.parse_url(url)
    assert (parsed.backend, parsed.path) == (backend, path)


def test_a_postgresql_url_becomes_libpq_keywords_and_never_shows_its_password() -> None:
    parsed = db.parse_url("postgresql+psycopg://tracker:s%40cret@db.example.org:5433/"
                          "schedwatch?sslmode=require")
    assert parsed.backend == "postgresql"
    assert dict(parsed.conninfo) == {"host": "db.example.org", "port": "5433",
                                     "user": "tracker", "password": "s@cret",
                                     "dbname": "schedwatch", "sslmode": "require"}
    assert "cret" not in parsed.safe and ":***@db.example.org" in parsed.safe
    assert db.parse_url("postgresql://tracker@db/schedwatch").conninfo["dbname"] == "schedwatch"


@pytest.mark.parametrize("url", ["mysql://tracker@db/schedwatch", "schedwatch.db",
                                 "postgresql+psycopg2://tracker@db/schedwatch"])
def test_a_url_of_another_database_is_one_line_naming_the_two_forms(tmp_path, url) -> None:
    with pytest.raises(StoreError) as raised:
        Store(tmp_path / "data", url)
    message = str(raised.value)
    assert "\n" not in message
    assert "sqlite:///" in message and "postgresql+psycopg://" in message


def test_parameters_become_psycopg_placeholders_and_casts_stay() -> None:
    sql = ("SELECT l.classid::bigint = :ns, '100%' FROM t WHERE a = :a AND b IN (:b0, :b1)")
    assert db._for_psycopg(sql) == ("SELECT l.classid::bigint = %(ns)s, '100%%' FROM t "
                                    "WHERE a = %(a)s AND b IN (%(b0)s, %(b1)s)")


def _scratch(url: str | None, tmp_path: Path) -> db.Database:
    parsed = db.parse_url(url or f"sqlite:///{tmp_path / 'scratch.db'}")
    database = db.Database(parsed)
    with database.begin() as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id " + ("SERIAL" if parsed.backend == "postgresql"
                                                  else "INTEGER") +
                     " PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, n INTEGER)")
    return database


def test_statements_behave_the_same_on_both_databases(
        tmp_path: Path, database_url: str | None) -> None:  # noqa: F811 - the fixture
    database = _scratch(database_url, tmp_path)
    try:
        with database.begin() as conn:
            first = conn.insert("items", {"name": "ketamine", "n": 1})
            assert conn.insert("items", {"name": "esketamine", "n": 2}) == first + 1
            assert conn.insert_ignoring_duplicates("items", {"name": "ketamine", "n": 9},
                                                   ["name"]) == 0
            assert conn.insert_ignoring_duplicates("items", {"name": "arketamine", "n": 3},
                                                   ["name"]) == 1
            # A value named like a condition's parameter does not collide with it.
            assert conn.update("items", {"n": 10}, "name = :n", {"n": "ketamine"}) == 1
        with database.connect() as conn:
            listed, params = db.in_list("p", [])
            assert conn.rows(f"SELECT * FROM items WHERE name IN {listed}", params) == []
            listed, params = db.in_list("p", ["ketamine", "arketamine"])
            rows = conn.rows(f"SELECT name, n FROM items WHERE name IN {listed} ORDER BY n",
                             params)
            assert rows == [{"name": "arketamine", "n": 3}, {"name": "ketamine", "n": 10}]
            assert "items" in conn.tables() and conn.columns("items") == {"id", "name", "n"}
    finally:
        database.dispose()


def test_a_failed_transaction_keeps_nothing_and_says_what_the_driver_said(
        tmp_path: Path, database_url: str | None) -> None:  # noqa: F811 - the fixture
    database = _scratch(database_url, tmp_path)
    try:
        with pytest.raises(db.DatabaseError) as raised, database.begin() as conn:
            conn.insert("items", {"name": "ketamine", "n": 1})
            conn.insert("items", {"name": "ketamine", "n": 2})  # the unique name
        assert "unique" in str(raised.value).lower()
        assert raised.value.orig.__class__.__module__.split(".")[0] in ("sqlite3", "psycopg")
        with database.connect() as conn:
            assert conn.scalar("SELECT count(*) FROM items") == 0
    finally:
        database.dispose()


def test_a_locked_sqlite_database_is_an_operational_error(tmp_path: Path) -> None:
    database = _scratch(None, tmp_path)
    holder = sqlite3.connect(tmp_path / "scratch.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with database.connect() as conn:
            conn.execute("PRAGMA busy_timeout=50")
            with pytest.raises(db.OperationalError, match="locked"):
                conn.insert("items", {"name": "ketamine", "n": 1})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        with database.connect() as conn:  # the lock gone, the same statement goes through
            assert conn.insert("items", {"name": "ketamine", "n": 1}) >= 1
    finally:
        database.dispose()


#: The tables as a store made before the legal spans, backfill and scheduling actions had
#: them (what that version's SQLAlchemy declarations created).
_EARLIER_SCHEMA = """
CREATE TABLE runs (id INTEGER NOT NULL, started_at VARCHAR(32) NOT NULL,
    finished_at VARCHAR(32), "trigger" VARCHAR(32) DEFAULT 'cli' NOT NULL,
    jurisdictions VARCHAR(200) NOT NULL, exit_code INTEGER, summary TEXT, PRIMARY KEY (id));
CREATE TABLE status (id INTEGER NOT NULL, jurisdiction VARCHAR(8) NOT NULL,
    substance VARCHAR(200) NOT NULL, source_id VARCHAR(64) NOT NULL,
    valid_from VARCHAR(32) NOT NULL, valid_to VARCHAR(32), status VARCHAR(32) NOT NULL,
    schedule VARCHAR(64), record TEXT NOT NULL, last_confirmed_at VARCHAR(32) NOT NULL,
    last_document_sha256 VARCHAR(64) NOT NULL, PRIMARY KEY (id));
CREATE TABLE changes (id INTEGER NOT NULL, run_id INTEGER NOT NULL,
    detected_at VARCHAR(32) NOT NULL, jurisdiction VARCHAR(8) NOT NULL,
    substance VARCHAR(200), source_id VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL,
    summary TEXT NOT NULL, before TEXT, after TEXT, effective_date VARCHAR(32),
    before_sha256 VARCHAR(64), after_sha256 VARCHAR(64), details TEXT, PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES runs (id));
INSERT INTO runs VALUES (1, '2026-03-02T11:00:00Z', '2026-03-02T11:00:05Z', 'cli', 'ca', 0,
    '{}');
INSERT INTO status VALUES (1, 'ca', 'ketamine', 'ca-cdsa', '2026-03-02T11:00:00Z',
    '2026-05-04T11:00:00Z', 'controlled', 'I', '{}', '2026-05-03T11:00:00Z', 'aa');
INSERT INTO status VALUES (2, 'ca', 'ketamine', 'ca-csr', '2026-03-02T11:00:00Z', NULL,
    'not_in_force', '1', '{"status": "not_in_force", "in_force_until": null}',
    '2026-05-03T11:00:00Z', 'bb');
INSERT INTO status VALUES (3, 'ca', 'esketamine', 'ca-cdsa', '2026-03-02T11:00:00Z', NULL,
    'controlled', 'I', '{"status": "controlled", "in_force_until": "2027-01-01"}',
    '2026-05-03T11:00:00Z', 'cc');
INSERT INTO status VALUES (4, 'ca', 'arketamine', 'ca-cdsa', '2026-03-02T11:00:00Z', NULL,
    'controlled', 'I', '{"status": "controlled", "in_force_until": null}',
    '2026-05-03T11:00:00Z', 'dd');
"""


def test_a_store_made_by_an_earlier_version_opens_with_its_history(
        tmp_path: Path, database_url: str | None) -> None:  # noqa: F811 - the fixture
    data = tmp_path / "data"
    data.mkdir()
    earlier = db.Database(db.parse_url(database_url or f"sqlite:///{data / 'schedwatch.db'}"))
    with earlier.begin() as conn:
        for statement in _EARLIER_SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
    earlier.dispose()
    store = Store(data, database_url)
    try:
        with store.db.connect() as conn:
            if store.backend == "sqlite":
                assert conn.scalar("PRAGMA user_version") == SCHEMA_VERSION
            assert {"legal_from", "legal_to", "backfilled", "dated"} <= conn.columns("status")
            assert {"actions", "outbox", "source_state"} <= conn.tables()
            rows = conn.rows("SELECT id, legal_from, legal_to, backfilled, dated FROM status "
                             "ORDER BY id")
        # The interval it wrote gets the legal span of its observation, the best it knew;
        # the open ones that hold a dated change are flagged from their records.
        assert rows[0] == {"id": 1, "legal_from": "2026-03-02", "legal_to": "2026-05-04",
                           "backfilled": 0, "dated": 0}
        assert [(row["id"], row["dated"]) for row in rows] == [(1, 0), (2, 1), (3, 1), (4, 0)]
        assert [run["id"] for run in store.runs()] == [1]
        assert json.loads(store.runs()[0]["summary"]) == {}
    finally:
        store.close()
    # Opened again: nothing to bring up; the history reads the same.
    again = Store.open_for_reading(data, database_url)
    try:
        assert again.earliest_evidence() == "2026-03-02"
        assert [run["id"] for run in again.runs()] == [1]
    finally:
        again.close()
