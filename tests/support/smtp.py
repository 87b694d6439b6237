"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd in a thread), reusable by any test file.

    with SmtpServer() as server:                 # plain SMTP on a free port
        ...send to server.host, server.port...
        server.messages                          # accepted messages, parsed
    server.fail_next(2, "451 4.3.0 try later")   # answer DATA of the next 2 messages so
    SmtpServer(auth=("alerts", "right"))         # AUTH required; other credentials get 535
    server.refuse("nobody@example.org", "550 5.1.1 no such user")
    SmtpServer(size_limit=50_000)                # answer 552 to DATA larger than that
    server.on_accept = callback                  # called (in the server's thread) with each
                                                 # message just before it is accepted
    server.stop(); server.start()                # "server down", then up on the same port
    cert = certificate(tmp_path)                 # self-signed for 127.0.0.1 (openssl CLI)
    SmtpServer(tls=cert)                         # offers STARTTLS
    SmtpServer(tls=cert, implicit_tls=True)      # TLS from the first byte (security = "ssl")
    # a client trusts it with SSL_CERT_FILE=<cert.certfile> in its environment

Usage from a test file: ``from tests.support.smtp import SmtpServer``.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it; closed again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path


def certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command; the test is
    skipped when there is none)."""
    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: TLS tests skipped")
    made = Certificate(certfile=folder / "smtp-cert.pem", keyfile=folder / "smtp-key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(made.keyfile), "-out", str(made.certfile)],
                   check=True, capture_output=True, timeout=60)
    return made


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope and the bytes as received."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Handler:
    """Stores accepted envelopes; can refuse recipients or answer DATA with an error."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rejected_data = 0
        self._fail_count = 0
        self._fail_reply = "451 4.3.0 Temporary failure, try again later"
        self._refused: dict[str, str] = {}
        self.size_limit: int | None = None
        self.too_large = 0  # messages answered 552 for their size
        self.on_accept: Any = None

    def fail_next(self, count: int, reply: str) -> None:
        with self.lock:
            self._fail_count, self._fail_reply = count, reply

    def refuse(self, address: str, reply: str) -> None:
        with self.lock:
            self._refused[address.lower()] = reply

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            refused = self._refused.get(address.lower())
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.original_content or envelope.content)
        with self.lock:
            if self.size_limit is not None and len(data) > self.size_limit:
                self.too_large += 1
                return "552 5.3.4 Message size exceeds fixed maximum message size"
        if self.on_accept is not None:
            self.on_accept(data)
        with self.lock:
            if self._fail_count > 0:
                self._fail_count -= 1
                self.rejected_data += 1
                return self._fail_reply
            self.received.append(Received(mail_from=envelope.mail_from,
                                          rcpt_tos=tuple(envelope.rcpt_tos),
                                          data=bytes(envelope.original_content
                                                     or envelope.content)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd ``Controller`` on 127.0.0.1 and a free port; see the module docstring."""

    def __init__(self, *, auth: tuple[str, str] | None = None, port: int | None = None,
                 tls: Certificate | None = None, implicit_tls: bool = False,
                 size_limit: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.handler = Handler()
        self.handler.size_limit = size_limit
        self.auth = auth
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.auth_attempts: list[tuple[str, str]] = []  # (mechanism, login) per AUTH command
        self.auth_connections = 0  # connections that tried AUTH (smtplib may try 2 mechanisms)
        self.passwords_seen: list[str] = []
        self._controller: Controller | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> SmtpServer:
        if self._controller is not None:
            return self
        options: dict[str, Any] = {}
        if self.auth is not None:
            # Plain AUTH without TLS is only acceptable because this is a loopback test.
            options = dict(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=False)
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls.certfile), str(self.tls.keyfile))
            options["ssl_context" if self.implicit_tls else "tls_context"] = context
        controller = Controller(self.handler, hostname=self.host, port=self.port,
                                ready_timeout=5.0, **options)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Simulate "server down": connections to the port are refused until ``start``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- behaviour ----------------------------------------------------------------------

    def fail_next(self, count: int, reply: str = "451 4.3.0 Temporary failure, try again "
                                                 "later") -> None:
        """Answer the DATA of the next ``count`` messages with ``reply`` (4xx or 5xx)."""
        self.handler.fail_next(count, reply)

    @property
    def on_accept(self) -> Any:
        return self.handler.on_accept

    @on_accept.setter
    def on_accept(self, callback: Any) -> None:
        self.handler.on_accept = callback

    def refuse(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        """Answer RCPT TO for this address with ``reply``."""
        self.handler.refuse(address, reply)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert self.auth is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        self.auth_attempts.append((mechanism, login))
        if not getattr(session, "schedwatch_counted", False):
            session.schedwatch_counted = True
            self.auth_connections += 1
        self.passwords_seen.append(password)
        # handled=False: aiosmtpd itself answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=(login, password) == self.auth, handled=False)

    # --- what arrived -------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose envelope recipients include ``address``."""
        return [r.message for r in self.received
                if address.lower() in (a.lower() for a in r.rcpt_tos)]


def email_section(port: int, *, recipients: tuple[str, ...] = ("officer@example.org",),
                  extra: str = "", recipient_extra: str = "") -> str:
    """The ``[email]`` section of a configuration that sends to a local server on ``port``
    (no TLS, 5 s timeout), one ``[[email.recipients]]`` per address. ``extra``: more
    ``[email]`` keys (``username = …``); ``recipient_extra``: more keys of each recipient
    (``weekly = true``)."""
    lines = ["[email]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"',
             'from = "schedwatch@example.org"', "timeout = 5", extra, ""]
    for address in recipients:
        lines += ["[[email.recipients]]", f'address = "{address}"', recipient_extra, ""]
    return "\n".join(lines)
