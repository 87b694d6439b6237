"""Email: build alert, weekly-report and test messages (pure) and deliver the outbox (I/O).

Alerts are queued by ``reports.outbox`` in the same transaction as the changes they report,
so nothing detected is lost; this module only sends what is due. Guarantees:

* a row is marked delivered only after the SMTP server accepted the message carrying it, and
  right after (one message at a time), so a crash can at worst repeat one message;
* such a repeat carries the same ``Message-ID`` (derived from the change ids and the
  recipient), so mail clients recognise it as the same message;
* one connection attempt per pass: when the server is down every due row is deferred
  together, with a growing delay, and given up after ``email.max_attempts`` tries;
* SMTP and network problems come back as one-line messages, never as exceptions, and never
  contain the password.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as DEFAULT_POLICY
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from reports import render, smtp
from reports.diff import CHANGE_KINDS, KIND_ORDER, SOURCE_KINDS
from scrapers.errors import EmailError, LockedError, SchedwatchError
from scrapers.faults import checkpoint
from scrapers.store import StoredChange, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import EmailSettings, Recipient, Settings
    from scrapers.store import Store

log = logging.getLogger(__name__)

NO_SECTION = "no [email] section in the configuration; add one (see schedwatch.example.toml)"

#: Delay before the next try after the n-th failed attempt (the last one repeats).
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
                timedelta(hours=1), timedelta(hours=3), timedelta(hours=6))

RECORD_FIELDS = (("status", "Status"), ("schedule", "Schedule"),
                 ("control_level", "Control level"), ("instrument", "Instrument"),
                 ("provision", "Provision"), ("listed_as", "Listed as"), ("basis", "Basis"),
                 ("code", "Code"), ("in_force_words", "In force since"),
                 ("first_observed_at", "First observed by schedwatch"),
                 ("review", "REVIEW"), ("legal_note", "Note"))
PENDING_FIELDS = (("action", "Action"), ("description", "Description"),
                  ("reference", "Reference"), ("proposed_schedule", "Proposed schedule"))
DETAIL_FIELDS = (("error", "Error"), ("error_kind", "Error kind"),
                 ("failing_since", "Failing since"), ("previous_error", "Previous error"),
                 ("url", "URL"))

#: Used only while reports/templates/style.css does not exist (the inline style attributes
#: carry the essentials anyway: many mail clients drop <style>).
FALLBACK_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1b; }
a { color: #1f5fa8; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; }
"""


# --- pure: identities, subjects, views ------------------------------------------------------

def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2] or "localhost"


def alert_message_id(change_ids: Iterable[int], recipient: str, sender: str) -> str:
    """Stable per (changes, recipient): a retry or a crash-repeat has the same Message-ID."""
    ids = sorted(set(change_ids))
    if not ids:
        raise ValueError("an alert needs at least one change id")
    part = f"change-{ids[0]}" if len(ids) == 1 else \
        f"changes-{_digest(','.join(str(i) for i in ids))}"
    return f"<schedwatch.{part}.{_digest(recipient.lower())}@{_domain(sender)}>"


def weekly_message_id(week: str, recipient: str, sender: str) -> str:
    return f"<schedwatch.weekly-{week}.{_digest(recipient.lower())}@{_domain(sender)}>"


def weekly_key(week: str, address: str) -> str:
    return f"weekly:{week}:{address.lower()}"


def retry_delay(attempts: int) -> timedelta:
    """Delay after ``attempts`` failed tries: 1 min, 5 min, 15 min, 1 h, 3 h, then 6 h."""
    return RETRY_DELAYS[max(0, min(attempts, len(RETRY_DELAYS)) - 1)]


def _one_line(text: str, limit: int = 200) -> str:
    # Headers must not carry line breaks (scraped error texts can), and long subjects are
    # cut by clients anyway.
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def ordered(changes: Iterable[StoredChange]) -> list[StoredChange]:
    """Most significant kind first, then in the order detected."""
    def rank(change: StoredChange) -> tuple[int, int]:
        kind = KIND_ORDER.index(change.kind) if change.kind in KIND_ORDER else len(KIND_ORDER)
        return kind, change.id
    return sorted(changes, key=rank)


def alert_subject(changes: Sequence[StoredChange]) -> str:
    """``Ketamine — Canada: Schedule I → III (rescheduled)`` for one change,
    ``3 changes: Ketamine — Canada: … (+2 more)`` for several."""
    if not changes:
        raise ValueError("an alert needs at least one change")
    first = ordered(changes)[0]
    if len(changes) == 1:
        return _one_line(first.summary)
    return _one_line(f"{len(changes)} changes: {_one_line(first.summary, 150)} "
                     f"(+{len(changes) - 1} more)", 250)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _when(value: str | None, timezone: str = "UTC") -> str:
    """A stored timestamp as ``2026-11-21 15:20 UTC``, followed by the same moment in the
    reader's zone (``scheduler.timezone``) when that is not UTC."""
    if not value:
        return ""
    utc = render.format_utc(value)
    local = render.format_local(value, render.zone(timezone))
    return f"{utc} ({local})" if local else utc


def change_view(change: StoredChange, *, site_url: str | None, names: Mapping[str, str],
                timezone: str = "UTC") -> dict[str, Any]:
    """What the templates show of one change: plain strings only, links checked."""
    before, after = change.before or {}, change.after or {}
    rows: list[dict[str, Any]] = []
    facts: list[tuple[str, str]] = []
    if change.kind == "pending":
        for key, label in PENDING_FIELDS:
            value = _text(after.get(key)).replace("_", " ") if key == "action" \
                else _text(after.get(key))
            if value:
                facts.append((label, value))
        if after.get("date"):
            facts.append((_text(after.get("date_label")).capitalize() or "Date",
                          _text(after["date"])))
        for pair in after.get("details") or ():
            if isinstance(pair, list | tuple) and len(pair) == 2:
                facts.append((_text(pair[0]), _text(pair[1])))
    elif change.kind in SOURCE_KINDS:
        for key, label in DETAIL_FIELDS:
            if change.details.get(key):
                value = _text(change.details[key])
                facts.append((label, _when(value, timezone) if key.endswith("_since")
                              else value))
    else:
        before, after = _with_since_words(before), _with_since_words(after)
        for key, label in RECORD_FIELDS:
            old, new = _text(before.get(key)), _text(after.get(key))
            if old or new:
                rows.append({"label": label, "before": old, "after": new,
                             "changed": old != new})
    record = after or before
    kind_info = CHANGE_KINDS.get(change.kind)
    url = record.get("source_url") or record.get("url") or change.details.get("url")
    # Autoescape stops markup, not a scraped ``javascript:`` link: only http(s) is linked.
    source_url = render.safe_url(url) if isinstance(url, str) else None
    return {
        "id": change.id,
        "summary": change.summary,
        "kind": change.kind,
        # One table for every kind (reports.diff): the email shows its heading form.
        "kind_label": kind_info.heading if kind_info else change.kind,
        "colour": kind_info.colour if kind_info else "#5f5f5a",
        "jurisdiction": change.jurisdiction,
        "jurisdiction_name": names.get(change.jurisdiction, change.jurisdiction.upper()),
        "substance": change.substance or "",
        "source_id": change.source_id,
        "detected_at": _when(change.detected_at, timezone),
        "effective_date": change.effective_date or "",
        "rows": rows,
        "facts": facts,
        "source_url": source_url,
        "document": change.after_sha256 or change.before_sha256 or "",
        "link": f"{site_url}changes/{change.id}.html" if site_url else None,
    }


def subscription(recipient: Recipient | None) -> str:
    """Why this address gets the message, in words (printed in every footer)."""
    if recipient is None:
        return "this address was given for a test"
    jurisdictions = ", ".join(recipient.jurisdictions) if recipient.jurisdictions is not None \
        else "all jurisdictions"
    substances = ", ".join(recipient.substances) if recipient.substances is not None \
        else "all watched substances"
    kinds = ", ".join(recipient.kinds)
    return f"{jurisdictions}; {substances}; {kinds}"


# --- pure: rendering and composing ----------------------------------------------------------

def email_css() -> Markup:
    """The shared stylesheet for the <style> element (built-in minimal CSS until it exists).
    Marked safe because it is our own file, not scraped text; ``</`` is neutralised so it can
    never close the element."""
    try:
        css = render.stylesheet()
    except OSError:
        css = FALLBACK_CSS
    return Markup(css.replace("</", "<\\/"))  # noqa: S704 - our stylesheet, not input


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    return env.get_template(name).render(**context)


def compose(email: EmailSettings, to: str, *, subject: str, text: str, html: str,
            message_id: str, now: datetime) -> EmailMessage:
    """A ``multipart/alternative`` message (plain text first, HTML preferred). Quoted-printable
    keeps it 7-bit on the wire, so relays without 8BITMIME pass it unchanged."""
    message = EmailMessage(policy=DEFAULT_POLICY)
    message["Subject"] = _one_line(subject, 250)
    message["From"] = formataddr(("schedwatch", email.sender))
    message["To"] = to
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, no loops
    # Exchange ignores Auto-Submitted; this stops its out-of-office replies.
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text, subtype="plain", cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


def build_alert(email: EmailSettings, recipient: Recipient | str,
                changes: Sequence[StoredChange], *, now: datetime,
                names: Mapping[str, str] | None = None, timezone: str = "UTC") -> EmailMessage:
    """One alert message to one recipient carrying one or more changes."""
    address = recipient if isinstance(recipient, str) else recipient.address
    chosen = ordered(changes)
    subject = alert_subject(chosen)
    views = [change_view(c, site_url=email.site_url, names=names or {}, timezone=timezone)
             for c in chosen]
    heading = "A ketamine status change was detected" if len(views) == 1 else \
        f"{len(views)} changes were detected"
    context = {
        "subject": subject, "heading": heading, "changes": views, "count": len(views),
        "address": address, "css": email_css(),
        "subscription": subscription(None if isinstance(recipient, str) else recipient),
        "index_link": f"{email.site_url}index.html" if email.site_url else None,
        "generated_at": _when(now.isoformat(), timezone),
    }
    env = render.environment()
    return compose(email, address, subject=subject,
                   text=_render(env, "email/alert.txt", context),
                   html=_render(env, "email/alert.html", context),
                   message_id=alert_message_id([c.id for c in chosen], address, email.sender),
                   now=now)


def build_test(email: EmailSettings, address: str, *, now: datetime,
               timezone: str = "UTC") -> EmailMessage:
    """The message of ``schedwatch email test``: proves delivery, carries no data."""
    subject = "schedwatch test message"
    context = {
        "subject": subject, "address": address, "css": email_css(),
        "server": smtp.where(email), "security": email.security,
        "sender": email.sender, "generated_at": _when(now.isoformat(), timezone),
        "index_link": f"{email.site_url}index.html" if email.site_url else None,
        "subscription": subscription(next(
            (r for r in email.recipients if r.address.lower() == address.lower()), None)),
    }
    env = render.environment()
    stamp_part = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return compose(email, address, subject=subject,
                   text=_render(env, "email/test.txt", context),
                   html=_render(env, "email/test.html", context),
                   message_id=f"<schedwatch.test-{stamp_part}.{_digest(address.lower())}"
                              f"@{_domain(email.sender)}>", now=now)


# --- weekly report ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WeeklySummary:
    """What the weekly email says besides the changes themselves. Taken from
    ``reports.site.weekly_context`` (the data of the published weekly page, weeks in the
    reader's zone), so the email and the page agree."""

    week: str
    period: str  # "2026-11-16 to 2026-11-22 (UTC)"
    complete: bool
    change_ids: tuple[int, ...]
    sources: tuple[Mapping[str, Any], ...] = ()  # source_id, title, checks, failures, ...
    pending: tuple[str, ...] = ()
    failed_alerts: int = 0
    href: str = ""  # the weekly page, relative to the site root


def weekly_summary(settings: Settings, store: Store, week: str | None, *,
                   now: datetime) -> WeeklySummary:
    """The site's weekly context, reduced to what the email shows. A bad week raises the
    site's one-line ``SchedwatchError``."""
    from reports.site import weekly_context

    context = weekly_context(settings, store, week, now=now)
    reader_zone = render.zone(context["timezone"])
    start = render.parse_stamp(context["start"]).astimezone(reader_zone)
    last = (render.parse_stamp(context["end"]) - timedelta(seconds=1)).astimezone(reader_zone)
    sources = tuple({
        "source_id": s["id"], "title": s["title"], "checks": s["checks"],
        "failures": s["failures"],
        "last_healthy": render.format_utc(s["last_healthy_at"]) or "never",
        "errors": "; ".join(f"{e['error']} (×{e['count']})" for e in s["errors"]),
    } for s in context["sources"])
    pending = tuple(_pending_line(p) for p in context["pending"])
    return WeeklySummary(
        week=context["week"], complete=bool(context["complete"]),
        period=f"{start:%Y-%m-%d} to {last:%Y-%m-%d} ({reader_zone.key})",
        change_ids=tuple(c["id"] for group in context["changes_by_jurisdiction"]
                         for c in group["changes"]),
        sources=sources, pending=pending,
        failed_alerts=sum(1 for m in context["mail_failures"] if m["kind"] == "alert"),
        href=context["href"])


def _pending_line(item: Mapping[str, Any]) -> str:
    """``Ketamine — United States: proposed rule to Schedule II (89 FR 1, comment deadline
    2027-01-15)``."""
    target = f" to Schedule {item['proposed_schedule']}" if item.get("proposed_schedule") \
        else ""
    facts = [str(item["reference"])] if item.get("reference") else []
    if item.get("date"):
        facts.append(f"{item['date_label']} {item['date']}")
    where = f" ({', '.join(facts)})" if facts else ""
    return f"{item['name']} — {item['jurisdiction_name']}: {item['action']}{target}{where}"


def build_weekly(email: EmailSettings, recipient: Recipient | str, summary: WeeklySummary,
                 changes: Sequence[StoredChange], *, now: datetime,
                 names: Mapping[str, str] | None = None, timezone: str = "UTC"
                 ) -> EmailMessage:
    """The weekly report to one recipient: the week's changes in full, the sources' checks
    and failures, open pending items, undeliverable alerts, a link to the published page."""
    address = recipient if isinstance(recipient, str) else recipient.address
    count = len(changes)
    subject = f"schedwatch weekly report {summary.week}: " + (
        "no changes" if count == 0 else f"{count} change{'' if count == 1 else 's'}")
    context = {
        "subject": subject, "week": summary.week, "address": address, "css": email_css(),
        "period": summary.period, "complete": summary.complete,
        "changes": [change_view(c, site_url=email.site_url, names=names or {},
                                timezone=timezone) for c in ordered(changes)],
        "sources": list(summary.sources), "pending": list(summary.pending),
        "failed_alerts": summary.failed_alerts,
        "report_link": f"{email.site_url}{summary.href}" if email.site_url and summary.href
        else None,
        "index_link": f"{email.site_url}index.html" if email.site_url else None,
        "generated_at": _when(now.isoformat(), timezone),
    }
    env = render.environment()
    return compose(email, address, subject=subject,
                   text=_render(env, "email/weekly.txt", context),
                   html=_render(env, "email/weekly.html", context),
                   message_id=weekly_message_id(summary.week, address, email.sender), now=now)


# --- delivery (I/O) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One message of this pass and the outbox rows it carries."""

    recipient: str
    rows: tuple[Mapping[str, Any], ...]
    message_id: str
    data: bytes


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


def deliver_outbox(settings: Settings, store: Store, *,
                   now: datetime | None = None, by_hand: bool = False) -> list[str]:
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
            return _deliver(settings, email, store, moment, by_hand=by_hand)
    except LockedError as error:
        return [f"email: {error}"]


def _deliver(settings: Settings, email: EmailSettings, store: Store,
             now: datetime, *, by_hand: bool = False) -> list[str]:
    due = store.outbox_rows("queued") if by_hand else store.outbox_due(now)
    if not due:
        return [] if by_hand else _waiting(store)
    lines: list[str] = []
    outgoing = _prepare(settings, email, store, due, now, lines)
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
        for index, item in enumerate(outgoing):
            try:
                smtp.send(client, email, item.recipient, item.data)
            except smtp.SmtpError as error:
                if error.connection_lost:
                    rest = [r for o in outgoing[index:] for r in o.rows]
                    lines.append(_fail(store, email, rest, error, now))
                    break
                lines.append(_fail(store, email, item.rows, error, now))
                continue
            # The server has accepted the message: the crash window starts here (the
            # reliability tests kill the process at this point).
            checkpoint("email_accepted")
            # Marked at once, all rows of the message in one transaction: a crash now can
            # repeat only this whole message, and the repeat has the same Message-ID.
            store.mark_delivered_many([row["id"] for row in item.rows],
                                      message_id=item.message_id, now=now)
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
             due: Sequence[Mapping[str, Any]], now: datetime,
             lines: list[str]) -> list[Outgoing]:
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
    summaries: dict[str, WeeklySummary] = {}
    outgoing: list[Outgoing] = []
    for (kind, address, reference), rows in groups.items():
        recipient = configured[address]
        if kind == "alert":
            missing = [r for r in rows if not any(i in known for i in _ids(r))]
            if missing:
                _fail_now(store, missing, "the change of this alert is no longer stored; "
                                          "not sent", lines)
                rows = [r for r in rows if r not in missing]
            if not rows:
                continue
            changes = [known[i] for r in rows for i in _ids(r) if i in known]
            message = build_alert(email, recipient, changes, now=now, names=names,
                                  timezone=timezone)
        elif kind == "weekly":
            if reference not in summaries:
                try:
                    summaries[reference] = weekly_summary(settings, store, reference, now=now)
                except SchedwatchError as error:  # e.g. a malformed week in an old row
                    _fail_now(store, rows, f"the weekly report {reference} cannot be built "
                                           f"({error}); not sent", lines)
                    continue
            # The changes queued with the report (what the page showed then), in full.
            changes = [known[i] for r in rows for i in _ids(r) if i in known]
            message = build_weekly(email, recipient, summaries[reference], changes, now=now,
                                   names=names, timezone=timezone)
        else:
            message = build_test(email, recipient.address, now=now, timezone=timezone)
        outgoing.append(Outgoing(recipient=recipient.address, rows=tuple(rows),
                                 message_id=str(message["Message-ID"]),
                                 data=message.as_bytes(policy=SMTP_POLICY)))
    return outgoing


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


def send_weekly(settings: Settings, store: Store, week: str | None = None, *,
                now: datetime | None = None) -> list[str]:
    """Queue the weekly report for every recipient with ``weekly = true`` (once per week and
    address: ``weekly:<week>:<address>``, carrying the week's change ids as the published
    page shows them), then deliver the outbox."""
    email = _require(settings)
    moment = now or utcnow()
    summary = weekly_summary(settings, store, week, now=moment)
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
    return lines + deliver_outbox(settings, store, now=moment)


def _with_since_words(data: dict[str, Any] | None) -> dict[str, Any]:
    """A stored record with its in-force date worded as everywhere else ("in force since
    1999-08-12 (per the instrument: 64 FR 37673, effective 1999-08-12)"); a consolidation's
    element date is never shown as "effective"."""
    from reports.status_rows import since_words
    from scrapers.records import StatusRecord

    if not data:
        return {}
    try:
        words = since_words(StatusRecord.from_dict(data))
    except TypeError:  # a record stored by an older version without every field
        words = None
    return {**data, "in_force_words": words}
