"""The compliance reference's entries (reports/entries.py) are the markup the Jinja macro
they replace made, byte for byte, for every branch — and everything scraped in them is
escaped: markup, quotes and ``javascript:`` links never reach the page as such."""

from __future__ import annotations

import pytest
from markupsafe import escape as markupsafe_escape

from reports import entries
from reports.render import environment
from tests.support.entry_cases import CASES, HEALTHS, NASTY, entry

#: The macro the reference rendered each entry with (the former _record.html): the spec.
OLD_ENTRY = """{% import "_macros.html" as m with context %}
{% macro entry(e) %}
{% set r = e.record %}
<section class="entry {{ 'primary' if e.primary else 'secondary' }}">
<h4>{{ e.source_title }} <small>({{ r.source_id }}{% if not e.primary %}, secondary source{% endif %})</small></h4>
{% if e.health.failing %}<p class="health">{{ m.health(e.health) }}. The status below is the last healthy one.</p>{% elif e.health.disabled %}<p class="health">Source {{ m.health(e.health) }}: the status below is the last one recorded, not checked since.</p>{% endif %}
<dl class="record">
<dt>Status</dt><dd><strong>{{ r.label }}</strong>{% if r.control_level %} · control level {{ m.level(r) }}{% endif %}{% if r.review %}<br><strong class="bad review">REVIEW:</strong> {{ r.review }}{% endif %}</dd>
{% if r.in_force_words %}<dt>In force since</dt><dd>{{ r.in_force_words }}</dd>{% endif %}
{% if r.legal_note %}<dt>Note</dt><dd class="legal-note">{{ r.legal_note }}</dd>{% endif %}
<dt>Instrument</dt><dd>{% if e.instrument_title %}{{ e.instrument_title }} <small>({{ r.instrument }})</small>{% else %}{{ r.instrument }}{% endif %}</dd>
<dt>Provision</dt><dd>{{ r.provision or "—" }}</dd>
<dt>Listed as</dt><dd>{% for text in r.listed_lines %}{% if loop.first %}<q>{{ text }}</q>{% else %}<br><span class="listed-note">{{ text }}</span>{% endif %}{% else %}<span class="muted">not listed</span>{% endfor %}</dd>
{% if r.parent_entry %}<dt>Parent entry</dt><dd><q>{{ r.parent_entry }}</q></dd>{% endif %}
<dt>Basis</dt><dd>{{ r.basis }}</dd>
{% if r.code %}<dt>{{ r.code_label }}</dt><dd>{{ r.code }}</dd>{% endif %}
<dt>Dates</dt><dd><ul class="dates">
{% if r.evidence_date %}<li><span class="label">the document speaks for (point in time):</span> {{ r.evidence_date }}</li>{% endif %}
{% for d in r.dates %}<li><span class="label">{{ d.label }}:</span> {{ d.date }}</li>{% endfor %}
<li><span class="label">first observed by schedwatch:</span> {{ (r.first_observed_at or e.since)|when }}</li>
<li><span class="label">retrieved (first seen):</span> {{ r.retrieved_at|when }}</li>
<li><span class="label">last confirmed (retrieved):</span> {{ m.confirmed(e, r.jurisdiction) }}</li>
</ul></dd>
<dt>Source</dt><dd>{{ m.ext_link(r.source_url) }}</dd>
<dt>Evidence</dt><dd>{{ m.doc(e.evidence, full=true) }}{% if e.first_evidence.sha256 and e.first_evidence.sha256 != e.evidence.sha256 %}<br>{{ m.doc(e.first_evidence, full=true) }}{% endif %}</dd>
</dl>
</section>
{% endmacro %}
{% for e in items %}{{ entry(e) }}{% endfor %}"""


@pytest.mark.parametrize("timezone", ["UTC", "Australia/Sydney"])
@pytest.mark.parametrize("root", ["", "../"])
def test_entries_are_the_markup_of_the_old_macro(timezone: str, root: str) -> None:
    env = environment(timezone)
    old = env.from_string(OLD_ENTRY)
    for items in CASES + [[entry(1, HEALTHS[0]), entry(2, HEALTHS[1])], []]:
        expected = old.render(items=items, root=root)
        assert str(entries.entries_html(items, timezone, root)) == expected, items


def test_scraped_text_is_escaped_and_a_script_link_is_not_a_link() -> None:
    html = str(entries.entries_html([entry(0, HEALTHS[1]), entry(1, HEALTHS[0])], "UTC"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "href=\"javascript:" not in html
    assert '<span class="ext">javascript:alert(1)</span>' in html


@pytest.mark.parametrize("value", [NASTY, "", "plain", "a&b<c>d\"e'f", None, 7, "&amp;"])
def test_escape_is_markupsafes(value: object) -> None:
    assert entries.escape(value) == str(markupsafe_escape(value))


def test_escape_keeps_a_bounded_number_of_texts_and_gives_the_same_text_either_way() -> None:
    texts = [f"{NASTY} {n}" for n in range(10)] * 2  # each escaped twice: kept, then forgot
    saved = entries._ESCAPED_LIMIT
    try:
        entries._ESCAPED_LIMIT = 3  # a full store of texts is emptied for the next new one
        entries._ESCAPED.clear()
        escaped, sizes = [], []
        for text in texts:
            escaped.append(entries.escape(text))
            sizes.append(len(entries._ESCAPED))
        assert max(sizes) == 3
    finally:
        entries._ESCAPED_LIMIT = saved
    assert escaped == [str(markupsafe_escape(text)) for text in texts]


#: The macro the index rendered its all-records rows with (index.html's ``record_rows``):
#: the spec of ``record_rows_html``.
OLD_RECORD_ROWS = """{% macro record_rows(rows) %}{% for r in rows %}
<tr>
<td>{% if r.history_href %}<a href="{{ root }}{{ r.history_href }}">{{ r.record.name }}</a>{% else %}{{ r.record.name }}{% endif %}</td>
<td>{{ r.jurisdiction }}</td>
<td>{{ r.record.label }}</td>
<td>{% if r.record.control_level %}<abbr title="{{ r.record.level_description }}">{{ r.record.control_level }}</abbr>{% endif %}</td>
<td>{{ r.record.pinpoint }}</td>
<td>{{ r.record.listed_as or "" }}</td>
<td>{% if r.by_source_check %}<a href="{{ root }}reference.html#j-{{ r.code }}-sources">latest check</a>{% else %}{{ r.as_of|utc }}{% endif %}</td>
<td>{{ r.record.source_id }}{% if r.health.failing %} <span class="bad">failing</span>{% elif r.health.disabled %} <span class="muted">disabled</span>{% endif %}</td>
<td>{{ r.listed_in }}{% if r.unmatched %} <em>(unmatched)</em>{% endif %}</td>
</tr>
{% endfor %}{% endmacro %}{{ record_rows(rows) }}"""


def _record_row(index: int, health: dict[str, object]) -> dict[str, object]:
    odd = index % 2 == 1
    return {
        "code": "au" if odd else "c<a>", "jurisdiction": NASTY if odd else "Canada",
        "listed_in": "Australia, Canada" if odd else NASTY, "unmatched": not odd,
        "record": {"name": NASTY if odd else "Ketamine", "label": "Schedule {8}" if odd else NASTY,
                   "control_level": (None, "C2", NASTY)[index % 3],
                   "level_description": NASTY, "pinpoint": "S.C. 1996, c. 19" if odd else NASTY,
                   "listed_as": (None, "", NASTY, "Ketamine & its salts")[index % 4],
                   "source_id": "ca-cdsa" if odd else NASTY},
        "as_of": ("2026-11-20T14:03:00+00:00", "not a stamp <b>", None)[index % 3],
        "by_source_check": index % 5 == 0, "health": health,
        "history_href": (None, "history/ketamine.html", 'history/"x".html')[index % 3],
    }


@pytest.mark.parametrize("root", ["", "../"])
def test_index_record_rows_are_the_markup_of_the_old_macro(root: str) -> None:
    old = environment("UTC").from_string(OLD_RECORD_ROWS)
    rows = [_record_row(i, HEALTHS[i % len(HEALTHS)]) for i in range(30)]
    for chosen in (rows, rows[:1], []):
        assert entries.record_rows_html(chosen, root) == old.render(rows=chosen, root=root)
    html = entries.record_rows_html(rows, root)
    assert "<script>" not in html and "&lt;script&gt;" in html
