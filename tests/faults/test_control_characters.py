"""Control characters from JSON sources (issue 16, item 10): a Federal Register answer whose
strings carry ESC sequences, BEL, NUL and C1 controls (JSON can escape any of them) is
stored, printed, mailed and published without them — no terminal escapes in ``run`` or
``changes``, no raw bytes in the mail Subject, and ``feed.atom`` stays well-formed XML.

The hostile document is made here from the HYPOTHETICAL proposal fixture
(``fr-documents-proposed-schedule-ii.json``): the same words with controls between them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from scrapers.records import normalise_text, strip_controls
from tests.faults import harness as h
from tests.support import cli as cli_support
from tests.support import config as config_support
from tests.support.smtp import SmtpServer, email_section

#: Any C0 control but newline, DEL, or any C1 control.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
SOURCE = "us-federal-register"


def hostile(text: str) -> str:
    """``text`` with an ESC colour sequence, BEL, NUL and C1 controls spliced in."""
    words = text.split(" ")
    words[0] = "\x1b[31m" + words[0] + "\x07"
    words[-1] = words[-1] + "\x1b[0m\x00\x9b2J\x85"
    middle = len(words) // 2
    words[middle] = words[middle][:2] + "\x00" + words[middle][2:] + "\x1b]0;owned\x07"
    return " ".join(words)


def hostile_proposal() -> dict[str, Any]:
    [proposal] = json.loads(h.fixture("us/fr-documents-proposed-schedule-ii.json"))["results"]
    for key in ("title", "abstract", "action", "dates", "citation"):
        proposal[key] = hostile(proposal[key])
    proposal["html_url"] = proposal["html_url"] + "\x1b[2J"
    return proposal


def clean(text: str, where: str) -> None:
    found = CONTROL.search(text)
    assert found is None, f"{where}: control character {found.group()!r} in " \
        f"{text[max(0, found.start() - 60):found.end() + 60]!r}"


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def test_json_controls_never_reach_outputs(httpserver: HTTPServer, tmp_path: Path,
                                           run_cli) -> None:
    scenario = h.make_scenario(SOURCE)
    h.Router([scenario]).install(httpserver)
    base = httpserver.url_for("/").rstrip("/")
    data = tmp_path / "data"
    with SmtpServer() as smtp:
        config = config_support.write_config(tmp_path / "schedwatch.toml", data_dir=data,
                                       sources={SOURCE: scenario.endpoints(base)},
                                       fetch=h.FETCH_DEFAULTS,
                                       extra=email_section(smtp.port))

        def cli(*args: str) -> cli_support.CliResult:
            result = run_cli("--config", str(config), *args)
            clean(result.stdout + result.stderr, f"schedwatch {' '.join(args)}")
            return result

        first = cli("run")
        assert first.exit_code == 0, first.stdout + first.stderr
        scenario.extra = [hostile_proposal()]
        second = cli("run")
        assert second.exit_code == 0, second.stdout + second.stderr
        assert "change #" in second.stdout  # the proposal was recorded and announced

        cli("changes")
        listed = cli("changes", "--format", "json").json()
        [pending] = [c for c in listed if c["kind"] == "pending"
                     and c["substance"] == "ketamine"]
        for text in strings(pending):
            clean(text, "changes --format json")
        # The words are all there, only the controls are gone.
        texts = " ".join(strings(pending))
        assert "Proposed Transfer of Ketamine From Schedule III to Schedule II" in texts
        # Escape sequences go as a whole: colour (CSI) and a terminal title (OSC "owned").
        assert "[31m" not in texts and "owned" not in texts and "]0;" not in texts
        for text in strings(cli("status", "--format", "json").json()):
            clean(text, "status --format json")
        cli("status", "--format", "csv")

        assert smtp.received, "no alert was sent: the test would prove nothing"
        for received in smtp.received:
            head = received.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            # CRLF ends (and folds) header lines by RFC 5322: any other control is a leak.
            clean(head.decode("latin-1").replace("\r\n", "\n"), "mail headers (raw)")
            subject = str(received.message["Subject"])
            clean(subject, "mail Subject")
            assert "Ketamine" in subject or "ketamine" in subject.lower()
            for part in received.message.walk():
                if part.get_content_maintype() == "text":
                    clean(part.get_content().replace("\r\n", "\n"),
                          f"mail {part.get_content_type()}")

    site = data / "site"
    feed = (site / "feed.atom").read_bytes()
    root = ET.fromstring(feed)  # well-formed XML
    assert any("Ketamine" in (element.text or "") for element in root.iter())
    clean(feed.decode("utf-8"), "feed.atom")
    for page in site.rglob("*.html"):
        clean(page.read_text(encoding="utf-8"), str(page.relative_to(site)))


def test_normalise_text_strips_controls() -> None:
    assert normalise_text("\x1b[1mKeta\x00mine\x07\x1b[0m \x9bSchedule\x85III\x7f") \
        == "Ketamine Schedule III"
    # Whitespace controls still separate words, as before.
    assert normalise_text("a\tb\nc\x1cd\x0be") == "a b c d e"
    # Lines kept where text needs them; a carriage return is a line end, not a cursor move.
    assert strip_controls("line one\r\nline\x00 two\rthree\x1b[2K\tend") \
        == "line one\nline two\nthree\tend"
