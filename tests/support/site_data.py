"""Constructed fixture data for the site tests (not recorded from a regulator): a real Store
in a temporary folder, written through ``RunWriter`` the way the pipeline writes it, with
hostile scraped text in every field a page shows. The site, render and browser tests
import ``build_store`` and ``make_settings`` from here; ``tests/test_site_data.py`` checks
that the fixture holds what it claims."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.config import EmailSettings, SchedulerSettings, Settings
from scrapers.records import PendingItem, StatusRecord
from scrapers.store import RunWriter, SourceState, Store, stamp

#: Scraped text that would be markup if it were not escaped: a script, both quotes, "&".
PAYLOAD = "<script>alert(1)</script> \"dq\" 'sq' & AT&T"
HOSTILE_URL = "javascript:alert(1)//<script>alert(1)</script>"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday of ISO week 2026-W47
T1 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)  # week 45: the baseline run
T2 = datetime(2026, 11, 17, 6, 0, tzinfo=UTC)  # week 47: changes
T3 = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
T4 = datetime(2026, 11, 19, 6, 0, tzinfo=UTC)

XML = "application/xml"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
JSON = "application/json"
SOURCES = {"ca-cdsa": ("ca", XML), "ca-csr": ("ca", XML), "us-ecfr-1308": ("us", XML),
           "us-federal-register": ("us", JSON), "au-poisons-standard": ("au", DOCX)}


def make_settings(tmp_path: Path, *, watch: tuple[str, ...] | str = ("ketamine", "esketamine",
                                                                     "arketamine"),
                  site_url: str | None = None, timezone: str = "America/Toronto") -> Settings:
    email = EmailSettings(host="localhost", site_url=site_url) if site_url else None
    return Settings(data_dir=tmp_path / "data", watch=watch, email=email,
                    scheduler=SchedulerSettings(timezone=timezone))


def record(source_id: str, substance: str, sha: str, at: datetime, **fields: object
           ) -> StatusRecord:
    jurisdiction = SOURCES[source_id][0]
    values: dict[str, object] = dict(
        jurisdiction=jurisdiction, substance=substance, status="controlled", schedule="I",
        control_level="C2", instrument="S.C. 1996, c. 19", provision="Sch. I, item 14(1)",
        listed_as="Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone), its salts",
        basis="named", source_id=source_id,
        source_url=f"https://example.org/{source_id}.xml", document_sha256=sha,
        retrieved_at=stamp(at))
    values.update(fields)
    return StatusRecord(**values)  # type: ignore[arg-type]


def state(source_id: str, *, health: str, at: datetime, sha: str | None,
          failing_since: str | None = None, error: str | None = None,
          failures: int = 0) -> SourceState:
    return SourceState(
        source_id=source_id, jurisdiction=SOURCES[source_id][0], health=health,
        failing_since=failing_since, consecutive_failures=failures, last_error=error,
        last_attempt_at=stamp(at), last_healthy_at=stamp(at) if health == "healthy" else None,
        last_document_sha256=sha, last_url=f"https://example.org/{source_id}.xml", etag=None,
        last_modified=None, marker=None, watch_keys=("arketamine", "esketamine", "ketamine"),
        document_dates=(("consolidated as of", "2026-06-05"),), document_meta={},
        title=f"Document of {source_id}", instrument=None)


def archive(store: Store, writer: RunWriter, source_id: str, text: str, at: datetime) -> str:
    content = f"<doc source='{source_id}'>{text}</doc>".encode()
    if SOURCES[source_id][1] == JSON:
        content = json.dumps({"source": source_id, "text": text}).encode()
    sha, path = store.archive(content)
    writer.add_document(sha256=sha, size=len(content), media_type=SOURCES[source_id][1],
                        source_id=source_id, url=f"https://example.org/{source_id}",
                        seen_at=at, path=str(path.relative_to(store.documents_dir)))
    return sha


def fetch(writer: RunWriter, source_id: str, at: datetime, outcome: str = "fetched",
          sha: str | None = None, error: str | None = None) -> None:
    writer.add_fetch(source_id=source_id, started_at=at, url=f"https://example.org/{source_id}",
                     outcome=outcome, document_sha256=sha, error=error,
                     error_kind="http" if error else None, elapsed_ms=120)


def build_store(tmp_path: Path, *, extra_substances: int = 0) -> Store:
    """Four runs (weeks 45 and 47 of 2026) covering every kind of change, a failing source,
    a pending item, a stale heartbeat and a permanently failed email. ``extra_substances``
    adds that many more substances (as ``watch = "all"`` would)."""
    store = Store(tmp_path / "data")
    codes = ["ca", "us", "au"]
    baseline: dict[tuple[str, str], StatusRecord] = {}
    with store.transaction(started_at=T1, jurisdictions=codes) as w:
        sha = {sid: archive(store, w, sid, f"v1 {sid}", T1) for sid in SOURCES}
        for substance in ("ketamine", "esketamine", "arketamine"):
            isomer = substance != "ketamine"
            baseline[("ca-cdsa", substance)] = record(
                "ca-cdsa", substance, sha["ca-cdsa"], T1,
                basis="isomer of listed substance" if isomer else "named",
                parent_entry="Ketamine, its salts, isomers" if isomer else None,
                dates=(("consolidated as of", "2026-06-05"), ("last amended", "2024-05-27")))
            baseline[("ca-csr", substance)] = record(
                "ca-csr", substance, sha["ca-csr"], T1, status="not_in_force", schedule="1",
                instrument="SOR/2025-242", provision="Sch. 1, item 14(1)",
                in_force_since="2026-12-20", in_force_since_kind="instrument",
                in_force_since_basis="SOR/2025-242, s. 239",
                dates=(("registered", "2025-11-28"),))
            baseline[("us-ecfr-1308", substance)] = record(
                "us-ecfr-1308", substance, sha["us-ecfr-1308"], T1,
                status="not_controlled" if substance == "arketamine" else "controlled",
                schedule=None if substance == "arketamine" else "III",
                control_level=None if substance == "arketamine" else "C3",
                instrument="21 CFR 1308.13",
                provision=None if substance == "arketamine" else "1308.13(c)(7)",
                listed_as=None if substance == "arketamine" else "Ketamine, its salts, isomers",
                code="7285", source_url="https://www.ecfr.gov/api/versioner/v1/full/x.xml?a=1&b=2",
                dates=(("up to date as of", "2026-10-30"),))
            baseline[("au-poisons-standard", substance)] = record(
                "au-poisons-standard", substance, sha["au-poisons-standard"], T1, schedule="8",
                instrument=f"F2026L00633 {PAYLOAD}" if substance == "arketamine"
                else "F2026L00633",
                provision=f"Schedule 8 {PAYLOAD}", listed_as=f"KETAMINE {PAYLOAD}",
                basis=f"named {PAYLOAD}", parent_entry=f"parent {PAYLOAD}",
                source_url=f"https://www.legislation.gov.au/?q={PAYLOAD}",
                dates=(("commenced", "2026-06-01"), ("registered", "2026-05-28")))
        for i in range(extra_substances):
            name = f"substance {i} (±)-{PAYLOAD}" if i % 2 else f"drug-{i}"
            baseline[("au-poisons-standard", name)] = record(
                "au-poisons-standard", name, sha["au-poisons-standard"], T1, schedule="4",
                control_level="C4", instrument="F2026L00633", provision=f"Schedule 4 #{i}",
                listed_as=name.upper())
        for rec in baseline.values():
            w.open_interval(rec, at=T1)
        for sid in SOURCES:
            fetch(w, sid, T1, sha=sha[sid])
            w.save_source_state(state(sid, health="healthy", at=T1, sha=sha[sid]))
        # A pending item seen at the baseline (no change announced it).
        w.open_pending(PendingItem(
            jurisdiction="ca", substance="ketamine", source_id="ca-cdsa",
            key="NifProvs:SOR-2025-243", action="not_in_force",
            description=f"Amendment not yet in force {PAYLOAD}", reference="SOR/2025-243",
            date_label="in force", date="2027-01-15",
            url="https://laws-lois.justice.gc.ca/eng/regulations/SOR-2025-243/"), at=T1)
        w.finish(finished_at=T1, exit_code=0, summary={})

    with store.transaction(started_at=T2, jurisdictions=codes) as w:
        new = {sid: archive(store, w, sid, f"v2 {sid}", T2)
               for sid in ("us-ecfr-1308", "au-poisons-standard", "us-federal-register")}
        # US: ketamine III -> II (rescheduled); arketamine scheduled.
        before = baseline[("us-ecfr-1308", "ketamine")]
        after = dataclasses.replace(
            before, schedule="II", control_level="C2", provision="1308.12(c)(8)",
            listed_as="Ketamine and its salts, isomers and salts of isomers",
            document_sha256=new["us-ecfr-1308"], retrieved_at=stamp(T2),
            dates=(("up to date as of", "2026-11-15"),))
        _replace(w, before, after, T2, "rescheduled",
                 f"Ketamine — United States: Schedule III → II (rescheduled) {PAYLOAD}",
                 sha["us-ecfr-1308"], new["us-ecfr-1308"], effective="2026-12-01")
        before = baseline[("us-ecfr-1308", "arketamine")]
        after = dataclasses.replace(
            before, status="controlled", schedule="II", control_level="C2",
            provision="1308.12(c)(8)", listed_as="Ketamine and its isomers",
            basis="isomer of listed substance", document_sha256=new["us-ecfr-1308"],
            retrieved_at=stamp(T2))
        _replace(w, before, after, T2, "scheduled",
                 "Arketamine — United States: not controlled → Schedule II (scheduled)",
                 sha["us-ecfr-1308"], new["us-ecfr-1308"])
        # AU: the listed text changed (amended), hostile text on both sides.
        before = baseline[("au-poisons-standard", "ketamine")]
        after = dataclasses.replace(
            before, listed_as=f"KETAMINE except when {PAYLOAD} in preparations",
            provision=f"Schedule 8 {PAYLOAD} (amended)",
            document_sha256=new["au-poisons-standard"], retrieved_at=stamp(T2))
        _replace(w, before, after, T2, "amended",
                 f"Ketamine — Australia: listed as changed {PAYLOAD} (amended)",
                 sha["au-poisons-standard"], new["au-poisons-standard"])
        # US Federal Register: a proposed rule, pending.
        item = PendingItem(
            jurisdiction="us", substance="esketamine", source_id="us-federal-register",
            key="FR:2026-12345", action="proposed_rule",
            description=f"Schedules of Controlled Substances: esketamine {PAYLOAD}",
            reference="91 FR 12345", proposed_schedule="II", date_label="comment deadline",
            date="2027-01-10", url=HOSTILE_URL,
            details=(("document number", "2026-12345"), ("published", "2026-11-16"),
                     ("note", PAYLOAD)))
        w.open_pending(item, at=T2)
        w.add_change(detected_at=T2, jurisdiction="us", substance="esketamine",
                     source_id="us-federal-register", kind="pending",
                     summary=f"Esketamine — United States: proposed rule {PAYLOAD} (pending)",
                     before=None, after=item.as_dict(), effective_date=item.date,
                     after_sha256=new["us-federal-register"],
                     details={"pending_key": item.key})
        # CA CSR: the source fails (and keeps failing).
        error = f"HTTP 503 from laws-lois.justice.gc.ca {PAYLOAD}"
        w.add_change(detected_at=T2, jurisdiction="ca", substance=None, source_id="ca-csr",
                     kind="source_failed", summary=f"Canada — ca-csr: source failing: {error}",
                     before=None, after=None,
                     details={"error": error, "error_kind": "http", "url": HOSTILE_URL,
                              "failing_since": stamp(T2), "document_sha256": None})
        w.save_source_state(state("ca-csr", health="source_failed", at=T2, sha=sha["ca-csr"],
                                  failing_since=stamp(T2), error=error, failures=1))
        fetch(w, "ca-csr", T2, outcome="failed", error=error)
        for sid in ("ca-cdsa", "us-ecfr-1308", "au-poisons-standard", "us-federal-register"):
            fetch(w, sid, T2, sha=new.get(sid, sha[sid]))
            w.save_source_state(state(sid, health="healthy", at=T2, sha=new.get(sid, sha[sid])))
        w.finish(finished_at=T2, exit_code=2, summary={})

    with store.transaction(started_at=T3, jurisdictions=codes) as w:
        broken = archive(store, w, "au-poisons-standard", f"broken {PAYLOAD}", T3)
        error = f"au-poisons-standard: no Schedule 8 heading {PAYLOAD}"
        w.add_change(detected_at=T3, jurisdiction="au", substance=None,
                     source_id="au-poisons-standard", kind="extraction_failed",
                     summary=f"Australia — au-poisons-standard: document not understood: {error}",
                     before=None, after=None,
                     details={"error": error, "error_kind": "extraction",
                              "url": "https://api.prod.legislation.gov.au/v1",
                              "failing_since": stamp(T3), "document_sha256": broken})
        fetch(w, "au-poisons-standard", T3, outcome="extraction_failed", sha=broken, error=error)
        fetch(w, "ca-csr", T3, outcome="failed", error="HTTP 503")
        w.finish(finished_at=T3, exit_code=2, summary={})

    with store.transaction(started_at=T4, jurisdictions=codes) as w:
        w.add_change(detected_at=T4, jurisdiction="au", substance=None,
                     source_id="au-poisons-standard", kind="recovered",
                     summary="Australia — au-poisons-standard: source recovered",
                     before=None, after=None,
                     details={"failing_since": stamp(T3), "previous_health": "extraction_failed",
                              "previous_error": f"no Schedule 8 heading {PAYLOAD}"})
        fetch(w, "au-poisons-standard", T4, outcome="unchanged",
              sha=new["au-poisons-standard"])
        # An unchanged observation confirms the open intervals through the source's state.
        w.save_source_state(state("au-poisons-standard", health="healthy", at=T4,
                                  sha=new["au-poisons-standard"]))
        fetch(w, "ca-csr", T4, outcome="failed", error="HTTP 503")
        w.finish(finished_at=T4, exit_code=2, summary={})

    store.beat("scheduler", now=NOW - timedelta(minutes=42), detail=PAYLOAD)
    store.enqueue(idempotency_key="alert:1:x", kind="alert", recipient="officer@example.org",
                  change_ids=[1], now=T2)
    queued = store.outbox_rows("queued")[0]
    store.mark_attempt_failed(queued["id"], error=f"550 mailbox unavailable {PAYLOAD}",
                              permanent=True, next_attempt_at=None)
    return store


def _replace(w: RunWriter, before: StatusRecord, after: StatusRecord, at: datetime, kind: str,
             summary: str, before_sha: str, after_sha: str, effective: str | None = None
             ) -> int:
    w.close_intervals(before.source_id, [before.substance], at=at, confirmed_at=None,
                      confirmed_sha256=None)
    w.open_interval(after, at=at)
    fields = [f for f in ("status", "schedule", "control_level", "provision", "listed_as")
              if getattr(before, f) != getattr(after, f)]
    return w.add_change(detected_at=at, jurisdiction=after.jurisdiction,
                        substance=after.substance, source_id=after.source_id, kind=kind,
                        summary=summary, before=before.as_dict(), after=after.as_dict(),
                        effective_date=effective, before_sha256=before_sha,
                        after_sha256=after_sha, details={"fields": fields})
