"""The store on both databases it supports: the data folder's SQLite file and a real
PostgreSQL server (skipped with the reason when there is none, see tests/support/postgres.py).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scrapers.clock import stamp
from scrapers.errors import LockedError, StoreError
from scrapers.records import StatusRecord
from scrapers.store import Store
from tests.support.postgres import database_url, postgres_server  # noqa: F401 - fixtures

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path, database_url: str | None):  # noqa: F811 - the imported fixture
    opened = Store(tmp_path / "data", database_url)
    yield opened
    opened.close()


def test_a_run_commits_whole_or_not_at_all(store: Store) -> None:
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        change = writer.add_change(detected_at=NOW, jurisdiction="ca", substance="ketamine",
                                   source_id="ca-cdsa", kind="rescheduled",
                                   summary="Ketamine — Canada: Schedule I → III (rescheduled)",
                                   before={"schedule": "I"}, after={"schedule": "III"})
        writer.finish(finished_at=NOW, exit_code=0, summary={"changes": 1})
    with pytest.raises(RuntimeError), \
            store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.add_change(detected_at=NOW, jurisdiction="ca", substance="esketamine",
                          source_id="ca-cdsa", kind="scheduled", summary="lost", before=None,
                          after=None)
        raise RuntimeError("the run dies")
    [stored] = store.changes()
    assert (stored.id, stored.kind, stored.after) == (change, "rescheduled", {"schedule": "III"})
    [run] = store.runs()
    assert run["exit_code"] == 0 and run["summary"] == '{"changes": 1}'


def test_an_alert_is_queued_once_and_a_document_recorded_once(store: Store) -> None:
    for _ in range(2):  # a retried run queues the same alerts and archives the same bytes
        with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
            writer.add_document(sha256="a" * 64, size=3, media_type="application/xml",
                                source_id="ca-cdsa", url="https://example.org/C-38.8.xml",
                                seen_at=NOW, path="aa/" + "a" * 64)
            queued = writer.enqueue(idempotency_key="alert:1:officer", kind="alert",
                                    recipient="officer@example.org", change_ids=[1], now=NOW)
    assert queued is False
    assert store.enqueue(idempotency_key="alert:1:officer", kind="alert",
                         recipient="officer@example.org", change_ids=[1], now=NOW) is False
    assert [r["idempotency_key"] for r in store.outbox_rows()] == ["alert:1:officer"]
    info = store.document_info("a" * 64)
    assert info is not None and info["source_id"] == "ca-cdsa"


@pytest.mark.parametrize("chunk", [500, 2])
def test_the_documents_a_publish_cites_are_read_in_a_few_queries_as_one_at_a_time(
        store: Store, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """``documents_info`` is ``document_info`` of each document the store holds, in lists
    of ``_IN_LIST_CHUNK`` (a small one here: a list split in parts reads the same)."""
    monkeypatch.setattr("scrapers.store._IN_LIST_CHUNK", chunk)
    shas = [letter * 64 for letter in "abc"]
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        for sha, media in zip(shas, ["application/xml", None, "text/html"], strict=True):
            writer.add_document(sha256=sha, size=3, media_type=media, source_id="ca-cdsa",
                                url="https://example.org/" + sha[:1], seen_at=NOW,
                                path=sha[:2] + "/" + sha)
    asked = [shas[2], "f" * 64, shas[0], shas[2], shas[1]]  # one not held, one twice
    assert store.documents_info(asked) == {sha: store.document_info(sha) for sha in shas}
    assert store.documents_info(asked)[shas[1]]["media_type"] is None
    assert store.documents_info([]) == {}


@pytest.mark.parametrize("text", ["a" * 63, "a" * 65, "A" * 64, "g" * 64,
                                  "../" + "a" * 61, "a" * 62 + "/.", ""])
def test_a_document_is_found_only_by_a_sha256(store: Store, text: str) -> None:
    """What names a document in the store (a change's, a state's) is stored text: only a
    sha256 in lower-case hex is made a path, never a name that could leave the folder."""
    with pytest.raises(StoreError, match="not a sha256"):
        store.document_path(text)
    assert store.document_path("0a" * 32) == store.documents_dir / "0a" / ("0a" * 32)


def test_a_taken_lock_is_refused_with_its_holder_and_free_again_after(
        tmp_path: Path, store: Store, database_url: str | None) -> None:  # noqa: F811
    # A second store: another machine on PostgreSQL, another process's view on SQLite.
    other = Store(tmp_path / "data" if database_url is None else tmp_path / "other",
                  database_url)
    with store.lock("jurisdiction-ca", holder="scheduler"):
        with pytest.raises(LockedError) as refused, other.lock("jurisdiction-ca"):
            pass
        with other.lock("jurisdiction-us"):  # another name is another lock
            pass
    assert str(refused.value).startswith("another schedwatch process (pid ")
    assert str(refused.value).endswith("scheduler) is already working on jurisdiction-ca; "
                                       "nothing done")
    with other.lock("jurisdiction-ca"):
        pass
    other.close()


def test_a_reader_sees_the_data_and_cannot_write(tmp_path: Path, store: Store,
                                                 database_url: str | None) -> None:  # noqa: F811
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    reader = Store.open_for_reading(tmp_path / "data", database_url)
    assert len(reader.runs()) == 1
    with pytest.raises(StoreError, match="opened for reading only"), \
            reader.transaction(started_at=NOW, jurisdictions=["ca"]):
        pass
    reader.close()


def test_reads_in_a_snapshot_see_one_moment_whatever_another_process_commits(
        tmp_path: Path, store: Store, database_url: str | None) -> None:  # noqa: F811
    """What the site reads of several tables comes from one moment: a run another process
    commits between two of the reads is seen by neither, and by the next read after."""
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.open_intervals([_csr_record("ketamine")], at=NOW)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    other = Store(tmp_path / "data" if database_url is None else tmp_path / "other",
                  database_url)
    later = NOW + timedelta(days=1)
    try:
        with store.snapshot():
            before = [i.record.substance for i in store.history()]
            with other.transaction(started_at=later, jurisdictions=["ca"]) as writer:
                writer.open_intervals([_csr_record("esketamine")], at=later)
                writer.add_change(detected_at=later, jurisdiction="ca", substance="esketamine",
                                  source_id="ca-csr", kind="scheduled", summary="new",
                                  before=None, after={"schedule": "1"})
                writer.finish(finished_at=later, exit_code=0, summary={})
            seen = ([i.record.substance for i in store.history()], store.changes(),
                    len(store.runs()))
        after = ([i.record.substance for i in store.history()], store.changes(),
                 len(store.runs()))
    finally:
        other.close()
    assert before == ["ketamine"]
    assert seen == (["ketamine"], [], 1)
    assert sorted(after[0]) == ["esketamine", "ketamine"] and [c.kind for c in after[1]] == [
        "scheduled"] and after[2] == 2


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    from tests.support.smtp import free_port

    url = f"postgresql+psycopg://schedwatch:secret-password@127.0.0.1:{free_port()}/none"
    with pytest.raises(StoreError) as refused:
        Store(tmp_path / "data", url)
    message = str(refused.value)
    assert message.startswith("cannot open the database postgresql+psycopg://schedwatch:***@")
    assert "OperationalError" in message and "secret-password" not in message


def _csr_record(substance: str, **changes: object) -> StatusRecord:
    base = StatusRecord(
        jurisdiction="ca", substance=substance, status="controlled", schedule="1",
        control_level="C2", instrument="SOR/2025-242", provision="Sch. 1, item 14(1)",
        listed_as=substance.title(), basis="named", source_id="ca-csr",
        source_url="http://x/csr", document_sha256="a" * 64,
        retrieved_at="2026-09-15T12:00:00+00:00", evidence_date="2026-04-17")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_prior_of_a_run_holds_the_dated_records_ready_and_the_rest_on_demand(
        store: Store) -> None:
    """A warm run reads only the records the law can move without a new document: one
    not in force yet, one whose listing ends on an announced date; the rest when asked."""
    plain = _csr_record("ketamine")
    ending = _csr_record("esketamine", in_force_until="2027-01-01")
    coming = _csr_record("arketamine", status="not_in_force", in_force_since="2026-10-01",
                         in_force_since_kind="instrument")
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.open_intervals([plain, ending, coming], at=NOW)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    prior = store.prior(["ca-csr", "ca-cdsa"], since=NOW)
    assert sorted(i.record.substance for i in prior.dated_intervals("ca-csr")) == [
        "arketamine", "esketamine"]
    assert prior.dated_intervals("ca-cdsa") == ()
    by_name = {i.record.substance: i.record for i in prior.current["ca-csr"]}
    assert by_name == {"ketamine": plain, "esketamine": ending, "arketamine": coming}
    assert prior.current["ca-cdsa"] == ()


def test_the_check_log_is_every_fetch_oldest_first_with_what_the_weekly_reports_count(
        store: Store) -> None:
    later = NOW.replace(hour=10)
    with store.transaction(started_at=NOW, jurisdictions=["ca", "us"]) as writer:
        writer.add_fetch(source_id="us-ecfr-1308", started_at=later, url="https://e.example/",
                         outcome="failed", error="HTTP 503", error_kind="http")
        writer.add_fetch(source_id="ca-cdsa", started_at=NOW, url="https://c.example/",
                         outcome="not_modified", document_sha256="ab" * 32, elapsed_ms=80)
    first, second = (row["id"] for row in store.fetch_log())
    assert store.check_log() == [
        {"id": first, "source_id": "us-ecfr-1308", "started_at": stamp(later),
         "outcome": "failed", "error": "HTTP 503"},
        {"id": second, "source_id": "ca-cdsa", "started_at": stamp(NOW),
         "outcome": "not_modified", "error": None}]
    # The same fetches as the full log, in the same order; after an id, only those after.
    assert [(r["source_id"], r["outcome"]) for r in store.fetch_log()] == \
        [(r["source_id"], r["outcome"]) for r in store.check_log()]
    assert [r["id"] for r in store.check_log(after_id=first)] == [second]
    assert store.check_log(after_id=second) == []
    # What a tally up to an id counted: the rows up to it, and that row.
    assert store.check_log_mark(second) == (
        second, 2, ("ca-cdsa", stamp(NOW), "not_modified"))
    assert store.check_log_mark(first) == (
        first, 1, ("us-ecfr-1308", stamp(later), "failed"))
    assert store.check_log_mark(second + 5) == (second + 5, 2, None)


def test_intervals_come_back_in_code_point_order_whatever_was_written_first(
        store: Store) -> None:
    """``status`` and the site list intervals by jurisdiction, substance and source (and the
    history by source and observation): sorted here, by code point, so that SQLite and
    PostgreSQL (whatever its collation: "Z" before "a", "é" after "z") give one order."""
    names = ["zolazepam", "Ketamine", "éthylkétamine", "arketamine", "Zeta", "ketamine"]
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.open_intervals([_csr_record(name) for name in names], at=NOW)
        writer.open_intervals([_csr_record(name, source_id="ca-cdsa") for name in names[:2]],
                              at=NOW)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    expected = [(name, source) for name in sorted(names)
                for source in sorted({"ca-csr"} | ({"ca-cdsa"} if name in names[:2] else set()))]
    current = [(i.record.substance, i.record.source_id) for i in store.current_intervals()]
    assert current == expected
    as_of = store.status_as_of(NOW.date())
    assert [(i.record.substance, i.record.source_id) for i in as_of] == expected
    history = [(i.record.source_id, i.record.substance) for i in store.history()]
    assert [source for source, _ in history] == ["ca-cdsa"] * 2 + ["ca-csr"] * 6
    # One observation time for all: the ties keep the order they were written in.
    assert [name for source, name in history if source == "ca-csr"] == names


def test_status_as_of_answers_as_a_reading_of_every_interval_would(store: Store) -> None:
    """``status_as_of`` chooses on the rows' columns before decoding their records; on
    random histories of legal spans, open and closed, observed in any order, it gives what
    reading every interval gives — per (source, substance), of those whose span holds the
    day the later observation, else the open one — in (jurisdiction, substance, source)
    order."""
    import random
    from datetime import date, timedelta

    rng = random.Random(18)
    days = [date(2020, 1, 1) + timedelta(days=30 * i) for i in range(12)]
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        for number in range(60):
            substance = f"substance-{number % 12}"
            source = rng.choice(["ca-csr", "ca-cdsa"])
            start = rng.choice(days[:-1])
            end = rng.choice([None, *[d for d in days if d > start]])
            writer.open_intervals(
                [_csr_record(substance, source_id=source, schedule=str(number))],
                at=NOW + timedelta(minutes=number),
                spans=[(start.isoformat(), end.isoformat() if end else None)],
                closed=rng.random() < 0.6)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    everything = store.history()
    for day in [*days, days[0] - timedelta(days=1), days[-1] + timedelta(days=400)]:
        at = day.isoformat()
        expected: dict[tuple[str, str], Any] = {}
        for interval in sorted(everything, key=lambda i: (i.record.jurisdiction,
                                                          i.record.substance,
                                                          i.record.source_id, i.valid_from,
                                                          i.id)):
            if interval.legal_from is None or interval.legal_from > at:
                continue
            key = (interval.record.source_id, interval.record.substance)
            holds = interval.legal_to is None or interval.legal_to > at
            if holds or (interval.valid_to is None and key not in expected):
                expected[key] = interval.id
        answer = store.status_as_of(day)
        assert sorted((i.record.source_id, i.record.substance, i.id) for i in answer) == \
            sorted((*key, ident) for key, ident in expected.items()), day
        order = [(i.record.jurisdiction, i.record.substance, i.record.source_id)
                 for i in answer]
        assert order == sorted(order), day
