"""The outbox's life: queue alerts in the run's transaction, deliver what is due, retry,
give up, and send test messages. Messages are built by ``reports.email``; ``reports.smtp``
hands them over.

Queueing runs inside the run's transaction, so a change and its queued alerts are stored
together: a crash after detection and before sending loses nothing, and the idempotency key
``alert:<change id>:<address>`` means an alert is queued once however often this runs.
Delivery guarantees:

* a row is marked delivered only after the SMTP server accepted the message carrying it, and
  right after (one message at a time), so a crash can at worst repeat one message; such a
  repeat carries the same ``Message-ID``. A locked database is waited for; if it stays
  locked the delivery is noted beside the database and marked at the next pass, so the
  message is not sent again;
* one connection attempt per pass: when the server is down every due row is deferred
  together, with a growing delay, and given up after ``email.max_attempts`` answers;
* no message is larger than ``email.MAX_MESSAGE_BYTES``: above it (or when the server
  answers 552, message too large) the alert goes as a digest, the weekly report with its
  first changes only;
* SMTP and network problems come back as one-line messages, never as exceptions, and never
  contain the password.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import TYPE_CHECKING, Any, Protocol

from reports import smtp
from reports.email import (
    DIGEST_CHANGES,
    MAX_MESSAGE_BYTES,
    NO_SECTION,
    build_alert,
    build_digest,
    build_test,
    build_weekly,
    weekly_key,
)
from reports.weekly import WeeklySummary
from scrapers.errors import EmailError, LockedError, SchedwatchError, StoreError
from scrapers.faults import checkpoint
from scrapers.store import utcnow

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import EmailSettings, Recipient, Settings
    from scrapers.store import RunWriter, Store

log = logging.getLogger(__name__)

#: Delay before the next try after the n-th failed attempt (the last one repeats).
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
                timedelta(hours=1), timedelta(hours=3), timedelta(hours=6))


def retry_delay(attempts: int) -> timedelta:
    """Delay after ``attempts`` failed tries: 1 min, 5 min, 15 min, 1 h, 3 h, then 6 h."""
    return RETRY_DELAYS[max(0, min(attempts, len(RETRY_DELAYS)) - 1)]


# --- queueing (inside the run's transaction) -------------------------------------------------

class ChangeLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def substance(self) -> str | None: ...


def subscribed(recipient: Recipient, change: ChangeLike) -> bool:
    """Whether a recipient's filters (jurisdictions, substances, kinds) take this change.
    Source-level changes (failures, recovery) have no substance and pass the substance filter."""
    # A status that now rests on a generic entry (the explicit listing disappeared) must be
    # reviewed: it reaches everyone who takes status changes, whatever its kind.
    review = bool(getattr(change, "review", False)) and any(
        kind in recipient.kinds for kind in ("scheduled", "descheduled", "rescheduled"))
    if change.kind not in recipient.kinds and not review:
        return False
    if recipient.jurisdictions is not None and change.jurisdiction not in recipient.jurisdictions:
        return False
    return not (recipient.substances is not None and change.substance is not None
                and change.substance not in recipient.substances)


def alert_key(change_id: int, address: str) -> str:
    return f"alert:{change_id}:{address.lower()}"


def enqueue_alerts(writer: RunWriter, settings: Settings, changes: Iterable[ChangeLike], *,
                   now: datetime) -> int:
    """One outbox row per (change, subscribed recipient); returns how many were queued."""
    if settings.email is None:
        return 0
    queued = 0
    for change in changes:
        for recipient in settings.email.recipients:
            if subscribed(recipient, change):
                queued += writer.enqueue(idempotency_key=alert_key(change.id, recipient.address),
                                         kind="alert", recipient=recipient.address,
                                         change_ids=[change.id], now=now)
    return queued


# --- delivery (I/O) -------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One message of this pass and the outbox rows it carries. ``smaller`` builds the
    reduced form of the same message (a digest) when there still is one."""

    recipient: str
    rows: tuple[Mapping[str, Any], ...]
    message_id: str
    data: bytes
    smaller: Callable[[], Outgoing | None] | None = None


def _outgoing(recipient: str, rows: Sequence[Mapping[str, Any]],
              forms: Sequence[Callable[[], EmailMessage]]) -> Outgoing:
    """The first of ``forms`` (fullest first) that fits ``MAX_MESSAGE_BYTES`` (or the last),
    able to step down to the next form should the server still find it too large."""
    message = forms[0]()
    data = message.as_bytes(policy=SMTP_POLICY)
    rest = forms[1:]
    if len(data) > MAX_MESSAGE_BYTES and rest:
        return _outgoing(recipient, rows, rest)
    return Outgoing(recipient=recipient, rows=tuple(rows),
                    message_id=str(message["Message-ID"]), data=data,
                    smaller=(lambda: _outgoing(recipient, rows, rest)) if rest else None)


def _require(settings: Settings) -> EmailSettings:
    if settings.email is None:
        raise EmailError(NO_SECTION, permanent=True, stage="config")
    return settings.email


def _names(codes: Iterable[str]) -> dict[str, str]:
    from jurisdictions import jurisdiction

    names = {}
    for code in set(codes):
        try:
            names[code] = jurisdiction(code).NAME
        except (KeyError, ImportError, AttributeError):  # a code no longer registered
            names[code] = code.upper()
    return names


def _count(rows: Iterable[Mapping[str, Any]]) -> str:
    """``2 alerts and 1 weekly report``."""
    words = {"alert": ("alert", "alerts"), "weekly": ("weekly report", "weekly reports"),
             "test": ("test message", "test messages")}
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    parts = [f"{n} {words.get(kind, (kind, kind))[n != 1]}" for kind, n in counts.items()]
    return " and ".join(parts) if parts else "nothing"


def _ids(row: Mapping[str, Any]) -> list[int]:
    return [int(i) for i in json.loads(row["change_ids"] or "[]")]


def deliver_outbox(settings: Settings, store: Store, *, now: datetime | None = None,
                   by_hand: bool = False,
                   summaries: Mapping[str, WeeklySummary] | None = None) -> list[str]:
    """Send what is due in the outbox; returns one line for what was delivered and one per
    failure. The automatic path (pipeline, scheduler) sends only rows whose backoff is over
    and, when some still wait, says "N waiting, next try at …" (nothing when the outbox is
    empty). ``by_hand`` (``schedwatch email send``) tries everything queued now, backoff or
    not: a person who just fixed the server wants to see the result at once; it returns
    nothing only when nothing is queued. SMTP and network failures never raise: only a
    missing [email] section (``EmailError``), an unusable store or time zone (other
    ``SchedwatchError``s) and bugs do."""
    email = _require(settings)
    moment = now or utcnow()
    try:
        # Two deliverers (the scheduler's job and `schedwatch email send`) must never pick
        # up the same due rows: that is the one way to send a message twice.
        with store.lock("email-outbox", holder="email delivery"):
            return _deliver(settings, email, store, moment, by_hand=by_hand,
                            summaries=summaries)
    except LockedError as error:
        return [f"email: {error}"]


def _deliver(settings: Settings, email: EmailSettings, store: Store,
             now: datetime, *, by_hand: bool = False,
             summaries: Mapping[str, WeeklySummary] | None = None) -> list[str]:
    # Deliveries noted while the database was locked are marked first; any still unmarked
    # are never sent again.
    unmarked = store.settle_delivered()
    due = store.outbox_rows("queued") if by_hand else store.outbox_due(now)
    due = [row for row in due if int(row["id"]) not in unmarked]
    if not due:
        return [] if by_hand else _waiting(store)
    lines: list[str] = []
    outgoing = _prepare(settings, email, store, due, now, lines, summaries=dict(summaries or {}))
    if not outgoing:
        return lines
    try:
        client = smtp.open_client(email)
    except smtp.SmtpError as error:
        # One failed connection defers the whole pass: no attempt per row.
        lines.append(_fail(store, email, [r for o in outgoing for r in o.rows], error, now))
        return lines
    sent: list[Outgoing] = []
    try:
        queue = list(outgoing)
        while queue:
            item = queue.pop(0)
            try:
                smtp.send(client, email, item.recipient, item.data)
            except smtp.SmtpError as error:
                smaller = item.smaller() if error.too_large and item.smaller else None
                if smaller is not None:
                    # 552: the same alerts again, as a digest, on this connection.
                    log.info("email: %s; sending a digest instead", error)
                    queue.insert(0, smaller)
                    continue
                if error.connection_lost:
                    rest = [r for o in [item, *queue] for r in o.rows]
                    lines.append(_fail(store, email, rest, error, now))
                    break
                lines.append(_fail(store, email, item.rows, error, now))
                continue
            # The server has accepted the message: the crash window starts here (the
            # reliability tests kill the process at this point).
            checkpoint("email_accepted")
            # Marked at once, all rows of the message in one transaction: a crash now can
            # repeat only this whole message, and the repeat has the same Message-ID.
            try:
                store.mark_delivered_many([row["id"] for row in item.rows],
                                          message_id=item.message_id, now=now)
            except StoreError as error:
                sent.append(item)
                lines.append(f"email: {item.recipient} accepted {_count(item.rows)}, but "
                             f"the outbox could not be marked: {error}")
                break  # the database is not writable now: the rest waits for the next pass
            log.info("email: delivered %s to %s (%s)", _count(item.rows), item.recipient,
                     item.message_id)
            sent.append(item)
    finally:
        smtp.close(client)
    if sent:
        recipients = len({o.recipient.lower() for o in sent})
        lines.insert(0, f"email: delivered {len(sent)} message{'' if len(sent) == 1 else 's'} "
                        f"({_count(r for o in sent for r in o.rows)}) to {recipients} "
                        f"recipient{'' if recipients == 1 else 's'} via {smtp.where(email)}")
    return lines


def _waiting(store: Store) -> list[str]:
    """Nothing is due: say what waits for its backoff (after an outage a silent pass reads
    as "all sent")."""
    waiting = store.outbox_rows("queued")
    if not waiting:
        return []
    stamps = [datetime.fromisoformat(r["next_attempt_at"]) for r in waiting
              if r["next_attempt_at"]]
    when = min(stamps).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if stamps else "once due"
    return [f"email: {_count(waiting)} waiting, next try at {when}"]


def _prepare(settings: Settings, email: EmailSettings, store: Store,
             due: Sequence[Mapping[str, Any]], now: datetime, lines: list[str], *,
             summaries: dict[str, WeeklySummary] | None = None) -> list[Outgoing]:
    """Group due rows into messages (all alerts of one recipient → one message; a weekly
    report or a test → a message of its own) and build them before any connection is
    opened. Rows that can never be sent are failed here, with a line."""
    configured = {r.address.lower(): r for r in email.recipients}
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for row in due:
        address = row["recipient"].lower()
        if address not in configured:
            _fail_now(store, [row], f"{row['recipient']} is no longer in email.recipients; "
                                    "not sent", lines)
        elif row["kind"] == "alert":
            groups.setdefault(("alert", address, ""), []).append(row)
        elif row["kind"] == "weekly" and not configured[address].weekly:
            _fail_now(store, [row], f"{row['recipient']} no longer has weekly = true; "
                                    "not sent", lines)
        elif row["kind"] == "weekly":
            groups.setdefault(("weekly", address, row["reference"] or ""), []).append(row)
        elif row["kind"] == "test":
            groups.setdefault(("test", address, str(row["id"])), []).append(row)
        else:
            _fail_now(store, [row], f"outbox row {row['id']} has the unknown kind "
                                    f"{row['kind']!r}; not sent", lines)
    wanted = sorted({i for rows in groups.values() for r in rows for i in _ids(r)})
    known = {c.id: c for c in store.changes(ids=wanted)} if wanted else {}
    names = _names(c.jurisdiction for c in known.values())
    timezone = settings.scheduler.timezone
    watch = _watch_keys(settings)
    summaries = dict(summaries or {})
    outgoing: list[Outgoing] = []
    for (kind, address, reference), rows in groups.items():
        recipient = configured[address]
        forms: list[Callable[[], EmailMessage]]
        if kind == "alert":
            missing = [r for r in rows if not any(i in known for i in _ids(r))]
            if missing:
                _fail_now(store, missing, "the change of this alert is no longer stored; "
                                          "not sent", lines)
                rows = [r for r in rows if r not in missing]
            if not rows:
                continue
            changes = [known[i] for r in rows for i in _ids(r) if i in known]
            forms = [functools.partial(build_alert, email, recipient, changes, now=now,
                                       names=names, timezone=timezone, watch=watch)]
            if len(changes) > 1:  # one change always fits; many may not
                forms += [functools.partial(build_digest, email, recipient, changes, now=now,
                                            names=names, timezone=timezone, watch=watch,
                                            limit=n) for n in (DIGEST_CHANGES, 0)]
        elif kind == "weekly":
            if reference not in summaries:
                try:
                    summaries[reference] = _weekly_summary(settings, store, reference, now)
                except SchedwatchError as error:  # e.g. a malformed week in an old row
                    _fail_now(store, rows, f"the weekly report {reference} cannot be built "
                                           f"({error}); not sent", lines)
                    continue
            # The changes queued with the report (what the page showed then), in full.
            changes = [known[i] for r in rows for i in _ids(r) if i in known]
            summary = summaries[reference]
            forms = [functools.partial(build_weekly, email, recipient, summary, changes,
                                       now=now, names=names, timezone=timezone, watch=watch,
                                       limit=n) for n in (None, DIGEST_CHANGES, 0)]
        else:
            forms = [functools.partial(build_test, email, recipient.address, now=now,
                                       timezone=timezone)]
        outgoing.append(_outgoing(recipient.address, rows, forms))
    return outgoing


def _watch_keys(settings: Settings) -> tuple[str, ...]:
    """The configured watch order (ketamine first, then its isomers, as listed)."""
    from jurisdictions.substances import build_watch_list

    try:
        return build_watch_list(settings.watch).keys
    except ValueError:  # validated at load; a hand-made Settings may not be
        from jurisdictions.substances import DEFAULT_WATCH
        return DEFAULT_WATCH


def _weekly_summary(settings: Settings, store: Store, week: str | None, now: datetime
                    ) -> WeeklySummary:
    """The summary of a week not just published (a queued report delivered on a later pass,
    or ``send_weekly`` given a week): one read of the store. A bad week is the site's
    one-line ``SchedwatchError``."""
    from reports.site import weekly_context
    from reports.weekly import weekly_summary

    return weekly_summary(weekly_context(settings, store, week, now=now))


def _fail_now(store: Store, rows: Sequence[Mapping[str, Any]], reason: str,
              lines: list[str]) -> None:
    for row in rows:
        store.mark_attempt_failed(row["id"], error=reason, permanent=True,
                                  next_attempt_at=None)
    line = f"email: {reason} — {_count(rows)} kept in the outbox, not retried"
    # Info, not warning: the caller prints or logs the returned line; a warning here would
    # also reach stderr through logging's last-resort handler (every line printed twice).
    log.info("%s", line)
    lines.append(line)


def _fail(store: Store, email: EmailSettings, rows: Sequence[Mapping[str, Any]],
          error: EmailError, now: datetime) -> str:
    """Record a failed attempt for these rows and say so in one line. Temporary failures
    come back after ``retry_delay``; after ``max_attempts`` tries they become permanent."""
    reason = smtp.redact(str(error), email)
    retried: list[datetime] = []
    given_up: list[Mapping[str, Any]] = []
    # A server that cannot be reached said nothing about the message: however long the
    # outage, the alert is still deliverable once it is back (retries stay at the longest
    # delay). Only what a server answered can exhaust max_attempts.
    unreachable = _unreachable(error)
    for row in rows:
        attempts = int(row["attempts"] or 0) + 1
        permanent = error.permanent or (attempts >= email.max_attempts and not unreachable)
        next_at = None if permanent else now + retry_delay(attempts)
        stored = reason if error.permanent or not permanent else \
            f"{reason} (gave up after {attempts} attempts)"
        store.mark_attempt_failed(row["id"], error=stored, permanent=permanent,
                                  next_attempt_at=next_at)
        if next_at is None:
            given_up.append(row)
        else:
            retried.append(next_at)
    kept = f"{_count(rows)} kept in the outbox"
    if not retried:
        tail = "not retried" if error.permanent else \
            f"not retried (gave up after {email.max_attempts} attempts)"
    else:
        after = min(retried).strftime("%Y-%m-%d %H:%M UTC")
        tail = f"next try after {after}" if not given_up else \
            f"next try after {after} ({len(given_up)} not retried: gave up after " \
            f"{email.max_attempts} attempts)"
    line = f"email: {reason} — {kept}, {tail}"
    log.info("%s", line)  # info: the caller prints the returned line (see _fail_now)
    return line


def _unreachable(error: EmailError) -> bool:
    """No connection could be made (refused, unresolvable, no answer): no reply code."""
    return (error.stage == "connection" and not error.permanent
            and getattr(error, "code", None) is None)


# --- commands -------------------------------------------------------------------------------

def send_test(settings: Settings, to: str | None = None, *,
              now: datetime | None = None) -> list[str]:
    """Send a test message to ``to`` (or every configured recipient) right away, not through
    the outbox. Raises ``EmailError`` with one line saying what failed and what to check."""
    email = _require(settings)
    addresses = [to] if to else [r.address for r in email.recipients]
    if not addresses:
        raise EmailError("no recipient to test: pass --to ADDRESS or add [[email.recipients]] "
                         "to the configuration", permanent=True, stage="config")
    for address in addresses:
        if "@" not in address or any(ch in address for ch in " \r\n<>,"):
            raise EmailError(f"{address!r} is not an email address; pass --to "
                             "name@example.org", permanent=True, stage="config")
    moment = now or utcnow()
    timezone = settings.scheduler.timezone
    messages = [(a, build_test(email, a, now=moment, timezone=timezone).as_bytes(
        policy=SMTP_POLICY)) for a in addresses]
    sent: list[str] = []
    try:
        with smtp.connect(email) as client:
            for address, data in messages:
                smtp.send(client, email, address, data)
                sent.append(address)
    except smtp.SmtpError as error:
        reached = f" (the test message did reach {', '.join(sent)})" if sent else ""
        raise EmailError(smtp.redact(str(error), email) + reached,
                         permanent=error.permanent, stage=error.stage) from None
    return [f"email: test message sent to {a} via {smtp.where(email)} ({email.security})"
            for a in sent]


def send_weekly(settings: Settings, store: Store, week: WeeklySummary | str | None = None, *,
                now: datetime | None = None) -> list[str]:
    """Queue the weekly report for every recipient with ``weekly = true`` (once per week
    and address: ``weekly:<week>:<address>``, carrying the week's change ids as the page
    shows them), then deliver the outbox. ``week`` is best the summary made with the
    published page (``reports.site.write_weekly_report``): the report is then computed once
    for both; a week's name (default: the current week) reads the store once more."""
    email = _require(settings)
    moment = now or utcnow()
    summary = week if isinstance(week, WeeklySummary) else \
        _weekly_summary(settings, store, week, moment)
    label = summary.week
    recipients = [r for r in email.recipients if r.weekly]
    if not recipients:
        return [f"email: no recipient has weekly = true; the weekly report {label} was not "
                "emailed"]
    queued: list[str] = []
    earlier: list[str] = []
    for recipient in recipients:
        fresh = store.enqueue(idempotency_key=weekly_key(label, recipient.address),
                              kind="weekly", recipient=recipient.address,
                              change_ids=summary.change_ids, reference=label, now=moment)
        (queued if fresh else earlier).append(recipient.address)
    lines = []
    if queued:
        lines.append(f"email: weekly report {label} queued for {len(queued)} recipient"
                     f"{'' if len(queued) == 1 else 's'}")
    if earlier:
        lines.append(f"email: weekly report {label} was queued before for "
                     f"{', '.join(earlier)}; not queued again")
    return lines + deliver_outbox(settings, store, now=moment, summaries={label: summary})
