"""The compliance reference's entries (reports/entries.py) are the markup the Jinja macro
they replace made, byte for byte, for every branch — and everything scraped in them is
escaped: markup, quotes and ``javascript:`` links never reach the page as such."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup
from markupsafe import escape as markupsafe_escape

from reports import entries, reference
from reports.pages import source_lines
from reports.render import environment
from reports.scheduling_history import histories
from reports.site import _scheduling_of, read_snapshot
from tests.support.entry_cases import CASES, HEALTHS, NASTY, entry
from tests.support.site_data import NOW, PAYLOAD, build_store, make_settings

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


#: The macro the reference rendered each substance's block with (reference.html's former
#: ``substance_block``), with what its template imported: the spec of
#: ``reference.substance_block_html`` and the scheduling-history macro after it.
OLD_BLOCKS = """{% import "_macros.html" as m with context %}
{% macro substance_block(s, sub, index) %}
<h3 id="j-{{ s.code }}-{{ index }}">{% if sub.history_href %}<a href="{{ root }}{{ sub.history_href }}">{{ sub.name }}</a>{% else %}{{ sub.name }}{% endif %} — {{ s.name }}</h3>
{{ entries(sub, reader_zone, root) }}{% if scheduling_history.get(s.code, {}).get(sub.substance) %}{% include "_scheduling_history.html" %}{% endif %}
{% endmacro %}
{% for s in sections %}{% for sub in s.substances %}{{ substance_block(s, sub, loop.index) }}\0{% endfor %}{% endfor %}"""
HISTORY_MACRO = """{% import "_macros.html" as m with context %}
{% macro scheduling_block(s, sub) %}{% include "_scheduling_history.html" %}{% endmacro %}"""


@pytest.mark.parametrize("root", ["", "../"])
def test_reference_blocks_are_the_markup_of_the_old_macro(tmp_path: Path, root: str) -> None:
    settings = make_settings(tmp_path, watch="all")
    store = build_store(tmp_path, extra_substances=6)
    try:
        snap = read_snapshot(settings, store)
    finally:
        store.close()
    # The site's reference makes each substance's history from its own rows, when its part
    # is made; the former macro read every substance's, made at once from the snapshot.
    per_substance = reference.Histories([j.code for j in snap.jurisdictions],
                                        snap.history_substances,
                                        lambda name: _scheduling_of(snap, name))
    context = reference.reference_context(snap, now=NOW, scheduling=per_substance)
    all_at_once = histories(
        snap.history_substances, snap.intervals, snap.changes, snap.actions,
        {j.code: j.name for j in snap.jurisdictions}, [j.code for j in snap.jurisdictions],
        snap.documents)
    zone = settings.scheduler.timezone
    env = environment(zone)

    def old_entries(sub: dict[str, Any], reader_zone: str, root: str) -> Markup:
        return entries.entries_html(source_lines(sub["intervals"], sub["order"], snap),
                                    reader_zone, root)

    old = env.from_string(OLD_BLOCKS).render(
        sections=context["sections"], scheduling_history=all_at_once,
        entries=old_entries, root=root).split("\0")[:-1]
    history = env.from_string(HISTORY_MACRO).make_module(
        {"scheduling_history": per_substance, "root": root}).scheduling_block
    new = [re.sub(r"<!--part:[0-9a-f]+-->|<!--/part-->", "",
                  str(context["block"](s, sub, index, history, zone, root)))
           for s in context["sections"] for index, sub in enumerate(s["substances"], 1)]
    assert len(new) > 10 and any("scheduling-history" in block for block in new)
    assert any(str(markupsafe_escape(PAYLOAD)) in block for block in new)  # hostile text
    assert new == old


def test_the_references_histories_are_made_per_substance_on_the_first_look() -> None:
    """``reference.Histories`` makes a substance's history (in every jurisdiction) once,
    when a page first looks at it, never one it does not look at; as a mapping it is
    jurisdiction → substance → history, and a substance without a history page has none."""
    asked: list[str] = []

    def make(name: str) -> dict[str, dict[str, Any]]:
        asked.append(name)
        return {"us": {name: {"name": f"{name} in us"}},
                **({"ca": {name: {"name": f"{name} in ca"}}} if name == "a" else {})}

    histories = reference.Histories(["ca", "us"], ["b", "a"], make)
    assert histories.get("us", {}).get("b") == {"name": "b in us"}
    assert histories["us"]["b"] == {"name": "b in us"} and asked == ["b"]
    assert histories.get("ca", {}).get("b") is None and asked == ["b"]
    assert histories.get("us", {}).get("not listed") is None and asked == ["b"]
    assert list(histories) == ["ca", "us"] and "au" not in histories
    with pytest.raises(KeyError):
        histories["au"]
    assert dict(histories["ca"]) == {"a": {"name": "a in ca"}}
    assert sorted(histories["us"]) == ["a", "b"] and len(histories["us"]) == 2
    assert asked == ["b", "a"]
