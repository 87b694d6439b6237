"""Email messages: alerts, digests, weekly reports and test messages, built as pure
functions of their data (subject, plain text, HTML, identity).

Sending is not here: ``reports.outbox`` owns the outbox's life (queue, deliver, retry, fail)
and ``reports.smtp`` is the transport. What this module guarantees about a message:

* its ``Message-ID`` is derived from the change ids and the recipient, so a repeat (a retry,
  or a crash between acceptance and marking) is recognised as the same message;
* changes come in the watch list's order (ketamine before its isomers), and the isomers of
  one entry changed by one event (same jurisdiction, source, kind and evidence) share one
  line: "Ketamine (and esketamine, arketamine) — Canada: …";
* no message is larger than ``MAX_MESSAGE_BYTES``: above it the outbox sends a digest
  (``build_digest``: counts per kind, the first changes, links to the site).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from jurisdictions.substances import DEFAULT_WATCH, KNOWN
from reports import render, smtp
from reports.diff import CHANGE_KINDS, KIND_ORDER, SOURCE_KINDS
from scrapers.store import StoredChange

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import EmailSettings, Recipient
    from reports.weekly import WeeklySummary

#: The largest message schedwatch hands to a server (bytes, as sent). 1,000 alerts in full
#: made a 3.5 MB message that servers refuse (552); above this bound a digest goes instead.
MAX_MESSAGE_BYTES = 300_000
#: How many changes a digest lists (the rest are counted and linked to the site).
DIGEST_CHANGES = 20

NO_SECTION = "no [email] section in the configuration; add one (see schedwatch.example.toml)"

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


def _one_line(text: str, limit: int = 200) -> str:
    # Headers must not carry line breaks (scraped error texts can), and long subjects are
    # cut by clients anyway.
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


#: The family of a watched isomer: esketamine and arketamine are isomers of ketamine.
ISOMER_OF = {s.key: s.covered_by for s in KNOWN if s.relation == "isomer" and s.covered_by}


def _watch_rank(watch: Sequence[str]) -> dict[str, int]:
    return {key: index for index, key in enumerate(watch)}


def ordered(changes: Iterable[StoredChange],
            watch: Sequence[str] = DEFAULT_WATCH) -> list[StoredChange]:
    """Most significant kind first, then the watch list's order (ketamine before its
    isomers, as configured), then the order detected."""
    ranks = _watch_rank(watch)

    def rank(change: StoredChange) -> tuple[int, int, int]:
        kind = KIND_ORDER.index(change.kind) if change.kind in KIND_ORDER else len(KIND_ORDER)
        substance = -1 if change.substance is None else ranks.get(change.substance, len(ranks))
        return kind, substance, change.id
    return sorted(changes, key=rank)


@dataclass(frozen=True)
class ChangeGroup:
    """One line of a message: a change, and the isomers of the same entry that one event
    changed in the same way (same jurisdiction, source, kind and evidence)."""

    lead: StoredChange
    others: tuple[StoredChange, ...] = ()

    @property
    def changes(self) -> tuple[StoredChange, ...]:
        return (self.lead, *self.others)

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.changes]

    @property
    def summary(self) -> str:
        """``Ketamine (and esketamine, arketamine) — Canada: Schedule I → III (rescheduled)``."""
        if not self.others:
            return self.lead.summary
        head, _, tail = self.lead.summary.partition(" — ")
        also = ", ".join(c.summary.partition(" — ")[0].lower() for c in self.others)
        return f"{head} (and {also}) — {tail}"


def _group_key(change: StoredChange) -> tuple[Any, ...] | None:
    if change.substance is None or " — " not in change.summary:
        return None
    family = ISOMER_OF.get(change.substance, change.substance)
    # The same move in the same words ("Canada: Schedule I → III (rescheduled)"); a note
    # after it ("— REVIEW: Ketamine is listed …") is the lead's and is shown with it.
    move = change.summary.split(" — ")[1]
    return (family, change.jurisdiction, change.source_id, change.kind, change.before_sha256,
            change.after_sha256, change.effective_date, move)


def grouped(changes: Iterable[StoredChange],
            watch: Sequence[str] = DEFAULT_WATCH) -> list[ChangeGroup]:
    """The changes in ``ordered`` order, the isomers of one entry changed by one event
    folded into the line of the first (in the watch order)."""
    groups: list[list[StoredChange]] = []
    by_key: dict[tuple[Any, ...], list[StoredChange]] = {}
    for change in ordered(changes, watch):
        key = _group_key(change)
        if key is not None and key in by_key:
            by_key[key].append(change)
            continue
        group = [change]
        groups.append(group)
        if key is not None:
            by_key[key] = group
    return [ChangeGroup(g[0], tuple(g[1:])) for g in groups]


def alert_subject(changes: Sequence[StoredChange],
                  watch: Sequence[str] = DEFAULT_WATCH) -> str:
    """``Ketamine — Canada: Schedule I → III (rescheduled)`` for one change (or one event
    about ketamine and its isomers), ``3 changes: Ketamine — Canada: … (+2 more)`` for
    several."""
    if not changes:
        raise ValueError("an alert needs at least one change")
    groups = grouped(changes, watch)
    if len(groups) == 1:
        return _one_line(groups[0].summary)
    return _one_line(f"{len(groups)} changes: {_one_line(groups[0].summary, 150)} "
                     f"(+{len(groups) - 1} more)", 250)


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


def group_view(group: ChangeGroup, *, site_url: str | None, names: Mapping[str, str],
               timezone: str = "UTC") -> dict[str, Any]:
    """What the templates show of one line: the lead change, worded for its whole group."""
    view = change_view(group.lead, site_url=site_url, names=names, timezone=timezone)
    if group.others:
        view["summary"] = group.summary
        view["substance"] = ", ".join(c.substance or "" for c in group.changes)
    return view


def build_alert(email: EmailSettings, recipient: Recipient | str,
                changes: Sequence[StoredChange], *, now: datetime,
                names: Mapping[str, str] | None = None, timezone: str = "UTC",
                watch: Sequence[str] = DEFAULT_WATCH) -> EmailMessage:
    """One alert message to one recipient carrying one or more changes, in the watch
    list's order, the isomers of one entry changed by one event on one line."""
    groups = grouped(changes, watch)
    subject = alert_subject(changes, watch)
    views = [group_view(g, site_url=email.site_url, names=names or {}, timezone=timezone)
             for g in groups]
    heading = "A ketamine status change was detected" if len(views) == 1 else \
        f"{len(views)} changes were detected"
    return _alert_message(email, recipient, changes, "alert", now=now, timezone=timezone,
                          subject=subject, context={"heading": heading, "changes": views,
                                                    "count": len(views)})


def _alert_message(email: EmailSettings, recipient: Recipient | str,
                   changes: Sequence[StoredChange], template: str, *, now: datetime,
                   timezone: str, subject: str, context: Mapping[str, Any]) -> EmailMessage:
    """An alert-like message (``email/<template>.txt`` and ``.html``): the recipient, their
    subscription, the site's links and the ``Message-ID`` of these changes, whatever its
    form (the full alert or its digest carry the same id)."""
    address = recipient if isinstance(recipient, str) else recipient.address
    context = {
        **context, "subject": subject, "address": address, "css": email_css(),
        "subscription": subscription(None if isinstance(recipient, str) else recipient),
        "index_link": f"{email.site_url}index.html" if email.site_url else None,
        # The site publishes its Atom feed as feed.atom (reports/site.py).
        "feed_link": f"{email.site_url}feed.atom" if email.site_url else None,
        "generated_at": _when(now.isoformat(), timezone),
    }
    env = render.environment()
    return compose(email, address, subject=subject,
                   text=_render(env, f"email/{template}.txt", context),
                   html=_render(env, f"email/{template}.html", context),
                   message_id=alert_message_id([c.id for c in changes], address, email.sender),
                   now=now)


def build_digest(email: EmailSettings, recipient: Recipient | str,
                 changes: Sequence[StoredChange], *, now: datetime,
                 names: Mapping[str, str] | None = None, timezone: str = "UTC",
                 watch: Sequence[str] = DEFAULT_WATCH,
                 limit: int = DIGEST_CHANGES) -> EmailMessage:
    """The alert of too many changes for one message: how many of each kind, the first
    ``limit`` lines (summary and link), and links to the site for the rest. It carries the
    same changes as the full alert, hence the same ``Message-ID``."""
    groups = grouped(changes, watch)
    counts: dict[str, int] = {}
    for change in ordered(changes, watch):
        counts[change.kind] = counts.get(change.kind, 0) + 1
    kinds = [{"label": CHANGE_KINDS[k].heading if k in CHANGE_KINDS else k, "count": n,
              "colour": CHANGE_KINDS[k].colour if k in CHANGE_KINDS else "#5f5f5a"}
             for k, n in counts.items()]
    shown = [{"summary": _one_line(g.summary, 300),
              "link": f"{email.site_url}changes/{g.lead.id}.html" if email.site_url else None}
             for g in groups[:limit]]
    more = len(groups) - len(shown)
    subject = _one_line(f"{len(changes)} changes (digest): "
                        f"{_one_line(groups[0].summary, 150)}", 250)
    return _alert_message(email, recipient, changes, "digest", now=now, timezone=timezone,
                          subject=subject, context={
                              "heading": f"{len(changes)} changes were detected",
                              "kinds": kinds, "shown": shown, "more": more,
                              "count": len(changes), "max_kb": MAX_MESSAGE_BYTES // 1000})


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



# --- weekly report -------------------------------------------------------------------------

def build_weekly(email: EmailSettings, recipient: Recipient | str, summary: WeeklySummary,
                 changes: Sequence[StoredChange], *, now: datetime,
                 names: Mapping[str, str] | None = None, timezone: str = "UTC",
                 watch: Sequence[str] = DEFAULT_WATCH, limit: int | None = None
                 ) -> EmailMessage:
    """The weekly report to one recipient: the week's changes in full (the first ``limit``
    lines when the full report would be too large; the rest are on the published page),
    the sources' checks and failures, open pending items, undeliverable alerts, a link to
    the published page."""
    address = recipient if isinstance(recipient, str) else recipient.address
    count = len(changes)
    groups = grouped(changes, watch)
    subject = f"schedwatch weekly report {summary.week}: " + (
        "no changes" if count == 0 else f"{count} change{'' if count == 1 else 's'}")
    context = {
        "subject": subject, "week": summary.week, "address": address, "css": email_css(),
        "period": summary.period, "complete": summary.complete,
        "changes": [group_view(g, site_url=email.site_url, names=names or {},
                               timezone=timezone) for g in groups[:limit]],
        "more": len(groups) - len(groups[:limit]),
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
