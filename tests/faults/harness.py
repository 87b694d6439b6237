"""The fault matrix's harness: one *scenario* per source (how to serve it healthy, where its
document and its first API request are, how to make a structure-changed variant and a second
version), a *router* that serves every scenario on one pytest-httpserver and on a small
threaded raw-socket server, the *faults* injected into it, and a configuration writer with
every [fetch] knob.

Everything listens on 127.0.0.1 only. Nothing here touches the internet: the DNS fault uses a
name under the reserved ``.invalid`` TLD, which never resolves.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import io
import json
import re
import select
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from werkzeug import Request, Response

from tests.support import config as config_support
from tests.support.documents import FIXTURES

# --- configuration --------------------------------------------------------------------------

#: Fast and bounded: every row of the matrix must finish in a few seconds.
FETCH_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 0.5, "read_timeout": 0.5, "max_retries": 1, "backoff": 0,
    "max_wait": 2, "request_interval": 0,
}
RECIPIENT = "officer@example.org"
#: A closed port: alerts stay queued in the outbox, where the tests read them.
EMAIL = ('[email]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\ntimeout = 2\n'
         f'[[email.recipients]]\naddress = "{RECIPIENT}"\n')


def write_config(path: Path, *, data_dir: Path, sources: Mapping[str, Mapping[str, Any]],
                 fetch: Mapping[str, Any] | None = None, email: bool = True) -> Path:
    """tests.support.config.write_config with [fetch] = FETCH_DEFAULTS updated with ``fetch``, and
    an [email] section whose SMTP server is closed."""
    return config_support.write_config(path, data_dir=data_dir, sources=sources,
                                 fetch={**FETCH_DEFAULTS, **(fetch or {})},
                                 extra=EMAIL if email else "")


# --- replies ----------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One request as the router saw it."""

    at: float  # time.monotonic()
    path: str
    status: int | str  # an HTTP status, or the raw fault's name
    server: str  # "http" (pytest-httpserver) or "raw"


def xml(body: bytes) -> Reply:
    return Reply(200, body, {"Content-Type": "application/xml"})


def json_reply(body: bytes | str | Any, content_type: str = "application/json") -> Reply:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return Reply(200, body.encode() if isinstance(body, str) else body,
                 {"Content-Type": content_type})


def with_etag(reply: Reply, headers: Mapping[str, str]) -> Reply:
    """ETag = a digest of the body; 304 when the client already has it (as Justice Laws'
    servers do)."""
    etag = '"' + hashlib.sha256(reply.body).hexdigest()[:16] + '"'
    if headers.get("If-None-Match") == etag:
        return Reply(304, b"", {"ETag": etag})
    return Reply(reply.status, reply.body, {**reply.headers, "ETag": etag})


# --- scenarios --------------------------------------------------------------------------------

def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def reencode_xml(content: bytes, encoding: str) -> bytes:
    """The same XML document in another encoding, with a matching XML declaration
    (characters the encoding lacks become character references, which parse the same)."""
    text = content.decode("utf-8-sig")
    text, count = re.subn(r'^<\?xml([^>]*?)encoding=["\'][^"\']+["\']',
                          rf'<?xml\1encoding="{encoding}"', text, count=1)
    assert count == 1, "no encoding in the XML declaration"
    if encoding.lower().startswith("utf-16"):
        return text.encode("utf-16")  # with a byte-order mark
    return text.encode(encoding, errors="xmlcharrefreplace")


def utf16_json(content: bytes) -> bytes:
    return content.decode("utf-8").encode("utf-16")


HTML_MAINTENANCE = (b"<!DOCTYPE html>\n<html><head><title>Scheduled maintenance</title></head>"
                    b"<body><h1>We'll be back soon</h1><p>This site is undergoing scheduled "
                    b"maintenance.</p></body></html>\n")
HTML_LOGIN = (b"<!doctype html><html><head><title>Sign in</title></head><body><form "
              b"method=post action=/login><input name=user><input type=password name=pw>"
              b"</form></body></html>")


def other_docx() -> bytes:
    """A valid Word document that is not a Poisons Standard (meeting minutes)."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f'<w:p><w:r><w:t>{text}</w:t></w:r></w:p>' for text in (
        "Minutes of the Advisory Committee on Medicines Scheduling",
        "Item 1. Apologies.", "Item 2. Ketamine: no change recommended."))
    document = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
                f'xmlns:w="{w}"><w:body>{body}</w:body></w:document>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://'
                         'schemas.openxmlformats.org/package/2006/content-types"/>')
        package.writestr("word/document.xml", document)
    return out.getvalue()


class Scenario:
    """How one source is served healthy, and its variants. Subclasses fill in the paths."""

    source_id: str
    #: Endpoint name → URL suffix after the server's base URL.
    suffixes: Mapping[str, str]
    #: Per target ("doc", "api"): the path a fault is injected at is ``fault_path(target)``;
    #: the endpoint to point at a raw-socket server / an unreachable address for that target
    #: (None: the target's host cannot be changed alone, e.g. the eCFR ``full`` URL is built
    #: from the API base).
    raw_endpoint: Mapping[str, str]
    conn_endpoint: Mapping[str, str | None]
    #: A "document" whose fetch depends on a freshness marker (eCFR, AU): to reach the
    #: document request again after a healthy run, the API must announce a new version.
    marker_based = False
    #: "xml", "json" or "docx": decides the content variants.
    doc_format = "xml"
    api_format: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        return ("doc", "api") if self.api_format else ("doc",)

    def endpoints(self, base: str, overrides: Mapping[str, str] | None = None
                  ) -> dict[str, str]:
        """The [sources.<id>] table: every endpoint on ``base`` unless overridden (endpoint
        name → another base URL)."""
        overrides = overrides or {}
        return {name: overrides.get(name, base) + suffix
                for name, suffix in self.suffixes.items()}

    def route(self, path: str, args: Mapping[str, list[str]],
              headers: Mapping[str, str]) -> Reply | None:
        raise NotImplementedError

    def fault_path(self, target: str) -> str:
        raise NotImplementedError

    def bump(self) -> None:
        """Announce a new version with the same content, so that the document is fetched
        again (a no-op for sources fetched on every run)."""

    # content variants, per target
    def different(self, target: str) -> bytes:
        raise NotImplementedError

    def malformed(self, target: str) -> bytes:
        raise NotImplementedError

    def structure_changed(self, target: str, body: bytes) -> bytes:
        """The healthy answer ``body`` with its structure changed (renamed, moved)."""
        raise NotImplementedError

    def reencoded(self, target: str, encoding: str) -> Callable[[bytes], bytes] | None:
        """The healthy answer re-encoded, or None when that means nothing for the format."""
        fmt = self.doc_format if target == "doc" else self.api_format
        if fmt == "xml":
            return lambda body: reencode_xml(body, encoding)
        if fmt == "json" and encoding == "utf-16":
            return utf16_json
        return None

    def second_version(self, second: bool) -> None:
        """Serve the first (False) or the second (True) version of the status."""
        raise NotImplementedError


KETAMINE_EN = "Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone)"


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


class CanadaScenario(Scenario):
    """ca-cdsa / ca-csr: one conditional GET of a Justice Laws XML file (ETag, 304)."""

    raw_endpoint = {"doc": "url"}
    conn_endpoint = {"doc": "url"}

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        cdsa, csr = fixture("ca/cdsa-mini.xml"), fixture("ca/csr-mini.xml")
        if source_id == "ca-cdsa":
            self.path, self.original, self.other = "/eng/XML/C-38.8.xml", cdsa, csr
        else:
            self.path, self.original, self.other = "/eng/XML/SOR-2025-242.xml", csr, cdsa
        self.suffixes = {"url": self.path}
        self.document = self.original

    def route(self, path, args, headers):
        if path == self.path:
            return with_etag(xml(self.document), headers)
        return None

    def fault_path(self, target):
        return self.path


    def different(self, target):
        return self.other  # the other instrument: a regulation for the act, and back

    def malformed(self, target):
        return self.original[: len(self.original) // 2]

    def structure_changed(self, target, body):
        # The schedules renamed ("SCHEDULE I" → "LIST I", "SCHEDULE 1" → "LIST 1").
        return re.sub(rb"<Label>SCHEDULE ", b"<Label>LIST ", body)

    def second_version(self, second):
        if not second:
            self.document = self.original
            return
        text = self.original.decode()
        if self.source_id == "ca-cdsa":  # ketamine moved from Schedule I to Schedule III
            text = _replace_once(text, f"<Label>(1)</Label><Text>{KETAMINE_EN}</Text>",
                                 "<Label>(1)</Label><Text>Rolicyclidine (1-(1-phenylcyclohexyl)"
                                 "pyrrolidine)</Text>")
            text = _replace_once(text, "and any salt thereof</Text></Item>",
                                 "and any salt thereof</Text></Item>"
                                 f"<Item><Label>4</Label><Text>{KETAMINE_EN}</Text></Item>")
        else:  # ketamine's entry deleted from Schedule 1, and item 14 no longer reaching
            # analogues (while it does, ketamine stays controlled under it: issue 13)
            text = _replace_once(text, f"<Item><Label>(1)</Label><Text>{KETAMINE_EN}</Text>"
                                 "</Item>", "")
            text = _replace_once(text, "its salts, derivatives and analogues and salts of "
                                 "derivatives and analogues, including", "its salts, including")
        self.document = text.encode()


ECFR_TITLES = "/api/versioner/v1/titles.json"
ECFR_VERSIONS = "/api/versioner/v1/versions/title-21.json"
ECFR_BULK = "/bulkdata/ECFR/title-21/ECFR-title21.xml"
KETAMINE_ROWS = ('<TR><TD align="left" class="gpotbl_cell" scope="row">(7) Ketamine, its salts, '
                 'isomers, and salts of isomers</TD><TD align="right" class="gpotbl_cell">7285'
                 '</TD></TR>\n<TR><TD align="left" class="gpotbl_cell" scope="row">[Some other '
                 'names for ketamine: (±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]</TD>'
                 '<TD align="right" class="gpotbl_cell"/></TR>\n')


class EcfrScenario(Scenario):
    """us-ecfr-1308: titles.json (freshness marker) → full/{date}/title-21.xml?part=1308 →
    versions. The document is re-fetched only when title 21's ``up_to_date_as_of`` moves."""

    source_id = "us-ecfr-1308"
    suffixes = {"url": "", "bulk_url": ECFR_BULK}
    raw_endpoint = {"doc": "url", "api": "url"}
    conn_endpoint = {"doc": None, "api": "url"}  # the full URL is built from the API base
    marker_based = True
    api_format = "json"

    def __init__(self) -> None:
        self.original = fixture("us/ecfr-part1308.xml")
        self.titles = json.loads(fixture("us/ecfr-titles.json"))
        self.as_of = "2026-06-10"
        self.parts = {self.as_of: self.original}

    def titles_json(self) -> bytes:
        titles = json.loads(json.dumps(self.titles))
        for title in titles["titles"]:
            if title["number"] == 21:
                title["up_to_date_as_of"] = self.as_of
        return json.dumps(titles, indent=2).encode()

    def route(self, path, args, headers):
        if path == ECFR_TITLES:
            return json_reply(self.titles_json())
        if path == ECFR_VERSIONS:
            return json_reply(fixture("us/ecfr-versions-1308.json"))
        match = re.fullmatch(r"/api/versioner/v1/full/(\d{4}-\d{2}-\d{2})/title-21\.xml", path)
        if match and match.group(1) in self.parts:
            return xml(self.parts[match.group(1)])
        return None

    def fault_path(self, target):
        return ECFR_TITLES if target == "api" else \
            f"/api/versioner/v1/full/{self.as_of}/title-21.xml"

    def bump(self):
        content = self.parts[self.as_of]
        day = datetime.strptime(self.as_of, "%Y-%m-%d") + timedelta(days=1)
        self.as_of = day.strftime("%Y-%m-%d")
        self.parts[self.as_of] = content


    def different(self, target):
        if target == "api":  # another API's JSON: a Federal Register answer
            return fixture("us/fr-documents-page1.json")
        # Another part of the CFR (Part 1310, List I chemicals) in the same XML format.
        text = self.original.decode()
        text = text.replace('<DIV5 N="1308"', '<DIV5 N="1310"', 1)
        return text.replace("PART 1308—SCHEDULES OF CONTROLLED SUBSTANCES",
                            "PART 1310—RECORDS AND REPORTS OF LISTED CHEMICALS", 1).encode()

    def malformed(self, target):
        if target == "api":
            return b'{"titles": [{"number": 21, "up_to_date_as_of": "2026-06-1'
        return self.original[: len(self.original) // 2]

    def structure_changed(self, target, body):
        if target == "api":  # the list moved under another key
            return json.dumps({"data": json.loads(body)["titles"]}).encode()
        # The sections re-tagged (DIV8 → DIV9): the schedules are no longer where they were.
        return re.sub(rb"<(/?)DIV8\b", rb"<\1DIV9", body)

    def second_version(self, second):
        # A load-balanced API alternating between two consolidations: each announces its
        # own date, so each switch is a new document to fetch.
        self.as_of = "2026-06-11" if second else "2026-06-10"
        if second:
            text = _replace_once(self.original.decode(), KETAMINE_ROWS, "")
            anchor = ('<TR><TD align="left" class="gpotbl_cell" scope="row">(5) Secobarbital'
                      '</TD><TD align="right" class="gpotbl_cell">2315</TD></TR>\n')
            text = _replace_once(text, anchor,
                                 anchor + KETAMINE_ROWS.replace("(7) Ketamine", "(6) Ketamine"))
            self.parts[self.as_of] = text.encode()
        else:
            self.parts[self.as_of] = self.original


FR_DOCUMENTS = "/api/v1/documents.json"


def _fr_results(name: str) -> list[dict[str, Any]]:
    return json.loads(fixture(f"us/{name}"))["results"]


class FederalRegisterScenario(Scenario):
    """us-federal-register: documents.json, two queries, page 2 through next_page_url,
    merged into one canonical document (its sha256 is the marker, so every run fetches)."""

    source_id = "us-federal-register"
    suffixes = {"url": ""}
    raw_endpoint = {"doc": "url"}
    conn_endpoint = {"doc": "url"}
    doc_format = "json"

    def __init__(self) -> None:
        self.pages = {"page1": fixture("us/fr-documents-page1.json"),
                      "page2": fixture("us/fr-documents-page2.json"),
                      "term": fixture("us/fr-documents-ketamine.json")}
        self.extra: list[dict[str, Any]] = []  # results added to page 2 (a new document)

    def page2(self) -> bytes:
        if not self.extra:
            return self.pages["page2"]
        page = json.loads(self.pages["page2"])
        page["results"] = page["results"] + self.extra
        return json.dumps(page).encode()

    def route(self, path, args, headers):
        if path not in (FR_DOCUMENTS, "/api/v1/documents"):  # next_page_url: no .json
            return None
        if args.get("conditions[term]") == ["ketamine"] and "conditions[cfr][part]" not in args:
            return json_reply(self.pages["term"])
        if args.get("conditions[cfr][part]") == ["1308"]:
            return json_reply(self.page2() if args.get("page") == ["2"] else self.pages["page1"])
        return Reply(400, b"unexpected query", {"Content-Type": "text/plain"})

    def fault_path(self, target):
        return FR_DOCUMENTS


    def different(self, target):
        return fixture("us/ecfr-titles.json")  # another API's JSON

    def malformed(self, target):
        return self.pages["page1"][:200]

    def structure_changed(self, target, body):
        # The API renamed its fields ("type" → "document_type", "title" → "document_title"):
        # still JSON, still a "results" list with document numbers and dates (every page).
        page = json.loads(body)
        for result in page.get("results", []):
            result["document_type"] = result.pop("type", None)
            result["document_title"] = result.pop("title", None)
        return json.dumps(page).encode()

    def second_version(self, second):
        # A final rule in effect since 2025 moving ketamine to Schedule II (HYPOTHETICAL,
        # made from the fixture of the 2031 one): appears, disappears, appears …
        self.extra = [final_rule_in_effect()] if second else []

    def pending_version(self, second: bool) -> None:
        # The HYPOTHETICAL 2031 proposal to move ketamine to Schedule II: appears, disappears.
        self.extra = _fr_results("fr-documents-proposed-schedule-ii.json") if second else []


def final_rule_in_effect() -> dict[str, Any]:
    rule = dict(_fr_results("fr-documents-final-future.json")[0])
    rule.update({"document_number": "2025-19876", "citation": "90 FR 54321",
                 "publication_date": "2025-09-01", "effective_on": "2025-10-01",
                 "dates": "Effective October 1, 2025.",
                 "html_url": "https://www.federalregister.gov/documents/2025/09/01/2025-19876/"
                             "transfer-of-ketamine-from-schedule-iii-to-schedule-ii",
                 "pdf_url": None, "full_text_xml_url": None})
    return rule


AU_TITLES = "/v1/titles"
AU_VERSIONS = "/v1/versions"
AU_TITLE = "F2026L00633"


class PoisonsStandardScenario(Scenario):
    """au-poisons-standard: OData titles → versions → the Word original of the current
    version. The Word file is downloaded only when the (id, commencement) marker moves."""

    source_id = "au-poisons-standard"
    suffixes = {"url": "/v1", "register_url": ""}
    raw_endpoint = {"doc": "register_url", "api": "url"}
    conn_endpoint = {"doc": "register_url", "api": "url"}
    marker_based = True
    doc_format = "docx"
    api_format = "json"

    def __init__(self) -> None:
        self.original = fixture("au/poisons-standard-june-2026.docx")
        self.versions = json.loads(fixture("au/api-versions.json"))["value"]
        self.words = {self.word_path(self.versions[-1]): self.original}

    @staticmethod
    def word_path(version: Mapping[str, Any]) -> str:
        if version["registerId"] == AU_TITLE:
            return f"/{AU_TITLE}/asmade/2026-05-28/text/original/word"
        return f"/{AU_TITLE}/{version['start'][:10]}/{version['start'][:10]}/text/original/word"

    def route(self, path, args, headers):
        if path == AU_TITLES:
            return json_reply(fixture("au/api-titles.json"),
                              "application/json; odata.metadata=minimal")
        if path == AU_VERSIONS:
            return json_reply({"@odata.context": "https://api.prod.legislation.gov.au/v1/"
                               "$metadata#Versions", "value": list(reversed(self.versions))},
                              "application/json; odata.metadata=minimal")
        if path in self.words:
            return Reply(200, self.words[path],
                         {"Content-Type": "application/vnd.openxmlformats-officedocument."
                                          "wordprocessingml.document"})
        return None

    def fault_path(self, target):
        return AU_TITLES if target == "api" else self.word_path(self.versions[-1])

    def compilation(self, number: int) -> dict[str, Any]:
        start = datetime(2026, 8, 14) + timedelta(days=number)
        return {"titleId": AU_TITLE, "start": start.strftime("%Y-%m-%dT00:00:00"),
                "retrospectiveStart": start.strftime("%Y-%m-%dT00:00:00"), "end": None,
                "isLatest": True, "isCurrent": True, "status": "InForce",
                "registerId": f"F2026C{800 + number:05d}", "compilationNumber": str(number),
                "registeredAt": (start + timedelta(days=5)).strftime("%Y-%m-%dT01:00:00Z"),
                "hasUnincorporatedAmendments": False, "reasons": []}

    def bump(self):
        content = self.words[self.word_path(self.versions[-1])]
        self.versions = [*self.versions, self.compilation(len(self.versions))]
        self.words[self.word_path(self.versions[-1])] = content

    def different(self, target):
        return fixture("us/ecfr-titles.json") if target == "api" else other_docx()

    def malformed(self, target):
        if target == "api":
            return fixture("au/api-titles.json")[:150]
        return self.original[: len(self.original) // 2]  # a zip cut in half

    def structure_changed(self, target, body):
        if target == "api":  # the OData rows moved under another key
            payload = json.loads(body)
            return json.dumps({"@odata.context": payload["@odata.context"],
                               "items": payload["value"]}).encode()
        # Paragraph styles gone: schedule headings and entries no longer recognisable.
        return fixture("au/poisons-standard-no-styles.docx")

    def fields_renamed(self) -> bytes:
        """The titles' status fields renamed (status → state, isInForce → inForce)."""
        payload = json.loads(fixture("au/api-titles.json"))
        for title in payload["value"]:
            title["state"] = title.pop("status")
            title["inForce"] = title.pop("isInForce")
        return json.dumps(payload).encode()

    def second_version(self, second):
        # The register alternating between the as-made text (KETAMINE in Schedule 8) and a
        # compilation with KETAMINE in Schedule 9.
        base = json.loads(fixture("au/api-versions.json"))["value"]
        if second:
            self.versions = [*base, self.compilation(1)]
            self.words[self.word_path(self.versions[-1])] = \
                fixture("au/poisons-standard-ketamine-s9.docx")
        else:
            self.versions = base


def make_scenario(source_id: str) -> Scenario:
    if source_id in ("ca-cdsa", "ca-csr"):
        return CanadaScenario(source_id)
    return {"us-ecfr-1308": EcfrScenario, "us-federal-register": FederalRegisterScenario,
            "au-poisons-standard": PoisonsStandardScenario}[source_id]()


SOURCE_IDS = ("ca-cdsa", "ca-csr", "us-ecfr-1308", "us-federal-register", "au-poisons-standard")


def companion_of(source_id: str) -> str:
    """The OTHER source served healthy in the same run."""
    return "ca-csr" if source_id == "ca-cdsa" else "ca-cdsa"


# --- faults ---------------------------------------------------------------------------------

@dataclass
class Ask:
    """A request at the faulty path, as a fault sees it."""

    path: str
    args: Mapping[str, list[str]]
    query: str
    healthy: Callable[[], Reply]  # what the healthy source would answer (unconditionally)


@dataclass
class Fault:
    """What the router answers at the faulty path instead of the healthy reply: ``reply``
    for an HTTP-level fault (either server), ``raw`` writes to the socket itself (raw-socket
    server only)."""

    name: str
    reply: Callable[[Ask], Reply] | None = None
    raw: Callable[[socket.socket, RawContext], None] | None = None


@dataclass
class RawContext:
    path: str
    query: str
    stop: threading.Event
    sent: list[int]  # body bytes written, one entry per request (the raw fault appends)


def fixed(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
          name: str | None = None) -> Fault:
    return Fault(name or f"http_{status}", reply=lambda _ask: Reply(status, body,
                                                                    dict(headers or {})))


def body_fault(name: str, body: bytes, content_type: str) -> Fault:
    return fixed(200, body, {"Content-Type": content_type}, name=name)


def transformed(name: str, change: Callable[[bytes], bytes],
                content_type: str | None = None) -> Fault:
    """The healthy answer to the same request (same query, same page), changed."""
    def reply(ask: Ask) -> Reply:
        healthy = ask.healthy()
        headers = {k: v for k, v in healthy.headers.items() if k != "ETag"}
        if content_type:
            headers["Content-Type"] = content_type
        return Reply(healthy.status, change(healthy.body), headers)
    return Fault(name, reply=reply)


def redirect(status: int) -> Fault:
    """Moved: ``Location`` is the same path under /moved (with the same query string)."""
    def reply(ask: Ask) -> Reply:
        return Reply(status, b"", {"Location": MOVED + ask.path
                                   + (f"?{ask.query}" if ask.query else "")})
    return Fault(f"redirect_{status}", reply=reply)


def redirect_loop() -> Fault:
    def reply(ask: Ask) -> Reply:
        return Reply(302, b"", {"Location": ask.path + (f"?{ask.query}" if ask.query else "")})
    return Fault("redirect_loop", reply=reply)


def retry_after(status: int, value: str | Callable[[], str], *,
                times: int | None = None) -> Fault:
    """``status`` with ``Retry-After``; after ``times`` such answers (None: never) the
    healthy answer."""
    count = [0]

    def reply(ask: Ask) -> Reply:
        count[0] += 1
        if times is not None and count[0] > times:
            return ask.healthy()
        header = value() if callable(value) else value
        return Reply(status, b"busy, try later", {"Retry-After": header,
                                                   "Content-Type": "text/plain"})
    return Fault(f"retry_after_{status}", reply=reply)


def http_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now),
                                       usegmt=True)


# raw faults: played by RawServer only

def raw_hang(sock: socket.socket, ctx: RawContext) -> None:
    """Accept, read the request, never answer (until the server stops)."""
    ctx.stop.wait(30)


def raw_cut_chunked(sock: socket.socket, ctx: RawContext) -> None:
    """A chunked body cut off mid-chunk, then the connection closed."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    body = b"<?xml version='1.0'?><Statute>" + b"x" * 4000
    sock.sendall(head + f"{len(body) * 2:x}\r\n".encode() + body)
    ctx.sent.append(len(body))


def raw_short_content_length(sock: socket.socket, ctx: RawContext) -> None:
    """Content-Length: 100000 and 5000 bytes of body, then the connection closed."""
    body = b"<?xml version='1.0'?><Statute>" + b"x" * 5000
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000"
                 b"\r\nConnection: close\r\n\r\n" + body)
    ctx.sent.append(len(body))


def raw_stall_mid_body(sock: socket.socket, ctx: RawContext) -> None:
    """Headers and part of the body, then silence with the connection open."""
    body = b"<?xml version='1.0'?><Statute>" + b"x" * 5000
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000"
                 b"\r\n\r\n" + body)
    ctx.sent.append(len(body))
    ctx.stop.wait(30)


#: The streamed huge body: up to this many bytes, chunked, no Content-Length.
STREAM_TOTAL = 48 * 1024 * 1024


def raw_stream_huge(sock: socket.socket, ctx: RawContext) -> None:
    """A chunked body of STREAM_TOTAL bytes with no Content-Length; counts what the client
    took before hanging up."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunk = b"A" * (64 * 1024)
    sent = 0
    try:
        while sent < STREAM_TOTAL and not ctx.stop.is_set():
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    ctx.sent.append(sent)


# --- the router -------------------------------------------------------------------------------

MOVED = "/moved"


class Router:
    """Every scenario's paths on one server; faults by path; a log of what was asked."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self.scenarios = scenarios
        self.faults: dict[str, Fault] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()

    def healthy_reply(self, path: str, args: Mapping[str, list[str]],
                      headers: Mapping[str, str]) -> Reply:
        if path.startswith(MOVED + "/"):
            path = path[len(MOVED):]
        for scenario in self.scenarios:
            reply = scenario.route(path, args, headers)
            if reply is not None:
                return reply
        if path == "/robots.txt":
            return Reply(404, b"", {"Content-Type": "text/plain"})
        return Reply(404, b"no such path in the fault harness", {"Content-Type": "text/plain"})

    def answer(self, path: str, query: str, headers: Mapping[str, str],
               server: str) -> Reply | Fault:
        args = parse_qs(query, keep_blank_values=True)
        fault = self.faults.get(path)
        if fault is not None and fault.raw is not None:
            self.log(path, fault.name, server)
            return fault
        if fault is not None and fault.reply is not None:
            reply = fault.reply(Ask(path, args, query,
                                    lambda: self.healthy_reply(path, args, {})))
        else:
            reply = self.healthy_reply(path, args, headers)
        self.log(path, reply.status, server)
        return reply

    def log(self, path: str, status: int | str, server: str) -> None:
        with self.lock:
            self.hits.append(Hit(time.monotonic(), path, status, server))

    def requests_to(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]

    def werkzeug_handler(self, request: Request) -> Response:
        answer = self.answer(request.path, request.query_string.decode(),
                             dict(request.headers.items()), "http")
        if isinstance(answer, Fault):  # a raw fault cannot be played by pytest-httpserver
            return Response(b"raw fault on the HTTP server", status=599)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    def install(self, httpserver: Any) -> None:
        httpserver.expect_request(re.compile(r"^/.*$")).respond_with_handler(
            self.werkzeug_handler)


# --- the raw-socket server --------------------------------------------------------------------

class RawServer:
    """A threaded HTTP/1.1 server on raw sockets, one thread per connection: the router's
    healthy replies and HTTP faults, plus the faults only a raw socket can play (hang, cut
    off, short body, endless body). ``Connection: close`` on every reply."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.stop = threading.Event()
        self.sent: list[int] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            _method, target, _version = head[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
            path, _, query = target.partition("?")
            answer = self.router.answer(path, query, headers, "raw")
            try:
                if isinstance(answer, Fault):
                    assert answer.raw is not None
                    answer.raw(conn, RawContext(path, query, self.stop, self.sent))
                    return
                lines = [f"HTTP/1.1 {answer.status} X",
                         *(f"{k}: {v}" for k, v in answer.headers.items()),
                         f"Content-Length: {len(answer.body)}", "Connection: close", "", ""]
                conn.sendall("\r\n".join(lines).encode("latin-1") + answer.body)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.acceptor.join(2)
        for thread in self.threads:
            thread.join(2)


# --- unreachable addresses --------------------------------------------------------------------

DNS_FAILURE_HOST = "schedwatch-fault.invalid"  # RFC 2606: .invalid never resolves
DNS_FAILURE_BASE = f"http://{DNS_FAILURE_HOST}"


def dns_failure_problem(limit: float = 2.0) -> str | None:
    """Why the DNS fault cannot be played on this machine (None: it can): the name must fail
    to resolve, and fast (a resolver that hijacks NXDOMAIN, or no DNS answer at all, would
    turn the row into something else)."""
    started = time.monotonic()
    try:
        socket.getaddrinfo(DNS_FAILURE_HOST, 80)
    except socket.gaierror:
        elapsed = time.monotonic() - started
        return None if elapsed < limit else f"{DNS_FAILURE_HOST} took {elapsed:.1f} s to fail"
    return f"{DNS_FAILURE_HOST} resolves on this machine (a hijacking resolver?)"


@contextlib.contextmanager
def refused_base() -> Iterator[str]:
    """A loopback port bound but not listening: every connection is refused (and nobody
    else can take the port while the test holds it)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"
    finally:
        holder.close()


@contextlib.contextmanager
def unanswered_syn_base() -> Iterator[str]:
    """A loopback listener whose accept queue is full and never drained: further SYNs get no
    answer, so a connect times out (loopback only: never an outside address)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(32):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                break  # this SYN went unanswered: the queue is full
        else:
            raise RuntimeError("could not fill the accept queue of a loopback listener")
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
