"""`schedwatch backfill` (issue 14) on Canada's archive: the real 28 versions of the CDSA from
Justice Canada's XML mirror (../shared/regulator-documents/ca/history/), served on a local
server as the mirror's GitHub commit list and raw files, built from its commits.tsv. The
clock is set by the tests (never today's date)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from scrapers import clock
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import SHARED_DOCS
from tests.support.served import Served

HISTORY = SHARED_DOCS / "ca" / "history"
CDSA_PATH = "eng/acts/C-38.8.xml"
LIVE_PATH = "/eng/XML/C-38.8.xml"


@dataclass(frozen=True)
class Version:
    commit: str
    committed_at: str
    pit_date: str
    sha256: str
    body: bytes


def cdsa_versions() -> list[Version]:
    """The mirror's CDSA versions, newest first (the order GitHub lists them)."""
    if not (HISTORY / "commits.tsv").is_file():
        pytest.skip("../shared/regulator-documents/ca/history is absent: backfill tests "
                    "on the real CDSA history skipped")
    files = {p.name.rsplit("-", 1)[1][:8]: p for p in (HISTORY / "cdsa").glob("*.xml")}
    found = []
    with open(HISTORY / "commits.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["document"] != CDSA_PATH:
                continue
            body = files[row["sha256"][:8]].read_bytes()
            assert hashlib.sha256(body).hexdigest() == row["sha256"]
            found.append(Version(row["commit"], row["author_date"], row["pit_date"],
                                 row["sha256"], body))
    assert len(found) == 28
    return found


@dataclass
class Mirror:
    """The GitHub mirror as the archive plan sees it: /api/commits?path=&per_page=&page=
    (newest first, an empty page ends it) and /raw/<sha>/<path>."""

    server: HTTPServer
    versions: list[Version]
    broken: dict[str, bytes] = field(default_factory=dict)
    list_status: int = 200
    raw_hits: int = 0

    def install(self) -> None:
        self.server.expect_request("/api/commits").respond_with_handler(self._commits)
        self.server.expect_request(re.compile(r"^/raw/.*")).respond_with_handler(self._raw)

    def _commits(self, request: Request) -> Response:
        if self.list_status != 200:
            return Response("<html><title>Service unavailable</title></html>",
                            status=self.list_status, content_type="text/html")
        assert request.args["path"] == CDSA_PATH
        per_page, page = int(request.args["per_page"]), int(request.args["page"])
        chosen = self.versions[(page - 1) * per_page: page * per_page]
        body = [{"sha": v.commit, "commit": {"committer": {"date": v.committed_at}}}
                for v in chosen]
        return Response(json.dumps(body), content_type="application/json")

    def _raw(self, request: Request) -> Response:
        self.raw_hits += 1
        _, _, commit, path = request.path.split("/", 3)
        assert path == CDSA_PATH
        for version in self.versions:
            if version.commit == commit:
                return Response(self.broken.get(commit, version.body),
                                content_type="text/plain")
        return Response("not found", status=404)


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moment = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
        monkeypatch.setattr(clock, "utcnow", lambda: self.moment)

    def set(self, *args: int) -> None:
        self.moment = datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Canada:
    backfill_cli: Callable[..., CliResult]
    run_cli: Callable[..., CliResult]
    mirror: Mirror
    clock: Clock

    def backfill(self, *args: str) -> CliResult:
        return self.backfill_cli("backfill", *args)

    def run(self) -> CliResult:
        return self.run_cli("run")

    def json(self, *args: str) -> list[dict]:
        result = self.run_cli(*args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return result.json()

    def ketamine(self, *args: str) -> dict:
        rows = [r for r in self.json("status", *args)
                if (r["source_id"], r["substance"]) == ("ca-cdsa", "ketamine")]
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture
def canada(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Canada]:
    versions = cdsa_versions()
    mirror = Mirror(httpserver, versions)
    mirror.install()
    served = Served(httpserver)  # the live Justice Laws URL: today's consolidation
    served.set(LIVE_PATH, next(v.body for v in versions if v.pit_date == "2026-06-05"))
    data = tmp_path / "data"
    cdsa = {"url": served.url(LIVE_PATH)}
    # Until jurisdictions.ca names the archive's endpoints on its Source, only `backfill`
    # accepts them in [sources.ca-cdsa]; `run` reads the same store with the live URL only.
    archive = {**cdsa, "history_url": httpserver.url_for("/api"),
               "raw_url": httpserver.url_for("/raw")}
    with_archive = write_config(tmp_path / "backfill.toml", data_dir=data,
                                sources={"ca-cdsa": archive})
    live = write_config(tmp_path / "run.toml", data_dir=data, sources={"ca-cdsa": cdsa})

    def backfill_cli(*args: str) -> CliResult:
        return run_cli("--config", str(with_archive), *args)

    def live_cli(*args: str) -> CliResult:
        return run_cli("--config", str(live), *args)

    yield Canada(backfill_cli, live_cli, mirror, Clock(monkeypatch))


def _version(canada: Canada, pit: str) -> Version:
    return next(v for v in canada.mirror.versions if v.pit_date == pit)


def test_backfill_gives_ketamine_schedule_i_since_2019_with_no_change(canada: Canada) -> None:
    result = canada.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "ca-cdsa: 28 versions read, 0 skipped, "), result.stdout
    assert result.stdout.splitlines()[0].endswith(", 0 changes")
    row = canada.ketamine()
    assert (row["status"], row["schedule"]) == ("controlled", "I")
    assert row["in_force_since"] == "2019-09-19"
    assert row["in_force_since_kind"] == "earliest_evidence"
    assert row["backfilled"] is True
    assert row["legal_from"] == "2019-09-19" and row["legal_to"] is None
    # Confirmed by the newest version read; first seen in the oldest.
    assert row["document_sha256"] == _version(canada, "2026-06-05").sha256
    assert row["first_document_sha256"] == _version(canada, "2019-09-19").sha256
    assert [c for c in canada.json("changes") if c["substance"] == "ketamine"] == []


def test_every_version_is_archived_by_its_sha256(canada: Canada, tmp_path: Path) -> None:
    assert canada.backfill().exit_code == 0
    for version in canada.mirror.versions:
        stored = tmp_path / "data" / "documents" / version.sha256[:2] / version.sha256
        assert stored.read_bytes() == version.body


def test_status_as_of_2019_answers_from_backfilled_evidence(canada: Canada) -> None:
    assert canada.backfill().exit_code == 0
    row = canada.ketamine("--as-of", "2019-12-01")
    assert (row["status"], row["schedule"]) == ("controlled", "I")
    assert row["evidence_date"] == "2019-09-19"
    assert row["first_document_sha256"] == _version(canada, "2019-09-19").sha256
    assert row["backfilled"] is True
    before = canada.run_cli("status", "--as-of", "2019-06-01")
    assert before.exit_code == 0
    assert "No evidence on or before 2019-06-01; the earliest evidence held is of " \
           "2019-09-19" in before.stdout


def test_history_marks_backfilled_intervals(canada: Canada) -> None:
    assert canada.backfill().exit_code == 0
    rows = [r for r in canada.json("history", "ketamine") if r["source_id"] == "ca-cdsa"]
    assert rows and all(r["origin"] == "backfilled" for r in rows)
    assert rows[0]["legal"].startswith("2019-09-19 → ")


def test_a_second_backfill_adds_nothing(canada: Canada) -> None:
    assert canada.backfill().exit_code == 0
    history = canada.json("history", "ketamine")
    changes = canada.json("changes")
    canada.clock.set(2026, 12, 3, 12, 0)
    again = canada.backfill()
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0] == (
        "ca-cdsa: 28 versions read, 0 skipped, 0 status intervals, 0 changes; 28 already "
        "covered by the evidence held (nothing added for them)")
    assert canada.json("history", "ketamine") == history
    assert canada.json("changes") == changes


def test_a_broken_version_is_skipped_and_reported(canada: Canada) -> None:
    broken = _version(canada, "2021-03-18")
    canada.mirror.broken[broken.commit] = broken.body[: len(broken.body) // 3]
    result = canada.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ca-cdsa: 28 versions read, 1 skipped, ")
    skipped = [line for line in result.stdout.splitlines() if "skipped version" in line]
    assert len(skipped) == 1
    sha = hashlib.sha256(broken.body[: len(broken.body) // 3]).hexdigest()
    assert f"skipped version of 2021-03-18 ({sha[:12]}): " in skipped[0]
    assert canada.json("changes") == []
    assert canada.ketamine()["in_force_since"] == "2019-09-19"


def test_backfill_then_live_run_is_one_continuous_history(canada: Canada) -> None:
    assert canada.backfill().exit_code == 0
    history = canada.json("history", "ketamine")
    canada.clock.set(2026, 12, 2, 13, 0)
    run = canada.run()
    assert run.exit_code == 0, run.stderr
    assert "ca-cdsa: ok, unchanged" in run.stdout
    assert canada.json("changes") == []

    def spans(rows: list[dict]) -> list[tuple]:  # the live run only confirms, never reopens
        return [(r["origin"], r["legal_from"], r["legal_to"], r["observed_from"],
                 r["status_label"]) for r in rows]

    assert spans(canada.json("history", "ketamine")) == spans(history)
    row = canada.ketamine()
    assert row["in_force_since"] == "2019-09-19"


def test_live_run_then_backfill_fills_only_the_gap(canada: Canada) -> None:
    run = canada.run()
    assert run.exit_code == 0, run.stderr
    live = canada.ketamine()
    assert live["in_force_since"] == "2026-06-05" and live["backfilled"] is False
    canada.clock.set(2026, 12, 2, 13, 0)
    result = canada.backfill()
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("ca-cdsa: 28 versions read, 0 skipped, ")
    assert "1 already covered by the evidence held" in first
    row = canada.ketamine()
    assert row["backfilled"] is False  # the live interval stays the current one
    assert row["in_force_since"] == "2019-09-19"
    assert row["in_force_since_kind"] == "earliest_evidence"
    assert "since 2019-09-19" in row["in_force_since_basis"]
    assert row["legal_from"] == "2026-06-05"
    assert canada.json("changes") == []
    rows = [r for r in canada.json("history", "ketamine") if r["source_id"] == "ca-cdsa"]
    assert [(r["origin"], r["legal_from"], r["legal_to"]) for r in rows] == [
        ("observed", "2026-06-05", None), ("backfilled", "2019-09-19", "2026-06-05")]
    old = canada.ketamine("--as-of", "2020-01-01")
    assert old["backfilled"] is True and old["evidence_date"] == "2019-09-19"
    # And a live run afterwards is still quiet.
    canada.clock.set(2026, 12, 3, 12, 0)
    assert canada.run().exit_code == 0
    assert canada.json("changes") == []


def test_since_reads_only_the_later_versions(canada: Canada) -> None:
    result = canada.backfill("--since", "2025-01-01")
    assert result.exit_code == 0, result.stderr
    row = canada.ketamine()
    assert row["in_force_since"] == "2025-03-03"
    assert canada.mirror.raw_hits < 28  # commits made before --since were not fetched


def test_an_unreadable_archive_is_one_line_and_exit_2(canada: Canada) -> None:
    canada.mirror.list_status = 503
    result = canada.backfill()
    assert result.exit_code == 2
    assert result.stdout.startswith("ca-cdsa: ARCHIVE NOT READ: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert canada.run_cli("status").stdout.startswith("No status stored yet")
