"""The compliance reference's entries (one per source's current record, thousands with
``watch = "all"``) and the index's all-records rows as pre-escaped HTML, made by pure
functions instead of a Jinja macro call per entry (and four nested macro calls each) or a
Jinja loop over thousands of rows: the template's work costs more than the text. The
markup is that of the ``_macros.html`` fragments it stands for (``health``, ``level``,
``ext_link``, ``doc``) and of the index's row macro it replaced, byte for byte;
tests/test_entries.py renders both.

Everything scraped goes through ``markupsafe.escape``; only the fixed markup here and the
``when`` filter's own ``Markup`` are trusted. ``e`` is ``pages.interval_view`` of an
interval, with ``primary``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markupsafe import Markup
from markupsafe import escape as _markupsafe_escape

from reports.render import format_utc, safe_url, when
from scrapers.clock import reader_zone_named

__all__ = ["entries_html", "entry_html", "health_html", "level_html", "ext_link_html",
           "doc_html", "record_rows_html"]

When = Callable[[str | None], Markup]


def entries_html(entries: Sequence[Mapping[str, Any]], reader_zone: str,
                 root: str = "") -> Markup:
    """The entries of one substance in one jurisdiction, in order (``reader_zone``: the
    template global of that name, the zone local times are shown in; ``root``: the way
    back to the site root)."""
    zone = reader_zone_named(reader_zone)

    def moment(value: str | None) -> Markup:
        return when(value, zone)

    # Every scraped value in it went through ``escape``: the text is markup as it stands.
    return Markup("".join([entry_html(e, moment, root) for e in entries]))  # noqa: S704


def entry_html(e: Mapping[str, Any], moment: When, root: str = "") -> str:
    """One ``<section class="entry">``: status, in-force date, instrument, provision, the
    text as listed, basis, every date saying what it is, source and evidence."""
    r = e["record"]
    health = e["health"]
    out = [f'<section class="entry {"primary" if e["primary"] else "secondary"}">\n'
           f'<h4>{escape(e["source_title"])} <small>({escape(r["source_id"])}'
           f'{"" if e["primary"] else ", secondary source"})</small></h4>\n']
    if health["failing"]:
        out.append(f'<p class="health">{health_html(health, moment)}. The status below is '
                   'the last healthy one.</p>')
    elif health["disabled"]:
        out.append(f'<p class="health">Source {health_html(health, moment)}: the status '
                   'below is the last one recorded, not checked since.</p>')
    out.append(f'<dl class="record">\n<dt>Status</dt><dd><strong>{escape(r["label"])}'
               '</strong>')
    if r["control_level"]:
        out.append(f" · control level {level_html(r)}")
    if r["review"]:
        out.append(f'<br><strong class="bad review">REVIEW:</strong> {escape(r["review"])}')
    out.append("</dd>\n")
    if r["in_force_words"]:
        out.append(f'<dt>In force since</dt><dd>{escape(r["in_force_words"])}</dd>')
    if r["legal_note"]:
        out.append(f'<dt>Note</dt><dd class="legal-note">{escape(r["legal_note"])}</dd>')
    title = e["instrument_title"]
    instrument = (f'{escape(title)} <small>({escape(r["instrument"])})</small>' if title
                  else escape(r["instrument"]))
    out.append(f'<dt>Instrument</dt><dd>{instrument}</dd>\n'
               f'<dt>Provision</dt><dd>{escape(r["provision"] or "—")}</dd>\n'
               '<dt>Listed as</dt><dd>')
    lines = r["listed_lines"]
    if lines:
        out.append(f"<q>{escape(lines[0])}</q>")
        out.extend(f'<br><span class="listed-note">{escape(text)}</span>'
                   for text in lines[1:])
    else:
        out.append('<span class="muted">not listed</span>')
    out.append("</dd>\n")
    if r["parent_entry"]:
        out.append(f'<dt>Parent entry</dt><dd><q>{escape(r["parent_entry"])}</q></dd>')
    out.append(f'<dt>Basis</dt><dd>{escape(r["basis"])}</dd>\n')
    if r["code"]:
        out.append(f'<dt>{escape(r["code_label"])}</dt><dd>{escape(r["code"])}</dd>')
    out.append('<dt>Dates</dt><dd><ul class="dates">\n')
    if r["evidence_date"]:
        out.append('<li><span class="label">the document speaks for (point in time):</span> '
                   f'{escape(r["evidence_date"])}</li>')
    out.extend(f'<li><span class="label">{escape(d["label"])}:</span> {escape(d["date"])}</li>'
               for d in r["dates"])
    out.append(
        '<li><span class="label">first observed by schedwatch:</span> '
        f'{moment(r["first_observed_at"] or e["since"])}</li>\n'
        f'<li><span class="label">retrieved (first seen):</span> {moment(r["retrieved_at"])}'
        '</li>\n'
        f'<li><span class="label">last confirmed (retrieved):</span> {_confirmed(e, moment, root)}'
        '</li>\n</ul></dd>\n'
        f'<dt>Source</dt><dd>{ext_link_html(r["source_url"])}</dd>\n'
        f'<dt>Evidence</dt><dd>{doc_html(e["evidence"], root=root)}')
    first, latest = e["first_evidence"], e["evidence"]
    if first["sha256"] and first["sha256"] != latest["sha256"]:
        out.append(f"<br>{doc_html(first, root=root)}")
    out.append("</dd>\n</dl>\n</section>\n")
    return "".join(out)


def record_rows_html(rows: Sequence[Mapping[str, Any]], root: str = "") -> str:
    """Rows of the index's all-records table (``pages._record_chunks``: a chunk's
    ``rows``): the substance (a link to its history page when it has one), jurisdiction,
    status, control level, pinpoint, text as listed, when last confirmed, source (and its
    failing or disabled flag) and where else it is listed."""
    home = escape(root)
    out = []
    for r in rows:
        record = r["record"]
        name = escape(record["name"])
        href = r["history_href"]
        level = record["control_level"]
        health = r["health"]
        flag = (' <span class="bad">failing</span>' if health["failing"]
                else ' <span class="muted">disabled</span>' if health["disabled"] else "")
        confirmed = (f'<a href="{home}reference.html#j-{escape(r["code"])}-sources">'
                     'latest check</a>' if r["by_source_check"]
                     else escape(format_utc(r["as_of"])))
        out.append(
            "<tr>\n<td>"
            + (f'<a href="{home}{escape(href)}">{name}</a>' if href else name)
            + f'</td>\n<td>{escape(r["jurisdiction"])}</td>\n<td>{escape(record["label"])}'
            "</td>\n<td>"
            + (f'<abbr title="{escape(record["level_description"])}">{escape(level)}</abbr>'
               if level else "")
            + f'</td>\n<td>{escape(record["pinpoint"])}</td>\n'
            f'<td>{escape(record["listed_as"] or "")}</td>\n<td>{confirmed}</td>\n'
            f'<td>{escape(record["source_id"])}{flag}</td>\n<td>{escape(r["listed_in"])}'
            + (" <em>(unmatched)</em>" if r["unmatched"] else "") + "</td>\n</tr>\n")
    return "".join(out)


def _confirmed(e: Mapping[str, Any], moment: When, root: str) -> str:
    """``m.confirmed(e, code)``: by every healthy check of its source (the time of the
    latest is in the section's source table, shown once per source), or, when its source
    has not confirmed it since, its own time."""
    if e["by_source_check"]:
        code = escape(e["record"]["jurisdiction"])
        return ('at every healthy check of the source <small>(its latest check: '
                f'<a href="{escape(root)}reference.html#j-{code}-sources">source health</a>)'
                '</small>')
    return str(moment(e["as_of"]))


#: Texts escaped before, and how: most of an entry's values (its source's id, URL and
#: latest document, its dates, "named") repeat on thousands of entries — on the realistic
#: reference, 16,000 distinct texts of 181,000 escaped. Emptied when it grows past
#: ``_ESCAPED_LIMIT``, so that a long-running scheduler does not keep every text it ever
#: published.
_ESCAPED: dict[str, str] = {}
_ESCAPED_LIMIT = 100_000


def escape(value: Any) -> str:
    """``markupsafe.escape`` as text, with text escaped by five C ``str.replace`` calls
    (the same five entities): markupsafe's wrapper costs more than the escaping, and an
    entry escapes some thirty values. Anything but plain text (None, a number, ``Markup``)
    is left to markupsafe."""
    if type(value) is not str:
        return str(_markupsafe_escape(value))
    escaped = _ESCAPED.get(value)
    if escaped is None:
        if len(_ESCAPED) >= _ESCAPED_LIMIT:
            _ESCAPED.clear()
        escaped = _ESCAPED[value] = value.replace("&", "&amp;").replace(">", "&gt;") \
            .replace("<", "&lt;").replace("'", "&#39;").replace('"', "&#34;")
    return escaped


# --- the fragments of _macros.html --------------------------------------------------------

def health_html(h: Mapping[str, Any], moment: When) -> str:
    """``m.health(h)``."""
    if h["disabled"]:
        return '<span class="muted disabled">disabled in the configuration</span>'
    if h["failing"]:
        error = f': {escape(h["error"])}' if h["error"] else ""
        healthy = f'; last healthy {moment(h["last_healthy_at"])}' if h["last_healthy_at"] \
            else ""
        return (f'<span class="bad">source failing since {moment(h["failing_since"])}'
                f"{error}{healthy}</span>")
    if h["health"] == "healthy":
        checked = (f' <small>(checked {escape(format_utc(h["last_healthy_at"]))})</small>'
                   if h["last_healthy_at"] else "")
        return f'<span class="ok">source healthy</span>{checked}'
    return '<span class="muted">source not checked yet</span>'


def level_html(rec: Mapping[str, Any]) -> str:
    """``m.level(rec)``: the level and its description."""
    level = rec["control_level"]
    if not level:
        return ""
    description = escape(rec["level_description"])
    html = f'<abbr class="level" title="{escape(level)}: {description}">{escape(level)}</abbr>'
    return html + f' <small class="level-text">{description}</small>'


def ext_link_html(url: str | None) -> str:
    """``m.ext_link(url)``: a link only for an http(s) URL (``render.safe_url``)."""
    href = safe_url(url)
    if href:
        return (f'<a class="ext" href="{escape(href)}" rel="noopener noreferrer">'
                f"{escape(url)}</a>")
    return f'<span class="ext">{escape(url)}</span>' if url else ""


def doc_html(ev: Mapping[str, Any], root: str = "") -> str:
    """``m.doc(ev, full=True)``: the document's whole sha256, a link to its archived copy
    when the site has one."""
    sha = ev["sha256"]
    role = ev["role"]
    if not sha:
        return f'<span class="muted">no {escape(role)} document</span>' if role else ""
    shown = escape(sha)
    what = f"{escape(role)} document, " if role else ""
    if ev["href"]:
        return (f'<a class="sha" href="{escape(root)}{escape(ev["href"])}" '
                f'title="sha256 {escape(sha)}">{what}sha256 {shown}</a>')
    return (f'<span class="sha" title="sha256 {escape(sha)}">{what}sha256 {shown} '
            '<span class="muted">(no archived copy in this site)</span></span>')
