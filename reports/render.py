"""The one Jinja2 environment: autoescape on, StrictUndefined, templates under
``reports/templates/``. Scraped text is always data, never template source."""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> jinja2.Environment:
    """A fresh environment (cheap; no module-level state). Autoescape is on for every
    template, HTML, XML and text alike, so nothing scraped can become markup; plain-text
    templates mark their output safe explicitly."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["short_sha"] = lambda value: (value or "")[:12]
    return env


def stylesheet() -> str:
    """The one stylesheet: screen, print (@media print) and, inlined, email."""
    return (TEMPLATES / "style.css").read_text(encoding="utf-8")
