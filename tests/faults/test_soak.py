"""Soak: many consecutive in-process runs against a local server that cycles through healthy,
unchanged (304), changed (ketamine I ↔ III, and the real 2019 / 2024 / 2026 CDSA) and faulty
responses (HTTP 500, an HTML page, a cut-off transfer), each followed by what the scheduler
does after a job (``scheduler.jobs.release_memory``). Nothing may grow but real content,
no false change may appear, every alert must be queued once, and file descriptors and
memory stay flat. ``SCHEDWATCH_SOAK_RUNS`` sets the number of runs (default 40; ``make soak``
sets 500)."""

from __future__ import annotations

import gc
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.config import DEFAULT_ALERT_KINDS, load_settings
from scheduler.jobs import release_memory
from scheduler.pipeline import run
from scrapers.store import Store
from tests.faults.crash_helpers import (
    CDSA_PATH,
    CSR_PATH,
    ca_config,
    document_files,
    dumps,
    fd_count,
    rss_kb,
    table_rows,
)
from tests.support.documents import (
    CDSA_2019,
    CDSA_2024,
    CDSA_2026,
    CSR_2026,
    FIXTURES,
    SHARED_DOCS,
    ketamine_moved_to_schedule_iii,
)
from tests.support.served import DocServer, closed_port
from tests.support.smtp import email_section

RUNS = int(os.environ.get("SCHEDWATCH_SOAK_RUNS", "40"))
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>"
             b"<h1>Service unavailable</h1></body></html>")
SUBSTANCE_KINDS = ("scheduled", "descheduled", "rescheduled", "amended")

#: One cycle: (CDSA response, CSR response). "ok:X" serves document X (the client's
#: conditional GET then gets a 304 when X is what it last parsed), "500" an HTTP 500,
#: "html" an HTML maintenance page with status 200, "cut:X" document X cut off mid-transfer.
#: A, C, D list ketamine in Schedule I (A: the 2026 CDSA, C: 2019, D: 2024); B is A with
#: ketamine moved to Schedule III. The CDSA's ketamine moves A→B→C→…→A→B→A: four real
#: changes per cycle, two of which repeat a transition (flip-flop, stored, not alerted).
CYCLE: tuple[tuple[str, str], ...] = (
    ("ok:A", "ok:csr"),    # 0  unchanged: 304 (the previous cycle ended on A)
    ("ok:B", "ok:csr"),    # 1  ketamine I → III
    ("ok:B", "ok:csr"),    # 2  304
    ("500", "500"),        # 3  both sources fail
    ("ok:B", "ok:csr"),    # 4  both recover: full fetch, same status
    ("ok:C", "ok:csr"),    # 5  the 2019 CDSA: ketamine III → I
    ("html", "ok:csr"),    # 6  an HTML page instead of the XML: extraction failed
    ("ok:D", "ok:csr"),    # 7  the 2024 CDSA: recovered, same status
    ("cut:A", "cut:csr"),  # 8  both transfers cut off
    ("ok:A", "ok:csr"),    # 9  recovered, same status (2026 text)
    ("ok:B", "ok:csr"),    # 10 I → III again
    ("ok:A", "ok:csr"),    # 11 III → I again
)
SCHEDULE = {"A": "I", "B": "III", "C": "I", "D": "I"}


def soak_documents() -> dict[str, bytes]:
    """A, B, C, D and the CSR: the real documents when ../shared has them all, otherwise the
    small fixtures, with a changed point-in-time date standing in for 2019 and 2024."""
    names = (CDSA_2026, CDSA_2019, CDSA_2024, CSR_2026)
    if all((SHARED_DOCS / name).is_file() for name in names):
        a, c, d, csr = ((SHARED_DOCS / name).read_bytes() for name in names)
    else:
        a = (FIXTURES / "ca" / "cdsa-mini.xml").read_bytes()
        csr = (FIXTURES / "ca" / "csr-mini.xml").read_bytes()
        c, d = (a.replace(b'lims:pit-date="2026-06-05"', f'lims:pit-date="{day}"'.encode())
                for day in ("2019-09-19", "2024-05-27"))
        assert len({a, c, d}) == 3
    return {"A": a, "B": ketamine_moved_to_schedule_iii(a), "C": c, "D": d, "csr": csr}


@dataclass
class Model:
    """What the served sequence must produce, worked out independently of the code."""

    last_healthy: str | None = None
    healthy: bool = True

    def cdsa(self, response: str) -> tuple[str, bool]:
        """(expected outcome, whether ketamine's schedule really changed)."""
        kind, _, key = response.partition(":")
        if kind in ("500", "cut"):
            self.healthy = False
            return "failed", False
        if kind == "html":
            self.healthy = False
            return "extraction_failed", False
        moved = self.last_healthy is not None and SCHEDULE[key] != SCHEDULE[self.last_healthy]
        outcome = "not_modified" if self.healthy and key == self.last_healthy else "fetched"
        self.last_healthy, self.healthy = key, True
        return outcome, moved


def serve(server: DocServer, path: str, response: str, documents: dict[str, bytes]) -> None:
    kind, _, key = response.partition(":")
    if kind == "ok":
        server.set(path, documents[key])
    elif kind == "cut":
        server.set(path, documents[key], truncate=True)
    elif kind == "html":
        server.set(path, HTML_PAGE, content_type="text/html; charset=utf-8")
    else:
        server.set(path, b"Internal Server Error", status=int(kind), content_type="text/plain")


def count(data_dir: Path, sql: str) -> int:
    return int(next(iter(table_rows(data_dir, sql)[0].values())))


@pytest.mark.soak
@pytest.mark.timeout(120 + 3 * RUNS)
def test_soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> None:
    if RUNS < 4:
        pytest.skip(f"SCHEDWATCH_SOAK_RUNS={RUNS}: at least 4 runs are needed to compare the "
                    "middle with the end")
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                     "all_proxy", "SCHEDWATCH_CRASH_AT", "SCHEDWATCH_SMTP_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    documents = soak_documents()
    data_dir = tmp_path / "data"
    with DocServer() as server:
        # Alerts are queued, never sent: the SMTP port is closed (connection refused).
        config = ca_config(tmp_path / "schedwatch.toml", data_dir, server,
                           extra=email_section(closed_port()))
        from jurisdictions import all_sources

        settings = load_settings(config, known_sources={s.id: tuple(s.endpoints)
                                                        for s in all_sources()})
        serve(server, CDSA_PATH, "ok:A", documents)
        serve(server, CSR_PATH, "ok:csr", documents)
        baseline = run(settings, codes=["ca"])
        assert baseline.exit_code == 0, baseline.lines
        model = Model(last_healthy="A")
        baseline_status = count(data_dir, "SELECT count(*) FROM status")
        started = time.monotonic()
        samples: dict[str, tuple[int, int, int]] = {}
        transitions = 0
        for index in range(RUNS):
            cdsa_response, csr_response = CYCLE[index % len(CYCLE)]
            serve(server, CDSA_PATH, cdsa_response, documents)
            serve(server, CSR_PATH, csr_response, documents)
            status_before = count(data_dir, "SELECT count(*) FROM status")
            expected_outcome, moved = model.cdsa(cdsa_response)
            transitions += moved

            report = run(settings, codes=["ca"])
            release_memory()  # as the scheduler does after every job (scheduler.jobs)

            outcomes = {o.source.id: o.outcome for o in report.outcomes}
            assert outcomes["ca-cdsa"] == expected_outcome, (index, cdsa_response, report.lines)
            assert report.exit_code == (0 if all(o.healthy for o in report.outcomes) else 2)
            made = table_rows(data_dir, f"SELECT * FROM changes WHERE run_id = {report.run_id}")
            substance_changes = [c for c in made if c["substance"] is not None
                                 and c["kind"] in SUBSTANCE_KINDS]
            # Status rows grow only on a real change: one new interval per changed substance.
            assert count(data_dir, "SELECT count(*) FROM status") - status_before == \
                len(substance_changes), (index, dumps(made))
            ketamine = [c for c in substance_changes
                        if c["substance"] == "ketamine" and c["source_id"] == "ca-cdsa"]
            assert len(ketamine) == int(moved), (index, cdsa_response, dumps(made))
            if not moved:
                assert substance_changes == [], (index, cdsa_response, dumps(made))
            if index + 1 in (len(CYCLE), RUNS // 2, RUNS):
                gc.collect()
                label = {len(CYCLE): "warm", RUNS // 2: "middle", RUNS: "end"}[index + 1]
                samples[label] = (fd_count(), rss_kb(), len(gc.get_objects()))
        elapsed = time.monotonic() - started
        clients = set(server.clients)
        whole = set(server.whole_bodies)

    # Every run recorded one fetch per source; no run was left unfinished.
    runs = table_rows(data_dir, "SELECT * FROM runs")
    assert len(runs) == RUNS + 1 and all(r["finished_at"] for r in runs)
    fetches = Counter((f["run_id"], f["source_id"])
                      for f in table_rows(data_dir, "SELECT run_id, source_id FROM fetches"))
    assert len(fetches) == 2 * (RUNS + 1) and set(fetches.values()) == {1}

    # The archive holds exactly the distinct bodies that arrived whole: no duplicates, no
    # error responses, no cut-off halves.
    files = document_files(data_dir)
    assert files == whole
    assert files == {r["sha256"] for r in table_rows(data_dir, "SELECT sha256 FROM documents")}
    assert len(files) <= len(documents) + 1  # A, B, C, D, the CSR and the HTML page
    assert not [p for p in (data_dir / "documents").rglob(".tmp-*")]

    # Never a false change: ketamine changed exactly as often as the served documents say,
    # nothing was ever "scheduled" or "descheduled" by a failing source.
    changes = table_rows(data_dir, "SELECT * FROM changes ORDER BY id")
    kinds = Counter(c["kind"] for c in changes)
    assert not {"scheduled", "descheduled"} & set(kinds), kinds
    ketamine_changes = [c for c in changes
                        if c["substance"] == "ketamine" and c["source_id"] == "ca-cdsa"]
    assert len(ketamine_changes) == transitions
    assert all(c["kind"] == "rescheduled" for c in ketamine_changes)
    for change in ketamine_changes:
        before, after = json.loads(change["before"]), json.loads(change["after"])
        assert {before["schedule"], after["schedule"]} == {"I", "III"}
    assert count(data_dir, "SELECT count(*) FROM status") == baseline_status + sum(
        1 for c in changes if c["substance"] is not None and c["kind"] in SUBSTANCE_KINDS)
    open_pairs = Counter((r["source_id"], r["substance"]) for r in table_rows(
        data_dir, "SELECT source_id, substance FROM status WHERE valid_to IS NULL"))
    assert set(open_pairs.values()) == {1}

    # Alerts queued = real changes a recipient subscribes to, minus flip-flop repeats.
    alertable = {c["id"] for c in changes if c["kind"] in DEFAULT_ALERT_KINDS
                 and not json.loads(c["details"] or "{}").get("flip_flop")}
    outbox = table_rows(data_dir, "SELECT * FROM outbox")
    queued = Counter(i for row in outbox for i in json.loads(row["change_ids"]))
    assert set(queued) == alertable and set(queued.values()) <= {1}, dumps(outbox)
    assert all(row["state"] in ("queued", "failed") and row["delivered_at"] is None
               for row in outbox)
    flip_flops = sum(1 for c in changes if json.loads(c["details"] or "{}").get("flip_flop"))
    if len(CYCLE) + 2 <= RUNS:
        assert flip_flops >= 1  # the second I → III of a cycle is a repeat

    store = Store(data_dir)
    try:
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    assert clients == {"127.0.0.1"}

    # Flat resources: compare the middle with the end. Live Python objects (after a full
    # collection) must not grow: every run frees what it built. RSS is the allocator's high
    # water mark, which may follow the largest publish (the site grows with the history), so
    # it gets a tolerance.
    (fds_mid, rss_mid, objects_mid), (fds_end, rss_end, objects_end) = \
        samples["middle"], samples["end"]
    fds_warm, rss_warm, objects_warm = samples.get("warm", samples["middle"])
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("schedwatch.db*"))
    figures = (f"soak: {RUNS} runs (+1 baseline) in {elapsed:.1f} s "
               f"({elapsed / RUNS * 1000:.0f} ms/run); database {db_bytes / 1024:.0f} KiB; "
               f"{len(files)} documents archived; {len(changes)} changes "
               f"({dict(sorted(kinds.items()))}), {flip_flops} flip-flops, {len(outbox)} alerts "
               f"queued; status rows {baseline_status} → "
               f"{count(data_dir, 'SELECT count(*) FROM status')}; "
               f"open fds warm/middle/end {fds_warm}/{fds_mid}/{fds_end}; "
               f"RSS warm/middle/end {rss_warm // 1024}/{rss_mid // 1024}/{rss_end // 1024} MiB; "
               f"live objects warm/middle/end {objects_warm}/{objects_mid}/{objects_end}")
    with capsys.disabled():
        print("\n" + figures)
    assert fds_end <= fds_mid + 2, figures
    assert objects_end <= objects_mid * 1.02 + 2000, figures
    assert rss_end <= rss_mid + max(16 * 1024, rss_mid * 15 // 100), figures


def test_soak_cycle_is_honest() -> None:
    """The model behind the soak's expectations, on one cycle (cheap; no network)."""
    model = Model(last_healthy="A")
    results = [model.cdsa(cdsa) for cdsa, _ in CYCLE]
    assert [moved for _, moved in results].count(True) == 4
    assert results[0] == ("not_modified", False)
    assert results[4] == ("fetched", False)  # after a failure: full fetch, no change
    assert [outcome for outcome, _ in results].count("not_modified") == 2
