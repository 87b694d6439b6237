"""Compiled templates are kept between processes (``reports.render.template_cache_dir``):
the next process renders the same bytes without compiling, and a cache it cannot use
costs time, never a page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest

from reports import render, weekly

CONTEXT = {**weekly.weekly_index_context(["2026-W45", "2026-W46"]), "root": "../",
           "csp": "default-src 'none'"}


@pytest.fixture
def fresh() -> Iterator[None]:
    render.environment.cache_clear()
    yield
    render.environment.cache_clear()


def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates Jinja2 compiles from source from now on."""
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def spy(self: jinja2.Environment, source: str, name: str | None = None,
            *args: object, **kwargs: object) -> object:
        compiled.append(str(name))
        return original(self, source, name, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(jinja2.Environment, "compile", spy)
    return compiled


def test_the_next_process_renders_the_same_page_without_compiling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    monkeypatch.setenv("SCHEDWATCH_CACHE_DIR", str(tmp_path))
    compiled = compiles(monkeypatch)
    first = render.render(render.environment(), "weekly_index.html", CONTEXT)
    assert "weekly_index.html" in compiled
    assert list((tmp_path / "templates").iterdir())
    assert (tmp_path / "templates").stat().st_mode & 0o777 == 0o700
    render.environment.cache_clear()  # what a new process starts with
    compiled.clear()
    again = render.render(render.environment(), "weekly_index.html", CONTEXT)
    assert again == first
    assert compiled == []


def test_a_damaged_cache_file_is_compiled_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    monkeypatch.setenv("SCHEDWATCH_CACHE_DIR", str(tmp_path))
    first = render.render(render.environment(), "weekly_index.html", CONTEXT)
    for cached in (tmp_path / "templates").iterdir():
        cached.write_bytes(b"not a compiled template")
    render.environment.cache_clear()
    compiled = compiles(monkeypatch)
    assert render.render(render.environment(), "weekly_index.html", CONTEXT) == first
    assert "weekly_index.html" in compiled


def test_a_folder_others_can_write_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    """What is loaded from the cache is code: a folder anyone could write into is refused."""
    (tmp_path / "templates").mkdir()
    os.chmod(tmp_path / "templates", 0o777)
    monkeypatch.setenv("SCHEDWATCH_CACHE_DIR", str(tmp_path))
    assert render.template_cache_dir() is None
    assert render.environment().bytecode_cache is None
    assert "2026-W46" in render.render(render.environment(), "weekly_index.html", CONTEXT)
    assert list((tmp_path / "templates").iterdir()) == []


def test_no_cache_to_be_had_only_costs_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SCHEDWATCH_CACHE_DIR", str(blocked))
    assert render.template_cache_dir() is None
    assert "2026-W46" in render.render(render.environment(), "weekly_index.html", CONTEXT)


def test_the_users_cache_folder_is_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDWATCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert render.template_cache_dir() == tmp_path / "xdg" / "schedwatch" / "templates"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert render.template_cache_dir() == tmp_path / "home" / ".cache" / "schedwatch" / \
        "templates"
