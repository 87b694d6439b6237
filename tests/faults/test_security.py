"""Security: scraped content is data, never markup, template or path; secrets never leave
the process; TLS certificates are verified unless explicitly switched off (and then every
run says so); a configuration file holding a password must be private."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.faults.crash_helpers import (
    CDSA_PATH,
    CSR_PATH,
    ca_config,
    canada_docs,
    run_child,
    tree,
)
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import KETAMINE_ITEM, insert_into_schedule, without_item
from tests.support.served import DocServer
from tests.support.smtp import SmtpServer, email_section

# --- scraped content is untrusted ---------------------------------------------------------------

#: Each hostile piece between markers (zq1 … zq7), so a piece can be found in any output.
PAYLOAD = ('zq1 <script>alert(1)</script> zq2 "><img src=x onerror=alert(1)> zq3 {{ 7*7 }} '
           'zq4 {% raw %} zq5 &amp; zq6 ../../etc/passwd zq7')
HOSTILE_CONTENT_TYPE = 'application/xml; name="../../etc/passwd<script>alert(1)</script>"'


def payload_document(cdsa: bytes) -> bytes:
    """The CDSA with ketamine moved to Schedule III, under a new parent item: both the
    parent's Text and ketamine's Text carry the payload (XML-escaped in the document, so the
    parser reads it as text, exactly as a hostile or broken source could serve it)."""
    text = html.escape(PAYLOAD, quote=False)
    item = (f"<Item><Label>99</Label><Text>Arylcyclohexylamines {text}, including:</Text>"
            f"<List><Item><Label>(1)</Label><Text>{KETAMINE_ITEM} {text}</Text></Item></List>"
            "</Item>")
    return insert_into_schedule(without_item(cdsa, "Ketamine"), "SCHEDULE III", item)


@dataclass
class Markup:
    """What an HTML document contains: elements with their attributes, script bodies, text."""

    elements: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    text: str = ""


def parse_html(source: str) -> Markup:
    found = Markup()
    chunks: list[str] = []

    class Collector(HTMLParser):
        in_script = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.elements.append((tag, attrs))
            if tag == "script":
                self.in_script = True
                found.scripts.append("")

        def handle_endtag(self, tag: str) -> None:
            if tag == "script":
                self.in_script = False

        def handle_data(self, data: str) -> None:
            if self.in_script:
                found.scripts[-1] += data
            else:
                chunks.append(data)

    collector = Collector(convert_charrefs=True)
    collector.feed(source)
    collector.close()
    found.text = " ".join(" ".join(chunks).split())
    return found


def assert_inert_html(source: str, where: str) -> Markup:
    """No element, attribute or script made from the payload; the template syntax is not
    evaluated."""
    markup = parse_html(source)
    for tag, attrs in markup.elements:
        for name, value in attrs:
            assert not (name.startswith("on") and "alert" in (value or "")), (where, tag, name)
            if name in ("href", "src", "action", "formaction"):
                assert not (value or "").strip().lower().startswith("javascript:"), (where, tag)
        if tag == "img":
            assert dict(attrs).get("src") != "x", (where, attrs)
    for script in markup.scripts:
        assert "alert(1)" not in script and "zq" not in script, (where, script[:200])
    assert "<script>alert(1)</script>" not in source, where
    assert not re.search(r"<img\s+src=x", source, re.IGNORECASE), where
    assert not re.search(r"zq3\W*49\W*zq4", markup.text), where
    return markup


@dataclass
class PayloadRun:
    data_dir: Path
    root: Path
    cwd: Path
    smtp: SmtpServer
    outputs: list[subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def payload_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PayloadRun]:
    """Baseline, then the payload document (with a hostile Content-Type and Last-Modified)
    so that a change is recorded, the site published and an alert delivered. The CLI runs
    as a child process whose working folder is an empty folder of its own: a relative path
    made from scraped text would land there."""
    docs = canada_docs()
    root = tmp_path_factory.mktemp("payload")
    cwd = root / "cwd"
    cwd.mkdir()
    with DocServer() as server, SmtpServer() as smtp:
        config = ca_config(root / "schedwatch.toml", root / "data", server,
                           extra=email_section(smtp.port))
        server.set(CDSA_PATH, docs.cdsa)
        server.set(CSR_PATH, docs.csr)
        outputs = [run_child(config, "run", "-j", "ca", cwd=cwd)]
        assert outputs[0].returncode == 0, outputs[0].stdout + outputs[0].stderr
        server.set(CDSA_PATH, payload_document(docs.cdsa), content_type=HOSTILE_CONTENT_TYPE,
                   headers={"Last-Modified": PAYLOAD})
        outputs.append(run_child(config, "run", "-j", "ca", cwd=cwd))
        assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr
        outputs.append(run_child(config, "changes", "--format", "json", cwd=cwd))
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        yield PayloadRun(root / "data", root, cwd, smtp, outputs)


def test_scraped_payload_is_recorded_as_text(payload_run: PayloadRun) -> None:
    rows = json.loads(payload_run.outputs[-1].stdout)
    ketamine = [c for c in rows if c["substance"] == "ketamine"]
    assert [c["kind"] for c in ketamine] == ["rescheduled"]
    assert PAYLOAD in ketamine[0]["after"]["listed_as"]  # stored exactly, as evidence
    assert PAYLOAD in (ketamine[0]["after"].get("parent_entry") or "")
    assert "change #" in payload_run.outputs[1].stdout


def test_site_shows_the_payload_only_escaped(payload_run: PayloadRun) -> None:
    site = payload_run.data_dir / "site"
    assert (site / "index.html").is_file()
    seen = {"html": False, "atom": False, "csv": False, "json": False}
    literal_script = literal_template = False
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        where = str(path.relative_to(site))
        if where.startswith("documents/"):
            # Archived copies: named by sha256 only, and never served as HTML.
            # Evidence copies are published under names a browser will not run (issue 16.9).
            assert re.fullmatch(r"documents/[0-9a-f]{64}\.(xml|json|pdf|docx|bin)\.txt"
                                r"|documents/[0-9a-f]{64}\.(pdf|docx|bin)", where), where
            continue
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        if path.suffix == ".html":
            markup = assert_inert_html(text, where)
            seen["html"] |= "zq1" in markup.text
            # Shown to the reader as the text it is.
            literal_script |= "<script>alert(1)</script>" in markup.text
            literal_template |= "{{ 7*7 }}" in markup.text and "{% raw %}" in markup.text
        elif path.suffix == ".atom":
            assert "<script" not in text and "<img" not in text, where
            root = ET.fromstring(raw)  # well-formed: the payload did not break the XML
            for element in root.iter():
                local = element.tag.rsplit("}", 1)[-1]
                assert local not in ("script", "img"), where
                if local == "content" and element.get("type") == "html":
                    inner = assert_inert_html(element.text or "", f"{where} <content>")
                    seen["atom"] |= "zq1" in inner.text
                if element.text and "zq1" in element.text and local != "content":
                    seen["atom"] = True
        elif path.suffix == ".csv":
            table = list(csv.reader(io.StringIO(text)))
            assert all(len(row) == len(table[0]) for row in table), where
            if any(PAYLOAD in cell for row in table for cell in row):
                seen["csv"] = True
        elif path.suffix == ".json":
            def strings(value: object) -> Iterator[str]:
                if isinstance(value, str):
                    yield value
                elif isinstance(value, dict):
                    for item in value.values():
                        yield from strings(item)
                elif isinstance(value, list):
                    for item in value:
                        yield from strings(item)
            if any(PAYLOAD in s for s in strings(json.loads(text))):
                seen["json"] = True
        for evaluated in ("zq3 49 zq4", "zq3 49"):
            assert evaluated not in text, where
    assert seen["html"], "the payload shows on no page: the test would prove nothing"
    assert literal_script, "the <script> text should be shown literally somewhere"
    assert literal_template, "the template syntax should be shown literally somewhere"
    assert seen["csv"] and seen["json"], seen
    assert seen["atom"], "the feed does not carry the payload: the test would prove nothing"


def test_email_escapes_the_payload(payload_run: PayloadRun) -> None:
    pytest.importorskip("reports.email")
    messages = payload_run.smtp.messages
    assert messages, "no alert was delivered"
    carried = False
    for message in messages:
        html_part = message.get_body(preferencelist=("html",))
        assert html_part is not None
        markup = assert_inert_html(html_part.get_content(), "email html")
        carried |= "zq1" in markup.text
        plain = message.get_body(preferencelist=("plain",))
        assert plain is not None
        assert "zq3 49" not in plain.get_content()
        for header in ("Subject", "From", "To", "Message-ID"):
            assert "<script" not in str(message[header]) and "\n" not in str(message[header])
    assert carried, "the alert does not show the listed text: the test would prove nothing"


def test_scraped_text_never_becomes_a_path(payload_run: PayloadRun) -> None:
    root = payload_run.root
    everything = tree(root)
    outside = [p for p in everything if not (p.startswith("data") or p in (
        "schedwatch.toml", "cwd"))]
    assert outside == [], outside
    assert list(payload_run.cwd.iterdir()) == []
    for relative in everything:
        name = Path(relative).name
        assert not any(bad in name for bad in ("passwd", "<", ">", "{", "}", "zq", "script",
                                               '"', "..")), relative
    site = payload_run.data_dir / "site"
    allowed = re.compile(r"(?:[a-z0-9][a-z0-9_-]*/)*(?:\.schedwatch-site\.json|"
                         r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[a-z0-9]+){0,2})")
    for path in site.rglob("*"):
        relative = str(path.relative_to(site))
        assert allowed.fullmatch(relative), relative
    documents = payload_run.data_dir / "documents"
    for path in documents.rglob("*"):
        if path.is_file():
            assert re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{64}", str(path.relative_to(documents)))


# --- secrets --------------------------------------------------------------------------------------

@dataclass
class SecretCase:
    secret: str
    forms: tuple[str, ...]
    outputs: list[tuple[str, CliResult]]
    data_dir: Path
    smtp: SmtpServer


def secret_forms(secret: str, username: str) -> tuple[str, ...]:
    """The secret and the ways SMTP AUTH puts it on the wire (AUTH PLAIN, AUTH LOGIN)."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    return (secret, b64(secret), b64(f"\0{username}\0{secret}"), b64(f"{username}\0{secret}"))


@pytest.fixture(params=["environment", "file-600"])
def secret_case(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                run_cli: Callable[..., CliResult],
                caplog: pytest.LogCaptureFixture) -> Iterator[SecretCase]:
    secret = f"pw-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("SCHEDWATCH_SMTP_PASSWORD", raising=False)
    docs = canada_docs()
    with DocServer() as server, SmtpServer(auth=("alerts", "the-right-one")) as smtp:
        extra = 'username = "alerts"'
        if request.param == "file-600":
            extra += f'\npassword = "{secret}"'
        else:
            monkeypatch.setenv("SCHEDWATCH_SMTP_PASSWORD", secret)
        config = ca_config(tmp_path / "schedwatch.toml", tmp_path / "data", server,
                           extra=email_section(smtp.port, extra=extra))
        assert config.stat().st_mode & 0o777 == 0o600
        server.set(CDSA_PATH, docs.cdsa)
        server.set(CSR_PATH, docs.csr)
        outputs: list[tuple[str, CliResult]] = []

        def cli(*args: str) -> CliResult:
            result = run_cli("--config", str(config), *args)
            outputs.append((" ".join(args), result))
            return result

        assert cli("run").exit_code == 0
        server.set(CDSA_PATH, docs.moved)
        changed = cli("run")  # a change: an alert is queued and the login is refused
        assert changed.exit_code == 0, changed.stdout + changed.stderr
        assert "email" in changed.stderr and "535" in changed.stderr, changed.stderr
        tested = cli("email", "test")
        assert tested.exit_code == 2, tested.stderr
        assert "authentication failed" in tested.stderr and "535" in tested.stderr, tested.stderr
        assert "Traceback" not in tested.stderr
        assert cli("--verbose", "email", "test").exit_code == 2
        cli("email", "send")
        for args in (("status",), ("status", "--format", "json"), ("sources", "--format", "json"),
                     ("changes", "--format", "json"), ("changes",), ("history", "ketamine")):
            assert cli(*args).exit_code == 0, args
        server.set(CDSA_PATH, b"Internal Server Error", status=500, content_type="text/plain")
        failing = cli("--verbose", "run")
        assert failing.exit_code == 2 and "FAILED" in failing.stdout
        assert secret in smtp.passwords_seen, "the password never reached the server"
        yield SecretCase(secret, secret_forms(secret, "alerts"), outputs, tmp_path / "data",
                         smtp)
        logs = caplog.text + "\n".join(
            f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        for form in secret_forms(secret, "alerts"):
            assert form not in logs, f"the secret is in the log ({request.param})"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_secret_never_in_outputs_files_or_database(secret_case: SecretCase) -> None:
    for command, result in secret_case.outputs:
        for form in secret_case.forms:
            assert form not in result.stdout, (command, "stdout")
            assert form not in result.stderr, (command, "stderr")
    scanned = 0
    for path in sorted(secret_case.data_dir.rglob("*")):
        if path.is_file():
            content = path.read_bytes()
            scanned += 1
            for form in secret_case.forms:
                assert form.encode() not in content, path
                assert form.encode("utf-16-le") not in content, path
    assert scanned >= 5  # database, documents, site pages…
    assert (secret_case.data_dir / "schedwatch.db").is_file()


# --- TLS ------------------------------------------------------------------------------------------

@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the openssl CLI nor the cryptography package is available to make "
                    "a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-days", "1", "-keyout", str(key), "-out", str(cert)],
                          capture_output=True, timeout=60, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr[-200:]!r}")
    return cert, key


@pytest.fixture
def https_server(self_signed: tuple[Path, Path]) -> Iterator[HTTPServer]:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def test_tls_certificates_are_verified(tmp_path: Path, https_server: HTTPServer,
                                       monkeypatch: pytest.MonkeyPatch,
                                       run_cli: Callable[..., CliResult]) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
                     "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    docs = canada_docs()
    https_server.expect_request("/robots.txt").respond_with_data("", status=404)
    https_server.expect_request(CDSA_PATH).respond_with_data(docs.cdsa,
                                                             content_type="application/xml")
    https_server.expect_request(CSR_PATH).respond_with_data(docs.csr,
                                                            content_type="application/xml")
    assert https_server.url_for(CDSA_PATH).startswith("https://127.0.0.1:")
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": https_server.url_for(CDSA_PATH)},
        "ca-csr": {"url": https_server.url_for(CSR_PATH)},
    })

    refused = run_cli("--config", str(config), "run", "-j", "ca")
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    lines = [line for line in refused.stdout.splitlines() if line.startswith("ca-cdsa:")]
    assert len(lines) == 1 and "FAILED (tls)" in lines[0], refused.stdout
    assert "TLS certificate verification failed" in lines[0]
    assert "insecure_skip_tls_verify" in lines[0]  # says how to proceed for a private mirror
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "TLS certificate verification is OFF" not in refused.stderr
    health = {s["id"]: s for s in run_cli("--config", str(config), "sources", "--format",
                                          "json").json()}
    assert health["ca-cdsa"]["health"] == "source_failed"

    text = config.read_text()
    assert "[fetch]\n" in text
    config.write_text(text.replace("[fetch]\n", "[fetch]\ninsecure_skip_tls_verify = true\n", 1))
    os.chmod(config, 0o600)
    for attempt in range(2):  # every run warns, not only the first
        accepted = run_cli("--config", str(config), "run", "-j", "ca")
        assert accepted.exit_code == 0, (attempt, accepted.stdout + accepted.stderr)
        assert "TLS certificate verification is OFF" in accepted.stderr, (attempt,
                                                                          accepted.stderr)
        assert "ca-cdsa: ok" in accepted.stdout
    changes = run_cli("--config", str(config), "changes", "--format", "json").json()
    assert [c["kind"] for c in changes if c["source_id"] == "ca-cdsa"] == ["source_failed",
                                                                           "recovered"]


# --- a password in the configuration file -------------------------------------------------------

@pytest.mark.parametrize(("mode", "accepted"), [(0o644, False), (0o640, False), (0o604, False),
                                                (0o600, True), (0o400, True)])
def test_password_in_file_needs_a_private_file(tmp_path: Path, mode: int, accepted: bool,
                                               monkeypatch: pytest.MonkeyPatch,
                                               run_cli: Callable[..., CliResult]) -> None:
    monkeypatch.delenv("SCHEDWATCH_SMTP_PASSWORD", raising=False)
    secret = f"pw-{uuid.uuid4().hex}"
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={},
                          extra=email_section(2525, extra=f'username = "alerts"\n'
                                                          f'password = "{secret}"'))
    os.chmod(config, mode)
    result = run_cli("--config", str(config), "status")
    assert secret not in result.stdout + result.stderr
    if accepted:
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert "chmod 600" in result.stderr
    assert "SCHEDWATCH_SMTP_PASSWORD" in result.stderr  # and the better alternative
    assert "Traceback" not in result.stderr
