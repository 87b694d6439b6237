"""The one Jinja2 environment: autoescape on, StrictUndefined, templates under
``reports/templates/``. Scraped text is always data, never template source."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from scrapers.errors import ConfigError
from scrapers.records import CONTROL_LEVELS

TEMPLATES = Path(__file__).resolve().parent / "templates"


def zone(name: str) -> ZoneInfo:
    """The reader's zone (``scheduler.timezone``); a name zoneinfo does not know is a
    configuration error, not a reason to show times in a zone nobody asked for."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config: 'scheduler.timezone' = {name!r} is not an IANA time zone; "
                          "use a name such as \"America/Toronto\" or \"UTC\"") from None


def parse_stamp(value: str) -> datetime:
    """A stored timestamp (ISO 8601, UTC) as an aware datetime; naive ones are UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_utc(value: str | None) -> str:
    """``2026-11-20 14:03 UTC``; text that is not a timestamp is shown as it is."""
    if not value:
        return ""
    try:
        moment = parse_stamp(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_local(value: str | None, reader_zone: ZoneInfo) -> str:
    """The same moment in the reader's zone, labelled with the zone's name; empty when the
    reader's zone is UTC (the UTC time is always shown beside it)."""
    if not value or reader_zone.key == "UTC":
        return ""
    try:
        moment = parse_stamp(value)
    except ValueError:
        return ""
    local = moment.astimezone(reader_zone)
    return f"{local.strftime('%Y-%m-%d %H:%M')} {reader_zone.key} ({local.strftime('%Z')})"


def safe_url(value: str | None) -> str | None:
    """A scraped URL fit for an ``href``: http(s) with a host, else None (shown as text).
    Autoescape stops markup, not ``javascript:`` links — this does."""
    if not value or any(ch in value for ch in "\r\n\t"):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value.strip()


@functools.lru_cache(maxsize=8)
def environment(timezone: str = "UTC") -> jinja2.Environment:
    """The environment for a reader's zone, built once per process: Jinja2 compiles each
    template once per environment, and a long-running scheduler publishes many times.
    Configured once and never changed afterwards, so sharing it is safe. Autoescape is on for every
    template, HTML, XML and text alike, so nothing scraped can become markup; plain-text
    templates mark their output safe explicitly. ``timezone`` is the reader's zone used by
    the ``local`` filter."""
    reader_zone = zone(timezone)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["short_sha"] = lambda value: (value or "")[:12]
    env.filters["utc"] = format_utc
    env.filters["local"] = lambda value: format_local(value, reader_zone)
    env.filters["safe_url"] = safe_url
    env.globals["CONTROL_LEVELS"] = CONTROL_LEVELS
    env.globals["reader_zone"] = reader_zone.key
    return env


def render(env: jinja2.Environment, template: str, context: Mapping[str, Any]) -> str:
    return env.get_template(template).render(**context)


def stylesheet() -> str:
    """The one stylesheet: screen, print (@media print) and, inlined, email."""
    return (TEMPLATES / "style.css").read_text(encoding="utf-8")


def templates_digest() -> str:
    """A digest of every template and the stylesheet: a page rendered by other templates
    than the ones on disk now is stale even when its data did not change."""
    digest = hashlib.sha256()
    for path in sorted(TEMPLATES.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(TEMPLATES).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()
