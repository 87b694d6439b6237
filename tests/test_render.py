"""The Jinja2 environment and the templates: every site template renders under
StrictUndefined from fixture data (a real Store, see tests.support.site_data), every partial is used,
scraped text is escaped, and the filters label what they show."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta
import pytest

import reports.site
from reports.render import (
    TEMPLATES,
    environment,
    format_local,
    format_utc,
    safe_url,
    stylesheet,
    templates_digest,
)
from scrapers.errors import ConfigError
from tests.support.site_data import NOW, PAYLOAD, build_store, make_settings
from tests.support.site_spies import templates_rendered

#: The email engineer's templates live under email/ and are tested with the email code.
SITE_TEMPLATES = sorted(p.name for p in TEMPLATES.glob("*") if p.is_file()
                        and p.suffix in (".html", ".xml"))
TOP_LEVEL = [name for name in SITE_TEMPLATES if not name.startswith(("_", "base"))]


def test_environment_is_strict_and_escapes_everything() -> None:
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is True  # every template, whatever its extension
    template = env.from_string("{{ value }}")
    assert template.render(value=PAYLOAD) == (
        "&lt;script&gt;alert(1)&lt;/script&gt; &#34;dq&#34; &#39;sq&#39; &amp; AT&amp;T")
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("index.html").render(root="", title="x")


def test_every_site_template_renders_from_fixture_data(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    used = templates_rendered(monkeypatch)
    store = build_store(tmp_path, extra_substances=3)
    settings = make_settings(tmp_path, watch="all")
    reports.site.publish(settings, store, now=NOW)
    reports.site.write_weekly(settings, store, "2027-W01", now=NOW)
    store.close()
    assert sorted(set(used)) == sorted(TOP_LEVEL)


def test_every_partial_is_used_by_a_page() -> None:
    env = environment()
    reached: set[str] = set()
    todo = list(TOP_LEVEL)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        todo += [ref for ref in jinja2.meta.find_referenced_templates(env.parse(source))
                 if ref]
    assert set(SITE_TEMPLATES) <= reached


def test_templates_use_relative_links_only() -> None:
    for name in SITE_TEMPLATES:
        text = (TEMPLATES / name).read_text()
        assert 'href="/' not in text and 'src="/' not in text, name
        assert "http://" not in text.replace("http://www.w3.org/2005/Atom", ""), name


def test_format_utc_and_local_label_their_zone() -> None:
    assert format_utc("2026-11-17T06:00:00+00:00") == "2026-11-17 06:00 UTC"
    assert format_utc("2026-11-17T06:00:00") == "2026-11-17 06:00 UTC"  # naive: stored UTC
    assert format_utc("on proclamation") == "on proclamation"
    assert format_utc(None) == ""
    toronto = ZoneInfo("America/Toronto")
    assert format_local("2026-07-01T12:00:00+00:00", toronto) == \
        "2026-07-01 08:00 America/Toronto (EDT)"
    assert format_local("2026-07-01T12:00:00+00:00", ZoneInfo("UTC")) == ""
    env = environment("Australia/Sydney")
    assert env.from_string("{{ t|local }}").render(t="2026-11-17T06:00:00+00:00") == \
        "2026-11-17 17:00 Australia/Sydney (AEDT)"


def test_an_unknown_zone_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="scheduler.timezone"):
        environment("Nowhere/Special")


@pytest.mark.parametrize(("url", "expected"), [
    ("https://www.ecfr.gov/x?a=1&b=2", "https://www.ecfr.gov/x?a=1&b=2"),
    ("http://example.org", "http://example.org"),
    ("javascript:alert(1)", None),
    (" JavaScript:alert(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("//evil.example/x", None),
    ("/etc/passwd", None),
    ("https://", None),
    ("https://ok.example/\nx", None),
    ("", None),
    (None, None),
])
def test_safe_url_lets_only_http_links_through(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_stylesheet_serves_screen_print_and_email() -> None:
    css = stylesheet()
    assert "@media print" in css and "@page" in css
    assert "@import" not in css and "url(" not in css  # nothing external, fit to inline
    assert len(css.encode()) < 8000


def test_templates_digest_changes_with_a_template(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import reports.render

    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    monkeypatch.setattr(reports.render, "TEMPLATES", copy)
    first = templates_digest()
    (copy / "index.html").write_text((copy / "index.html").read_text() + "\n")
    assert templates_digest() != first


def test_a_render_of_hostile_context_is_text() -> None:
    env = environment()
    context = {"root": "", "title": PAYLOAD, "weeks": [{"week": PAYLOAD, "href": PAYLOAD}]}
    out = env.get_template("weekly_index.html").render(**context)
    assert "<script>alert" not in out and 'href="&lt;script&gt;' in out
