"""Crash tests: the CLI, as a child process, SIGKILLs itself (SCHEDWATCH_CRASH_AT) at each
step of a run that has a real change to record (Canada's CDSA with ketamine moved from
Schedule I to Schedule III), then runs again normally. Afterwards the database passes
``PRAGMA integrity_check``, no observation or change is lost or duplicated, the baseline
intervals are intact, and every alert reached the local SMTP server exactly once — or, in
the one at-least-once window (accepted by the server, not yet marked delivered), twice
with the same Message-ID."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scrapers.faults import POINTS
from scrapers.store import Store
from tests.faults.crash_helpers import (
    CDSA_PATH,
    CSR_PATH,
    SIGKILLED,
    CanadaDocs,
    ca_config,
    canada_docs,
    document_files,
    dumps,
    run_child,
    stray_temp_files,
    table_rows,
)
from tests.support.served import DocServer
from tests.support.smtp import SmtpServer, email_section

PIPELINE_POINTS = ("fetched", "archived", "status_written", "changes_written", "before_commit")


@pytest.fixture(scope="module")
def docs() -> CanadaDocs:
    return canada_docs()


@pytest.fixture(scope="module")
def server() -> Iterator[DocServer]:
    with DocServer() as running:
        yield running


@dataclass(frozen=True)
class Baseline:
    data_dir: Path
    status: list[dict[str, Any]]  # every open status row after the baseline run
    past_segments: int = 0  # closed past legal segments the baseline stored


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, server: DocServer,
             docs: CanadaDocs) -> Baseline:
    """One baseline run (no email section: a baseline alerts nothing), copied per test."""
    folder = tmp_path_factory.mktemp("baseline")
    server.set(CDSA_PATH, docs.cdsa)
    server.set(CSR_PATH, docs.csr)
    config = ca_config(folder / "schedwatch.toml", folder / "data", server)
    result = run_child(config, "run", "-j", "ca")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table_rows(folder / "data", "SELECT * FROM status ORDER BY id")
    # A baseline after a held coming-into-force date also stores the past legal segment
    # (observed now, already over): the CSR before 2026-10-01 when the clock is later.
    status = [r for r in rows if r["valid_to"] is None]
    past = [r for r in rows if r["valid_to"] is not None]
    assert all(r["valid_to"] == r["valid_from"] and r["legal_to"] for r in past)
    assert {r["source_id"] for r in status} == {"ca-cdsa", "ca-csr"}
    assert table_rows(folder / "data", "SELECT * FROM changes") == []
    return Baseline(folder / "data", status, len(past))


@dataclass
class Case:
    config: Path
    data_dir: Path
    smtp: SmtpServer


@pytest.fixture
def case(tmp_path: Path, baseline: Baseline, server: DocServer,
         docs: CanadaDocs) -> Iterator[Case]:
    """The baseline's data folder, a configuration with [email] pointing at a local SMTP
    server (security = "none"), and the variant with ketamine in Schedule III being served."""
    data_dir = tmp_path / "data"
    shutil.copytree(baseline.data_dir, data_dir)
    with SmtpServer() as smtp:
        config = ca_config(tmp_path / "schedwatch.toml", data_dir, server,
                           extra=email_section(smtp.port))
        server.set(CDSA_PATH, docs.moved)
        server.set(CSR_PATH, docs.csr)
        yield Case(config, data_dir, smtp)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, baseline: Baseline, server: DocServer,
              docs: CanadaDocs) -> list[tuple[Any, ...]]:
    """The changes the variant yields without any crash: what every crashed run must end
    with, no more and no fewer."""
    folder = tmp_path_factory.mktemp("reference")
    shutil.copytree(baseline.data_dir, folder / "data")
    server.set(CDSA_PATH, docs.moved)
    server.set(CSR_PATH, docs.csr)
    config = ca_config(folder / "schedwatch.toml", folder / "data", server)
    result = run_child(config, "run", "-j", "ca")
    assert result.returncode == 0, result.stdout + result.stderr
    found = signatures(folder / "data")
    assert ("ca-cdsa", "ketamine", "rescheduled", "I", "III") in found
    return found


def signatures(data_dir: Path) -> list[tuple[Any, ...]]:
    rows = table_rows(data_dir, "SELECT * FROM changes ORDER BY id")
    return sorted((r["source_id"], r["substance"], r["kind"],
                   json.loads(r["before"])["schedule"] if r["before"] else None,
                   json.loads(r["after"])["schedule"] if r["after"] else None) for r in rows)


def check_consistent(case: Case, baseline: Baseline, reference: list[tuple[Any, ...]],
                     moved: bytes, *, runs: int, repeated_message: bool = False) -> None:
    data_dir = case.data_dir
    store = Store(data_dir)
    try:
        assert store.integrity_check() == "ok"
    finally:
        store.close()

    # Changes: exactly those of a crash-free run, each once.
    changes = table_rows(data_dir, "SELECT * FROM changes ORDER BY id")
    assert signatures(data_dir) == reference, dumps(changes)
    keys = Counter((c["source_id"], c["substance"], c["kind"]) for c in changes)
    assert all(n == 1 for n in keys.values()), keys
    assert keys[("ca-cdsa", "ketamine", "rescheduled")] == 1
    changed = {(c["source_id"], c["substance"]) for c in changes if c["substance"]}

    # Status: one open interval per (source, substance); the baseline rows intact, closed
    # only where a change was recorded, and then exactly where the new interval starts.
    status = table_rows(data_dir, "SELECT * FROM status ORDER BY id")
    open_rows = [r for r in status if r["valid_to"] is None]
    per_pair = Counter((r["source_id"], r["substance"]) for r in open_rows)
    assert all(n == 1 for n in per_pair.values()), per_pair
    assert set(per_pair) == {(r["source_id"], r["substance"]) for r in baseline.status}
    by_id = {r["id"]: r for r in status}
    current = {(r["source_id"], r["substance"]): r for r in open_rows}
    for old in baseline.status:
        now = by_id[old["id"]]
        pair = (old["source_id"], old["substance"])
        for column in ("valid_from", "status", "schedule", "record", "source_id", "substance"):
            assert now[column] == old[column], (pair, column)
        if pair in changed:
            assert now["valid_to"] is not None
            assert current[pair]["valid_from"] == now["valid_to"]
            assert current[pair]["id"] != old["id"]
        else:
            assert now["valid_to"] is None, pair
    assert len(status) == len(baseline.status) + len(changed) + baseline.past_segments
    ketamine = current[("ca-cdsa", "ketamine")]
    assert ketamine["schedule"] == "III"
    assert ketamine["last_document_sha256"] == hashlib.sha256(moved).hexdigest()

    # Runs and fetches: only whole runs are stored, one fetch per source per run.
    stored_runs = table_rows(data_dir, "SELECT * FROM runs ORDER BY id")
    assert len(stored_runs) == runs, dumps(stored_runs)
    assert all(r["finished_at"] and r["exit_code"] == 0 for r in stored_runs)
    fetches = Counter((f["run_id"], f["source_id"])
                      for f in table_rows(data_dir, "SELECT * FROM fetches"))
    assert set(fetches.values()) == {1} and len(fetches) == 2 * runs, fetches

    # Documents: every archived file is recorded, every record has its file, no leftovers.
    recorded = {r["sha256"] for r in table_rows(data_dir, "SELECT sha256 FROM documents")}
    assert recorded == document_files(data_dir)
    assert hashlib.sha256(moved).hexdigest() in recorded
    assert stray_temp_files(data_dir) == []

    # The site was published after the commit: a page per change.
    for change in changes:
        assert (data_dir / "site" / "changes" / f"{change['id']}.html").is_file()

    # Alerts: one outbox row per alertable change, all delivered; each message reached the
    # server once (or twice with the same Message-ID in the at-least-once window).
    outbox = table_rows(data_dir, "SELECT * FROM outbox ORDER BY id")
    queued_for = Counter(i for row in outbox for i in json.loads(row["change_ids"]))
    assert sorted(queued_for) == [c["id"] for c in changes], dumps(outbox)
    assert set(queued_for.values()) == {1}
    assert {row["state"] for row in outbox} == {"delivered"}, dumps(outbox)
    sent_ids = Counter(str(m["Message-ID"]) for m in case.smtp.messages)
    delivered_ids = {row["message_id"] for row in outbox}
    assert set(sent_ids) == delivered_ids, (sent_ids, delivered_ids)
    expected = 2 if repeated_message else 1
    assert all(n == expected for n in sent_ids.values()), sent_ids
    for message in case.smtp.messages:
        assert [str(a) for a in message.get_all("To")] == ["officer@example.org"]


def test_the_crash_points_are_the_documented_ones() -> None:
    assert set(POINTS) == {*PIPELINE_POINTS, "email_accepted"}


@pytest.mark.parametrize("point", [*PIPELINE_POINTS, "email_accepted"])
def test_crash_then_rerun_loses_and_duplicates_nothing(point: str, case: Case,
                                                       baseline: Baseline,
                                                       reference: list[tuple[Any, ...]],
                                                       docs: CanadaDocs) -> None:
    crashed = run_child(case.config, "run", "-j", "ca", crash_at=point)
    assert crashed.returncode == SIGKILLED, \
        f"not killed at {point}: exit {crashed.returncode}\n{crashed.stdout}{crashed.stderr}"
    # email_accepted is the only point after the commit: the SMTP server has accepted the
    # message, the outbox row is not yet marked delivered.
    committed = point == "email_accepted"
    if committed:
        assert len(case.smtp.messages) == 1
        outbox = table_rows(case.data_dir, "SELECT * FROM outbox")
        assert outbox and {row["state"] for row in outbox} == {"queued"}, dumps(outbox)
    else:
        # Nothing of the crashed run is visible: the transaction never committed.
        assert table_rows(case.data_dir, "SELECT * FROM changes") == []
        assert len(table_rows(case.data_dir, "SELECT * FROM runs")) == 1
        assert case.smtp.messages == []

    again = run_child(case.config, "run", "-j", "ca")
    assert again.returncode == 0, again.stdout + again.stderr
    # Detected once: by the crashed run when it committed, else by the re-run.
    assert ("change #" in again.stdout) != committed, again.stdout
    check_consistent(case, baseline, reference, docs.moved, runs=3 if committed else 2,
                     repeated_message=committed)
    if committed:
        # The known at-least-once window: the message went out twice, with the SAME
        # Message-ID (derived from the change ids and the recipient), so the recipient's
        # mail client shows it once. A third run sends nothing more.
        ids = [str(m["Message-ID"]) for m in case.smtp.messages]
        assert len(ids) == 2 and ids[0] == ids[1], ids
        assert case.smtp.messages[0]["Subject"] == case.smtp.messages[1]["Subject"]
        third = run_child(case.config, "run", "-j", "ca")
        assert third.returncode == 0, third.stdout + third.stderr
        assert "change #" not in third.stdout
        assert len(case.smtp.messages) == 2
        assert len(table_rows(case.data_dir, "SELECT * FROM changes")) == len(reference)


def test_a_grouped_message_is_marked_whole_and_repeats_with_the_same_message_id(
        case: Case, docs: CanadaDocs, reference: list[tuple[Any, ...]]) -> None:
    """The child dies as it marks the one message carrying all the alerts: the server has
    accepted it, no row is marked (all rows of a message are marked in one transaction), and
    the re-run repeats the whole message under the same Message-ID."""
    if len(reference) < 2:
        pytest.skip("the variant yields a single change: no grouped message")
    crashed = run_child(case.config, "run", "-j", "ca", kill_at_mark_delivered=1)
    assert crashed.returncode == SIGKILLED, crashed.stdout + crashed.stderr
    states = Counter(r["state"] for r in table_rows(case.data_dir, "SELECT * FROM outbox"))
    assert states["delivered"] == 0 and states["queued"] == len(reference)
    again = run_child(case.config, "run", "-j", "ca")
    assert again.returncode == 0, again.stdout + again.stderr
    ids = [str(m["Message-ID"]) for m in case.smtp.messages]
    assert len(ids) == 2
    assert ids[0] == ids[1], f"the repeat carries a different Message-ID: {ids}"
