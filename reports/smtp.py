"""The SMTP transport: connect (STARTTLS, SSL or plain), log in, hand over one message.

Every failure becomes an ``SmtpError`` (an ``EmailError``) whose message is one line saying
what failed and what to check. Whether retrying can help follows one rule: a failure is
``permanent`` only when the server answered with a 5xx reply (535 bad credentials, 550
unknown recipient, 553/554 refused sender or message); everything else (no connection, a
timeout, a TLS problem, a 4xx reply such as 421/450/451/452) is temporary, so queued alerts go
out once the network or the configuration is fixed. A 552 to a message (too large) is
permanent for that message only: ``too_large`` lets the outbox send a digest instead. The
password is handed to ``smtplib.SMTP.login`` and nowhere else; server replies are passed
through ``redact``.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING

from scrapers.errors import EmailError

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import EmailSettings

HINT_CONNECTION = "check email.host/port and the firewall"
HINT_TLS = ("check email.security (\"starttls\" for port 587, \"ssl\" for port 465, \"none\" "
            "only for a trusted local relay)")
HINT_AUTH = "check email.username and SCHEDWATCH_SMTP_PASSWORD"


class SmtpError(EmailError):
    """One SMTP failure. ``code`` is the server's reply code when there was one;
    ``connection_lost`` says that the connection cannot carry further messages."""

    def __init__(self, message: str, *, permanent: bool = False, stage: str = "connection",
                 code: int | None = None, connection_lost: bool = False) -> None:
        super().__init__(message, permanent=permanent, stage=stage)
        self.code = code
        self.connection_lost = connection_lost

    @property
    def too_large(self) -> bool:
        """The server refused the message for its size (552 to MAIL FROM with SIZE=, or to
        DATA): a smaller form of the same message may still go."""
        return self.code == 552 and self.stage in ("sender", "message")


def where(settings: EmailSettings) -> str:
    return f"{settings.host}:{settings.port}"


def redact(text: str, settings: EmailSettings) -> str:
    """Replace the password, and the base64 forms AUTH PLAIN / AUTH LOGIN put on the wire,
    should a server ever echo them back in a reply."""
    password = settings.password
    if not password:
        return text
    forms = {password, _b64(password)}
    if settings.username:
        forms.add(_b64(f"\0{settings.username}\0{password}"))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def is_permanent(code: int | None) -> bool:
    return code is not None and 500 <= code <= 599


def reply_text(code: int | None, reply: bytes | str | None) -> str:
    """A server reply as one short line: ``550 5.1.1 no such user``."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    words = " ".join((reply or "").split())
    if len(words) > 200:
        words = words[:199] + "…"
    return f"{code} {words}".strip() if code is not None else words


# --- connecting ---------------------------------------------------------------------------

@contextlib.contextmanager
def connect(settings: EmailSettings) -> Iterator[smtplib.SMTP]:
    """An open, logged-in connection, closed on exit (politely when possible)."""
    client = open_client(settings)
    try:
        yield client
    finally:
        close(client)


def close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        # The server may already have dropped us (after a 421); nothing is pending.
        client.close()


def open_client(settings: EmailSettings) -> smtplib.SMTP:
    """Connect, say EHLO, upgrade to TLS as configured and log in when a username is set.
    Exactly one connection attempt: retrying is the outbox's job, on a later pass."""
    if settings.username and not settings.password:
        raise SmtpError(f"email.username is '{settings.username}' but SCHEDWATCH_SMTP_PASSWORD "
                        "is not set; export it in the environment schedwatch runs in",
                        stage="auth")
    context = ssl.create_default_context()
    # With "ssl" the TLS handshake happens inside the constructor: SSL errors are classified
    # as TLS problems by their type, everything else there is a connection problem.
    stage = "connection"
    client: smtplib.SMTP | None = None
    try:
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        client.ehlo_or_helo_if_needed()
        if settings.security == "starttls":
            stage = "tls"
            if not client.has_extn("starttls"):
                raise SmtpError(f"the SMTP server {where(settings)} does not offer STARTTLS; "
                                f"{HINT_TLS}", stage="tls")
            client.starttls(context=context)
            client.ehlo_or_helo_if_needed()
        if settings.username:
            stage = "auth"
            client.login(settings.username, settings.password or "")
        return client
    except SmtpError:
        _discard(client)
        raise
    except Exception as error:
        _discard(client)
        failure = _classify_open(error, stage, settings)
        if failure is None:
            raise
        raise failure from None


def _discard(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.close()


def _classify_open(error: Exception, stage: str, settings: EmailSettings) -> SmtpError | None:
    """The one-line explanation of a failure while connecting; None for programming errors."""
    at = where(settings)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return SmtpError(f"authentication failed for user '{settings.username}' at {at} "
                         f"({redact(reply_text(error.smtp_code, error.smtp_error), settings)}); "
                         f"{HINT_AUTH}", permanent=is_permanent(error.smtp_code), stage="auth",
                         code=error.smtp_code)
    if isinstance(error, smtplib.SMTPNotSupportedError) and stage == "auth":
        before = " (it may offer it only after STARTTLS)" if settings.security == "none" else ""
        return SmtpError(f"the SMTP server {at} does not offer authentication (AUTH){before}; "
                         "check email.security and email.username", stage="auth")
    if isinstance(error, smtplib.SMTPResponseException):
        text = redact(reply_text(error.smtp_code, error.smtp_error), settings)
        code = error.smtp_code
        if stage == "tls":
            return SmtpError(f"the SMTP server {at} refused STARTTLS ({text}); {HINT_TLS}",
                             permanent=is_permanent(code), stage="tls", code=code)
        if stage == "auth":
            return SmtpError(f"login at {at} failed ({text}); {HINT_AUTH}",
                             permanent=is_permanent(code), stage="auth", code=code)
        return SmtpError(f"the SMTP server {at} refused the connection ({text}); "
                         f"{HINT_CONNECTION}", permanent=is_permanent(code), code=code)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        hint = {"tls": HINT_TLS, "auth": HINT_AUTH}.get(stage, HINT_CONNECTION)
        if "timed out" in str(error):
            # smtplib reports a read timeout (a firewall that accepts and stays silent, a
            # server that never greets) as a disconnection.
            what = {"tls": "the TLS handshake", "auth": "login"}.get(stage, "the greeting")
            return SmtpError(f"no answer from the SMTP server {at} within "
                             f"{settings.timeout:g} s (waiting for {what}); {hint}",
                             stage=stage)
        during = {"tls": "during the TLS handshake", "auth": "during login"}.get(
            stage, "right after connecting")
        return SmtpError(f"the SMTP server {at} closed the connection {during}; {hint}",
                         stage=stage)
    if isinstance(error, smtplib.SMTPException):
        # e.g. "No suitable authentication method found."
        hint = HINT_AUTH if stage == "auth" else HINT_CONNECTION
        return SmtpError(f"SMTP with {at} failed: {redact(str(error), settings)}; {hint}",
                         stage=stage)
    if isinstance(error, ssl.SSLCertVerificationError):
        return SmtpError(f"TLS handshake with {at} failed: the server's certificate is not "
                         f"trusted ({error.verify_message}); check email.host (the name must "
                         "match the certificate) and email.security", stage="tls")
    if isinstance(error, ssl.SSLError):
        reason = error.reason or type(error).__name__
        return SmtpError(f"TLS handshake with {at} failed ({reason}); {HINT_TLS}", stage="tls")
    if isinstance(error, socket.gaierror):
        return SmtpError(f"cannot connect to the SMTP server {at}: the host name does not "
                         f"resolve; {HINT_CONNECTION}")
    if isinstance(error, TimeoutError):
        what = {"tls": "the TLS handshake", "auth": "login"}.get(stage, "the connection")
        hint = {"tls": HINT_TLS, "auth": HINT_AUTH}.get(stage, HINT_CONNECTION)
        return SmtpError(f"no answer from the SMTP server {at} within {settings.timeout:g} s "
                         f"(waiting for {what}); {hint}", stage=stage)
    if isinstance(error, ConnectionRefusedError):
        return SmtpError(f"cannot connect to the SMTP server {at}: connection refused; "
                         f"{HINT_CONNECTION}")
    if isinstance(error, OSError):
        reason = error.strerror or type(error).__name__
        return SmtpError(f"cannot connect to the SMTP server {at}: {reason}; {HINT_CONNECTION}",
                         stage="tls" if stage == "tls" else "connection")
    return None


# --- sending ------------------------------------------------------------------------------

def send(client: smtplib.SMTP, settings: EmailSettings, recipient: str, data: bytes) -> None:
    """Hand one message for one recipient to the server. Returns only when the server
    accepted it (the reply to DATA was 250); raises ``SmtpError`` otherwise."""
    sender = settings.sender
    try:
        refused = client.sendmail(sender, [recipient], data)
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = error.recipients.get(recipient, (None, b""))
        raise _refused(recipient, code, reply, settings) from None
    except smtplib.SMTPSenderRefused as error:
        raise SmtpError(f"the SMTP server {where(settings)} refused the sender {sender} "
                        f"({redact(reply_text(error.smtp_code, error.smtp_error), settings)}); "
                        "check email.from (many servers accept only their own domain or the "
                        "logged-in user)", permanent=is_permanent(error.smtp_code),
                        stage="sender", code=error.smtp_code,
                        connection_lost=error.smtp_code == 421) from None
    except smtplib.SMTPDataError as error:
        text = redact(reply_text(error.smtp_code, error.smtp_error), settings)
        raise SmtpError(f"the SMTP server {where(settings)} did not accept the message to "
                        f"{recipient} ({text})", permanent=is_permanent(error.smtp_code),
                        stage="message", code=error.smtp_code,
                        connection_lost=error.smtp_code == 421) from None
    except smtplib.SMTPServerDisconnected:
        raise SmtpError(f"the SMTP server {where(settings)} closed the connection while "
                        f"sending to {recipient}; {HINT_CONNECTION}",
                        connection_lost=True) from None
    except smtplib.SMTPResponseException as error:
        text = redact(reply_text(error.smtp_code, error.smtp_error), settings)
        raise SmtpError(f"the SMTP server {where(settings)} failed while sending to "
                        f"{recipient} ({text})", permanent=is_permanent(error.smtp_code),
                        stage="message", code=error.smtp_code,
                        connection_lost=error.smtp_code == 421) from None
    except UnicodeEncodeError:
        raise SmtpError(f"{recipient} or {sender} is not a plain ASCII address, which this "
                        "sender does not support; check email.recipients and email.from",
                        permanent=True, stage="recipient") from None
    except (smtplib.SMTPException, OSError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise SmtpError(f"the connection to the SMTP server {where(settings)} failed while "
                        f"sending to {recipient} ({reason}); {HINT_CONNECTION}",
                        connection_lost=True) from None
    if recipient in refused:  # sendmail reports partial refusals instead of raising
        code, reply = refused[recipient]
        raise _refused(recipient, code, reply, settings)


def _refused(recipient: str, code: int | None, reply: bytes | str | None,
             settings: EmailSettings) -> SmtpError:
    text = redact(reply_text(code, reply), settings)
    hint = "; check the address in email.recipients" if is_permanent(code) else \
        " (temporary)"
    return SmtpError(f"the server refused {recipient}: {text}{hint}",
                     permanent=is_permanent(code), stage="recipient", code=code,
                     connection_lost=code == 421)
