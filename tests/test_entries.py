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
