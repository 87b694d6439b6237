"""The one Jinja2 environment: autoescape on, StrictUndefined, templates under
``reports/templates/``. Scraped text is always data, never template source."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import stat
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from jinja2.bccache import Bucket
from markupsafe import Markup

from scrapers.clock import parse_stamp
from scrapers.clock import reader_zone_named as zone
from scrapers.records import CONTROL_LEVELS

if TYPE_CHECKING:  # pragma: no cover
    from reports.parts import Parts

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.lru_cache(maxsize=8192)
def format_utc(value: str | None) -> str:
    """``2026-11-20 14:03 UTC``; text that is not a timestamp is shown as it is."""
    if not value:
        return ""
    try:
        moment = parse_stamp(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.lru_cache(maxsize=8192)
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


def when(value: str | None, reader_zone: ZoneInfo) -> Markup:
    """A moment for a reader: ``<time>`` with the UTC time, then the reader's local time,
    or "never". The ``when`` filter; thousands of records share a few moments, so it is
    worked out once per moment."""
    if not value:
        return Markup('<span class="muted">never</span>')
    try:
        return _when(value, reader_zone)
    except TypeError:  # not hashable: not a stored timestamp either
        return _when.__wrapped__(value, reader_zone)


@functools.lru_cache(maxsize=8192)
def _when(value: str, reader_zone: ZoneInfo) -> Markup:
    html = Markup('<time datetime="{0}">{1}</time>').format(value, format_utc(value))
    local = format_local(value, reader_zone)
    if local:
        html += Markup(' <span class="local">({0})</span>').format(local)
    return html


@functools.lru_cache(maxsize=4096)
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


class _Environment(jinja2.Environment):
    """Jinja2's environment, with ``a.b`` on a plain dict looked up as a key first. The
    contexts are dicts; the default order (attribute, then key) raises and catches an
    AttributeError for every field shown, a quarter of the time of rendering a page of
    thousands of records. No context has a key named like a dict method, so no key hides
    a method a template calls (``CONTROL_LEVELS.items()``)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between processes, as ``__pycache__`` keeps modules:
    compiling the templates is ~0.15 s of every publish. Jinja2 keys each file by the
    template's name and checks its source's checksum and Jinja2's own version before
    using it, so an edited template or an upgrade is compiled again. A cache that cannot
    be read or written is only slower: rendering never fails because of it."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def template_cache_dir() -> Path | None:
    """Where compiled templates are kept: ``$SCHEDWATCH_CACHE_DIR/templates``, else the
    user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``schedwatch/``. Only
    a folder this user owns that no one else can write is used (what is loaded from it is
    code); None — no cache — when there is none to be had."""
    chosen = os.environ.get("SCHEDWATCH_CACHE_DIR")
    try:
        if chosen:
            root = Path(chosen)
        else:
            xdg = os.environ.get("XDG_CACHE_HOME")
            root = (Path(xdg) if xdg else Path.home() / ".cache") / "schedwatch"
        folder = root / "templates"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder


@functools.lru_cache(maxsize=8)
def environment(timezone: str = "UTC") -> jinja2.Environment:
    """The environment for a reader's zone, built once per process: Jinja2 compiles each
    template once per environment, and a long-running scheduler publishes many times.
    Configured once and never changed afterwards, so sharing it is safe. Autoescape is on for every
    template, HTML, XML and text alike, so nothing scraped can become markup; plain-text
    templates mark their output safe explicitly. ``timezone`` is the reader's zone used by
    the ``local`` filter. Compiled templates are kept in ``template_cache_dir()``."""
    reader_zone = zone(timezone)
    env = _Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    cache = template_cache_dir()
    if cache is not None:
        env.bytecode_cache = _TemplateCache(str(cache))
    env.filters["short_sha"] = lambda value: (value or "")[:12]
    env.filters["utc"] = format_utc
    env.filters["local"] = lambda value: format_local(value, reader_zone)
    env.filters["when"] = lambda value: when(value, reader_zone)
    env.filters["safe_url"] = safe_url
    env.globals["CONTROL_LEVELS"] = CONTROL_LEVELS
    env.globals["reader_zone"] = reader_zone.key
    return env


def render(env: jinja2.Environment, template: str, context: Mapping[str, Any]) -> str:
    return env.get_template(template).render(**context)


def render_into(env: jinja2.Environment, template: str, context: Mapping[str, Any],
                out: BinaryIO, *, pieces: int = 4096, parts: Parts | None = None) -> None:
    """Render into an open binary file (UTF-8) a few thousand pieces at a time: the output
    of a page of thousands of records is never held whole in memory. ``parts``: the
    page's reused parts, written from the previous page (``Parts.write``)."""
    stream = env.get_template(template).generate(**context)
    while chunk := list(itertools.islice(stream, pieces)):
        if parts is None:
            out.write("".join(chunk).encode("utf-8"))
        else:
            parts.write("".join(chunk), out)


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
