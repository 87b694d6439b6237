"""The exception tree: every error a user can cause or meet ends in one of these."""

from __future__ import annotations


class SchedwatchError(Exception):
    """Base class: the message is one line saying what went wrong and how to fix it."""

    exit_code = 2


class ConfigError(SchedwatchError):
    """The configuration file or an environment override is invalid."""


class FetchError(SchedwatchError):
    """A source could not be fetched (network, HTTP status, robots.txt, size cap).

    ``kind`` classifies the failure for reports: ``connection``, ``dns``, ``timeout``,
    ``http``, ``robots``, ``too_large``, ``redirect``, ``truncated``, ``tls``, and ``empty``
    (the register reports no in-force instrument).
    """

    def __init__(self, message: str, *, kind: str = "connection", status: int | None = None,
                 url: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.url = url


class ExtractionError(SchedwatchError):
    """A document was fetched but is not what the parser knows (wrong document, structure
    changed, malformed). Never read as "the substance disappeared"."""


class ValidationError(ExtractionError):
    """Parsed records failed the structural checks of ``scrapers.records.validate``."""


class StoreError(SchedwatchError):
    """The database or the document archive cannot be read or written."""


class LockedError(SchedwatchError):
    """Another schedwatch process holds the lock for this work."""

    exit_code = 0


class EmailError(SchedwatchError):
    """Sending email failed; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool = False, stage: str = "connection") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.stage = stage
