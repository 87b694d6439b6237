"""Shared parsing of untrusted documents: XML parser settings, bounded iterparse, "an HTML
page arrived" sniffing, JSON object loading, month names and ISO dates.

Everything a regulator serves is untrusted. The security-relevant settings live here once:
no entity expansion, no DTD, no network access, no huge-tree mode (XXE and billion-laughs
documents are refused by lxml itself), and JSON nested past a fixed depth is refused before
Python's recursion limit turns it into a crash of the whole run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from itertools import accumulate
from typing import IO, Any

from scrapers.errors import ExtractionError

#: English and French month names (French accents folded), 1-based.
MONTHS_EN = ("january", "february", "march", "april", "may", "june", "july", "august",
             "september", "october", "november", "december")
MONTHS_FR = ("janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout",
             "septembre", "octobre", "novembre", "decembre")
MONTH_NUMBERS: dict[str, int] = {
    **{name: index for index, name in enumerate(MONTHS_EN, start=1)},
    **{name: index for index, name in enumerate(MONTHS_FR, start=1)},
}

#: Deepest JSON nesting accepted. Real API answers (Federal Register, eCFR, the Australian
#: register) nest fewer than 10 levels; Python's json module recurses once per level and a
#: few thousand levels raise RecursionError (seen in an adversarial test, 2026-11).
MAX_JSON_DEPTH = 64

_BOM = b"\xef\xbb\xbf"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def xml_parser() -> Any:
    """An lxml parser for untrusted XML."""
    from lxml import etree  # imported here: a warm run that parses nothing never loads it

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False)


def iterparse(source: bytes | IO[bytes], **options: Any) -> Iterator[tuple[str, Any]]:
    """lxml's iterparse with the untrusted-XML settings (it takes XMLParser's options)."""
    import io

    from lxml import etree

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    return etree.iterparse(stream, resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, **options)


def release(element: Any) -> None:
    """Free a finished element and the siblings before it (bounded-memory iterparse)."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def html_title(content: bytes) -> str | None:
    """The <title> of an HTML page, read with BeautifulSoup (the project's HTML parser), or
    None when it has none."""
    match = _TITLE.search(content[:65536])
    if not match:
        return None
    from bs4 import BeautifulSoup

    title = BeautifulSoup(b"<title>" + match.group(1)[:500] + b"</title>", "html.parser").title
    text = " ".join(title.get_text().split()) if title else ""
    return text[:120] or None


def looks_like_html(content: bytes) -> bool:
    """Whether the bytes are an HTML page (an error, login or maintenance page) rather than
    the XML or JSON a source serves."""
    head = content.lstrip(_BOM + b" \t\r\n")[:300].lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:120]


def html_page_found(content: bytes) -> str:
    """The words for "an HTML page arrived": "an HTML page titled 'Site maintenance'"."""
    title = html_title(content)
    return f"an HTML page titled {title!r}" if title else "an HTML page"


def refuse_html(content: bytes, where: str, expected: str) -> None:
    """Raise ExtractionError naming the page when HTML arrived instead of ``expected``."""
    if looks_like_html(content):
        raise ExtractionError(f"{where}: expected {expected}; the server answered "
                              f"{html_page_found(content)}")


def parse_xml(content: bytes, where: str, expected: str) -> Any:
    """The root element of an untrusted XML document, or ExtractionError saying what came
    instead (nothing, an HTML page, malformed XML, no root)."""
    from lxml import etree

    if not content or not content.strip():
        raise ExtractionError(f"{where}: expected {expected}; found an empty document")
    refuse_html(content, where, expected)
    try:
        root = etree.fromstring(content, xml_parser())
    except etree.XMLSyntaxError as exc:
        message = " ".join(str(exc).split())
        raise ExtractionError(f"{where}: expected {expected}; found malformed XML "
                              f"({message})") from None
    if root is None or not isinstance(root.tag, str):
        raise ExtractionError(f"{where}: expected {expected}; found no root element")
    if root.tag.lower() == "html" or root.tag.endswith("}html"):
        raise ExtractionError(f"{where}: expected {expected}; the server answered "
                              f"{html_page_found(content)}")
    return root


#: A JSON string: what the depth check skips (a bracket inside one nests nothing).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
#: Each byte's step in depth: +1 for "[" and "{", -1 for "]" and "}" (only those remain).
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[0x5B] = _DEPTH_STEP[0x7B] = 1
_DEPTH_STEP[0x5D] = _DEPTH_STEP[0x7D] = -1


def _json_depth_ok(content: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """A bracket count outside strings that bounds nesting before json.loads — by regular
    expressions and ``accumulate``, not a Python loop over every byte (a megabyte of
    Federal Register answers took 60 ms that way). From an unterminated string on, nothing
    counts (as inside any string)."""
    outside = _JSON_STRING.sub(b"", content).split(b'"', 1)[0]
    brackets = _NOT_BRACKET.sub(b"", outside)
    return not brackets or max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) <= limit


def load_json(content: bytes | None, what: str) -> Any:
    """Parse untrusted JSON or raise ExtractionError saying what arrived instead."""
    if not content or not content.strip():
        raise ExtractionError(f"{what}: the response is empty")
    if looks_like_html(content):
        raise ExtractionError(f"{what}: the server answered {html_page_found(content)} where "
                              "JSON was expected (an error or maintenance page?)")
    if not _json_depth_ok(content):
        raise ExtractionError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels; "
                              "refused (not an answer of this API)")
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ExtractionError(f"{what}: not JSON ({type(error).__name__}: "
                              f"{str(error)[:120]})") from None


def load_json_object(content: bytes | None, what: str) -> dict[str, Any]:
    """Parse an untrusted JSON object (see ``load_json``)."""
    data = load_json(content, what)
    if not isinstance(data, dict):
        raise ExtractionError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def iso_date(value: Any) -> str | None:
    """``YYYY-MM-DD`` from a string that starts with an ISO date (time and zone ignored:
    the regulators' dates are local calendar dates), else None."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def exact_iso_date(value: Any) -> str | None:
    """``value`` if it is exactly an ISO date (``YYYY-MM-DD``) that exists, else None:
    stricter than ``iso_date``, for a date that goes into a URL path."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    return iso_date(value)
