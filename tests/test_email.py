"""Building email messages (pure): subjects, Message-IDs, parts, escaping, stylesheet, links."""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from reports import email as mail
from reports import outbox, render
from scheduler.config import EmailSettings, Recipient
from scrapers.store import StoredChange

NOW = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
SETTINGS = EmailSettings(host="127.0.0.1", port=2525, security="none",
                         sender="schedwatch@example.org", site_url="https://sw.example.org/",
                         recipients=(Recipient("officer@example.org"),))


def record(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        jurisdiction="ca", substance="ketamine", status="controlled", schedule="I",
        control_level="1", instrument="S.C. 1996, c. 19", provision="Sch. I, item 14(1)",
        listed_as="Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone), its salts",
        basis="named", source_id="ca-cdsa",
        source_url="https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml",
        document_sha256="a" * 64, retrieved_at="2026-11-21T15:00:00+00:00")
    base.update(overrides)
    return base


def change(id: int = 7, *, kind: str = "rescheduled", jurisdiction: str = "ca",
           summary: str = "Ketamine — Canada: Schedule I → III (rescheduled)",
           before: dict[str, object] | None = None, after: dict[str, object] | None = None,
           details: dict[str, object] | None = None) -> StoredChange:
    return StoredChange(
        id=id, run_id=1, detected_at="2026-11-21T15:00:00+00:00", jurisdiction=jurisdiction,
        substance="ketamine", source_id="ca-cdsa", kind=kind, summary=summary,
        before=before if before is not None else record(),
        after=after if after is not None else record(schedule="III"),
        effective_date=None, before_sha256="a" * 64, after_sha256="b" * 64,
        details=details or {})


def parsed(message: EmailMessage) -> EmailMessage:
    """What a mail client sees: the bytes on the wire, parsed again."""
    result = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP),
                                      policy=email.policy.default)
    assert isinstance(result, EmailMessage)
    return result


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


class Elements(HTMLParser):
    """Collects start tags and text of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def elements(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


# --- subjects and identities ---------------------------------------------------------------

def test_one_change_subject_is_its_summary() -> None:
    assert mail.alert_subject([change()]) == "Ketamine — Canada: Schedule I → III (rescheduled)"


def test_several_changes_subject_names_the_most_significant_first() -> None:
    failing = change(3, kind="source_failed", summary="United States — us-ecfr-1308: source "
                     "failing: HTTP 503", before={}, after={})
    amended = change(5, kind="amended", summary="Ketamine — Canada: provision changed, "
                     "Schedule I unchanged (amended)")
    subject = mail.alert_subject([failing, amended, change(7)])
    assert subject == "3 changes: Ketamine — Canada: Schedule I → III (rescheduled) (+2 more)"


def test_subject_is_one_line_even_when_the_summary_is_not() -> None:
    message = mail.build_alert(SETTINGS, "officer@example.org",
                               [change(summary="Canada — ca-cdsa: source failing: line one\r\n"
                                               "Bcc: victim@example.org")], now=NOW)
    received = parsed(message)
    assert received["Bcc"] is None
    assert "\n" not in str(received["Subject"])
    assert str(received["Subject"]).startswith("Canada — ca-cdsa: source failing: line one")


def test_message_id_is_stable_per_change_and_recipient() -> None:
    digest = hashlib.sha1(b"officer@example.org").hexdigest()[:12]
    assert mail.alert_message_id([7], "Officer@Example.org", "schedwatch@example.org") == \
        f"<schedwatch.change-7.{digest}@example.org>"
    grouped = mail.alert_message_id([9, 3, 7], "officer@example.org", "schedwatch@example.org")
    assert grouped == mail.alert_message_id([3, 7, 9], "officer@example.org",
                                            "schedwatch@example.org")
    assert grouped != mail.alert_message_id([3, 7], "officer@example.org",
                                            "schedwatch@example.org")
    assert grouped != mail.alert_message_id([3, 7, 9], "other@example.org",
                                            "schedwatch@example.org")
    # Built twice (a retry on a later pass), the message keeps its identity.
    first = mail.build_alert(SETTINGS, "officer@example.org", [change(9), change(3)], now=NOW)
    again = mail.build_alert(SETTINGS, "officer@example.org", [change(3), change(9)],
                             now=NOW + timedelta(hours=1))
    assert first["Message-ID"] == again["Message-ID"] == mail.alert_message_id(
        [3, 9], "officer@example.org", "schedwatch@example.org")


def test_retry_delays_grow_and_are_capped() -> None:
    delays = [outbox.retry_delay(n) for n in range(1, 10)]
    assert delays[:4] == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
                          timedelta(hours=1)]
    assert delays == sorted(delays)
    assert delays[-1] == delays[-2] == timedelta(hours=6)


# --- the message ---------------------------------------------------------------------------

def test_alert_is_multipart_alternative_with_headers() -> None:
    received = parsed(mail.build_alert(SETTINGS, SETTINGS.recipients[0], [change()], now=NOW))
    assert received.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in received.iter_parts()] == ["text/plain", "text/html"]
    assert str(received["Subject"]) == "Ketamine — Canada: Schedule I → III (rescheduled)"
    assert received["To"] == "officer@example.org"
    assert received["From"].addresses[0].addr_spec == "schedwatch@example.org"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Date"].datetime == NOW
    assert received["Message-ID"] == mail.alert_message_id([7], "officer@example.org",
                                                           "schedwatch@example.org")
    text, html = parts(received)
    assert "Schedule: I → III" in text
    assert "https://sw.example.org/changes/7.html" in text
    assert "https://sw.example.org/index.html" in text
    found = elements(html)
    hrefs = [attrs.get("href") for tag, attrs in found.tags if tag == "a"]
    assert "https://sw.example.org/changes/7.html" in hrefs
    assert "https://sw.example.org/index.html" in hrefs
    assert "https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml" in hrefs


def test_without_site_url_there_are_no_site_links() -> None:
    settings = EmailSettings(host="127.0.0.1", sender="schedwatch@example.org")
    text, html = parts(parsed(mail.build_alert(settings, "officer@example.org", [change()],
                                               now=NOW)))
    assert "changes/7.html" not in text + html
    assert "index.html" not in text + html


def test_html_has_the_shared_stylesheet_and_inline_styles(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(render, "stylesheet",
                        lambda: ".marker-rule > td { color: #123456; } </style><script>x")
    _, html = parts(parsed(mail.build_alert(SETTINGS, "officer@example.org", [change()],
                                            now=NOW)))
    found = elements(html)
    assert ".marker-rule > td { color: #123456; }" in found.style  # not HTML-escaped
    assert "script" not in [tag for tag, _ in found.tags]  # "</" cannot close <style>
    body = [attrs for tag, attrs in found.tags if tag == "body"][0]
    assert "font-family" in (body.get("style") or "")
    assert sum(1 for _, attrs in found.tags if attrs.get("style")) > 10


def test_missing_stylesheet_falls_back_to_built_in_css(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise FileNotFoundError("reports/templates/style.css")

    monkeypatch.setattr(render, "stylesheet", missing)
    _, html = parts(parsed(mail.build_alert(SETTINGS, "officer@example.org", [change()],
                                            now=NOW)))
    assert "border-collapse" in elements(html).style


def test_scraped_markup_is_escaped_in_html_and_literal_in_text() -> None:
    nasty = 'Ketamine <script>alert(1)</script> & "salts" \'isomers\''
    hostile = change(summary='Ketamine — Canada: <script>alert(2)</script> & "I" → III '
                             '(rescheduled)',
                     before=record(listed_as=nasty),
                     after=record(schedule="III", listed_as=nasty + " <b>bold</b>",
                                  source_url="javascript:alert(3)"))
    received = parsed(mail.build_alert(SETTINGS, "officer@example.org", [hostile], now=NOW))
    text, html = parts(received)
    found = elements(html)
    tags = [tag for tag, _ in found.tags]
    assert "script" not in tags and "b" not in tags
    shown = "".join(found.text)
    assert nasty in shown
    assert "<script>alert(2)</script> & \"I\"" in shown
    assert "javascript:" not in " ".join(str(a.get("href")) for t, a in found.tags if t == "a")
    # The plain part shows the text as printed, without HTML entities.
    assert nasty in text
    assert "<script>alert(2)</script>" in text
    assert "&amp;" not in text and "&lt;" not in text and "&#34;" not in text
    assert str(received["Subject"]).startswith("Ketamine — Canada: <script>alert(2)</script>")


def test_pending_and_source_changes_render_their_facts() -> None:
    pending = StoredChange(
        id=11, run_id=1, detected_at="2026-11-21T15:00:00+00:00", jurisdiction="us",
        substance="ketamine", source_id="us-federal-register", kind="pending",
        summary="Ketamine — United States: proposed rule to Schedule II (89 FR 1) (pending)",
        before=None, after={"action": "proposed_rule", "description": "Proposed rescheduling",
                            "reference": "89 FR 1", "proposed_schedule": "II",
                            "date_label": "comment deadline", "date": "2027-01-15",
                            "url": "https://www.federalregister.gov/d/2026-1"},
        effective_date="2027-01-15", before_sha256=None, after_sha256="c" * 64, details={})
    failing = change(12, kind="source_failed", before={}, after={},
                     summary="Canada — ca-cdsa: source failing: HTTP 503",
                     details={"error": "HTTP 503", "failing_since": "2026-11-20T01:00:00+00:00"})
    text, html = parts(parsed(mail.build_alert(SETTINGS, "officer@example.org",
                                               [failing, pending], now=NOW,
                                               names={"us": "United States"})))
    assert "Comment deadline: 2027-01-15" in text
    assert "Action: proposed rule" in text
    assert "Failing since: 2026-11-20 01:00 UTC" in text
    assert "https://www.federalregister.gov/d/2026-1" in html
    assert text.index("proposed rule to Schedule II") < text.index("source failing")


def test_test_message() -> None:
    received = parsed(mail.build_test(SETTINGS, "officer@example.org", now=NOW))
    assert str(received["Subject"]) == "schedwatch test message"
    assert received.get_content_type() == "multipart/alternative"
    text, _ = parts(received)
    assert "127.0.0.1:2525" in text


def test_times_are_utc_with_the_readers_zone_beside() -> None:
    text, _ = parts(parsed(mail.build_alert(SETTINGS, "officer@example.org", [change()],
                                            now=NOW, timezone="America/Toronto")))
    assert "detected 2026-11-21 15:00 UTC (2026-11-21 10:00 America/Toronto (EST))" in text
    utc_only, _ = parts(parsed(mail.build_alert(SETTINGS, "officer@example.org", [change()],
                                                now=NOW)))
    assert "detected 2026-11-21 15:00 UTC\r\n" in utc_only  # CRLF: the wire format


def test_records_show_their_legal_dates_not_a_consolidations_element_date() -> None:
    after = record(schedule="III", effective_from="2005-08-31",
                   in_force_since="2026-06-05", in_force_since_kind="instrument",
                   in_force_since_basis="SOR/2026-100",
                   first_observed_at="2026-11-21T15:00:00+00:00",
                   review="the status rests on a generic analogue entry")
    view = mail.change_view(change(after=after), site_url=None, names={"ca": "Canada"})
    by_label = {row["label"]: row["after"] for row in view["rows"]}
    assert "Effective from" not in by_label and "2005-08-31" not in str(view["rows"])
    from reports.status_rows import since_words
    from scrapers.records import StatusRecord
    assert by_label["In force since"] == since_words(StatusRecord.from_dict(after))
    assert "2026-06-05" in by_label["In force since"]
    assert "SOR/2026-100" in by_label["In force since"]
    assert by_label["First observed by schedwatch"] == "2026-11-21T15:00:00+00:00"
    assert by_label["REVIEW"] == "the status rests on a generic analogue entry"
    # Without a review reason there is no REVIEW row at all.
    plain = mail.change_view(change(), site_url=None, names={"ca": "Canada"})
    assert "REVIEW" not in {row["label"] for row in plain["rows"]}


def test_kind_headings_and_colours_come_from_the_one_table_of_change_kinds() -> None:
    from reports.diff import CHANGE_KINDS

    for kind, spec in CHANGE_KINDS.items():
        view = mail.change_view(change(kind=kind), site_url=None, names={"ca": "Canada"})
        assert (view["kind_label"], view["colour"]) == (spec.heading, spec.colour)
    assert mail.change_view(change(kind="amended"), site_url=None, names={})["kind_label"] == \
        "Amended (status unchanged)"
    # A dated change taking effect ranks after a reschedule and before a pending item.
    ranked = mail.ordered([change(1, kind="pending"), change(2, kind="in_force"),
                           change(3, kind="rescheduled")])
    assert [c.kind for c in ranked] == ["rescheduled", "in_force", "pending"]
