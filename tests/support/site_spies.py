"""What a publish did, seen from inside (spies on ``reports.site``), and a template broken
on purpose: for the site tests that assert which pages were rendered or linked, and that a
failed render leaves the previous site."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import reports.render
import reports.site


def templates_rendered(monkeypatch: pytest.MonkeyPatch, *, with_week: bool = False
                       ) -> list[str]:
    """The templates the site renders from now on, in order (``template:week`` with
    ``with_week``, the week a weekly page is of)."""
    rendered: list[str] = []
    real = reports.site.render_into

    def spy(env: Any, template: str, context: Any, out: Any, **options: Any) -> Any:
        rendered.append(f"{template}:{context.get('week', '')}" if with_week else template)
        return real(env, template, context, out, **options)

    monkeypatch.setattr(reports.site, "render_into", spy)
    return rendered


def links_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files a publish hard-links from the live site (or copies) from now on."""
    linked: list[str] = []
    real = reports.site.link_or_copy

    def counted(source: Path | str, target: Path | str) -> bool:
        linked.append(os.fspath(target))
        return real(source, target)

    monkeypatch.setattr(reports.site, "link_or_copy", counted)
    return linked


def break_the_history_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               request: pytest.FixtureRequest) -> None:
    """A template bug (an undefined name fails under StrictUndefined) in the history page,
    made mid-way through a publish; the real templates come back with ``monkeypatch.undo``
    and a new environment."""
    broken = tmp_path / "templates"
    shutil.copytree(reports.render.TEMPLATES, broken)
    (broken / "history.html").write_text("{% extends 'base.html' %}"
                                         "{% block content %}{{ no_such_name }}{% endblock %}")
    monkeypatch.setattr(reports.render, "TEMPLATES", broken)
    # The environment is built once per process: rebuild it on the broken templates, and
    # again afterwards on the real ones.
    reports.render.environment.cache_clear()
    request.addfinalizer(reports.render.environment.cache_clear)
