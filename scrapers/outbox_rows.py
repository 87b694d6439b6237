"""The outbox's rows in the store: a message queued once (its idempotency key), marked
delivered by the message that carried it, a failed attempt recorded, failed messages put
back in the queue. A mark the database is too busy to take is waited for, then noted in a
journal beside the database and applied before the next delivery, so that an accepted
message is never sent again.

``OutboxRows`` is part of ``Store`` (one store API); the delivery itself is
``reports.outbox``'s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from scrapers.clock import stamp, utcnow
from scrapers.db import Connection, Database, OperationalError, first_line, in_list
from scrapers.errors import StoreError

#: How long an outbox mark waits for a locked database (SQLite) before giving up.
MARK_WAIT_SECONDS = 30.0



class OutboxRows:
    """The outbox methods of ``Store``, which provides ``db`` and ``data_dir``."""

    db: Database
    data_dir: Path

    def outbox_due(self, now: datetime) -> list[dict[str, Any]]:
        return self.db.rows("SELECT * FROM outbox WHERE state = 'queued' AND (next_attempt_at "
                          "IS NULL OR next_attempt_at <= :now) ORDER BY id",
                          {"now": stamp(now)})

    def outbox_rows(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is None:
            return self.db.rows("SELECT * FROM outbox ORDER BY id")
        return self.db.rows("SELECT * FROM outbox WHERE state = :state ORDER BY id",
                          {"state": state})

    def enqueue(self, *, idempotency_key: str, kind: str, recipient: str,
                change_ids: Sequence[int], reference: str | None = None,
                now: datetime | None = None) -> bool:
        """Queue a message once: a second call with the same key does nothing (False)."""
        with self.db.begin() as conn:
            return insert_once(conn, outbox_row(idempotency_key, kind, recipient, change_ids,
                                                  reference, now or utcnow()))

    def mark_delivered_many(self, outbox_ids: Sequence[int], *, message_id: str,
                            now: datetime) -> None:
        """All rows carried by one accepted message, marked in one transaction. A locked
        database is waited for (``MARK_WAIT_SECONDS``, with backoff); after that the mark is
        noted in ``outbox-delivered.jsonl`` (applied by ``settle_delivered`` before the next
        pass sends anything, so the message is not sent again) and StoreError is raised."""
        ids = [int(i) for i in outbox_ids]
        try:
            self._retry_locked(lambda conn: _mark_delivered(conn, ids, message_id=message_id,
                                                            at=stamp(now)))
        except OperationalError as error:
            with open(self._marks_journal, "a", encoding="utf-8") as journal:
                journal.write(json.dumps({"ids": ids, "message_id": message_id,
                                          "at": stamp(now)}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
            raise StoreError(f"the database stayed locked for {MARK_WAIT_SECONDS:g} s "
                             f"({first_line(error)}); the delivery is noted in "
                             f"{self._marks_journal} and marked at the next delivery, the "
                             "message is not sent again") from None

    @property
    def _marks_journal(self) -> Path:
        return self.data_dir / "outbox-delivered.jsonl"

    def settle_delivered(self) -> set[int]:
        """Apply the deliveries noted while the database was locked; returns the ids still
        not marked (the deliverer must not send them again)."""
        path = self._marks_journal
        if not path.is_file():
            return set()
        notes = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        try:
            for note in notes:
                self._retry_locked(lambda conn, n=note: _mark_delivered(
                    conn, n["ids"], message_id=n["message_id"], at=n["at"],
                    undelivered_only=True))
        except OperationalError:
            return {int(i) for note in notes for i in note["ids"]}
        path.unlink()
        return set()

    def _retry_locked(self, write: Any) -> None:
        """Run ``write(conn)`` in a transaction; while SQLite says the database is locked
        or busy, try again with a growing pause until ``MARK_WAIT_SECONDS`` have passed."""
        deadline, pause = time.monotonic() + MARK_WAIT_SECONDS, 0.05
        sqlite = self.db.backend == "sqlite"
        while True:
            left = deadline - time.monotonic()
            try:
                with self.db.begin() as conn:
                    if sqlite:  # each try waits ≤ its pause
                        wait_ms = int(min(max(left, 0), pause * 4) * 1000)
                        conn.execute(f"PRAGMA busy_timeout={wait_ms}")
                    try:
                        write(conn)
                    finally:
                        if sqlite:
                            conn.execute("PRAGMA busy_timeout=30000")
                return
            except OperationalError as error:
                text = str(error).lower()
                if ("locked" not in text and "busy" not in text) or left <= 0:
                    raise
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 2.0)

    def requeue_failed(self, now: datetime) -> int:
        """Put permanently failed messages back in the queue (after the cause was fixed, e.g.
        a wrong password); returns how many. Delivered messages are never requeued."""
        with self.db.begin() as conn:
            return conn.update("outbox", {"state": "queued", "attempts": 0,
                                          "next_attempt_at": stamp(now)}, "state = 'failed'")

    def mark_attempt_failed(self, outbox_id: int, *, error: str, permanent: bool,
                            next_attempt_at: datetime | None) -> None:
        try:
            self._retry_locked(lambda conn: conn.execute(
                "UPDATE outbox SET state = :state, last_error = :error, attempts = attempts "
                "+ 1, next_attempt_at = :next WHERE id = :id",
                {"state": "failed" if permanent else "queued", "error": error[:500],
                 "next": stamp(next_attempt_at) if next_attempt_at else None,
                 "id": outbox_id}))
        except OperationalError as failure:
            raise StoreError(f"the database stayed locked for {MARK_WAIT_SECONDS:g} s "
                             f"({first_line(failure)}); the failed attempt is not recorded "
                             "and the message is tried again") from None


def _mark_delivered(conn: Connection, ids: Sequence[int], *, message_id: str, at: str,
                    undelivered_only: bool = False) -> None:
    """Mark the outbox rows delivered by one accepted message."""
    listed, params = in_list("o", [int(i) for i in ids])
    also = " AND state != 'delivered'" if undelivered_only else ""
    conn.execute("UPDATE outbox SET state = 'delivered', delivered_at = :at, message_id = "
                 f":message, attempts = attempts + 1, last_error = NULL WHERE id IN {listed}"
                 f"{also}", {**params, "at": at, "message": message_id})


def outbox_row(idempotency_key: str, kind: str, recipient: str, change_ids: Sequence[int],
                reference: str | None, now: datetime) -> dict[str, Any]:
    return dict(idempotency_key=idempotency_key, kind=kind, recipient=recipient,
                change_ids=json.dumps(list(change_ids)), reference=reference,
                created_at=stamp(now), state="queued")


def insert_once(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert an outbox row unless its idempotency key is there (two processes on a server
    database may queue the same alert at once)."""
    return bool(conn.insert_ignoring_duplicates("outbox", values, ["idempotency_key"]))
