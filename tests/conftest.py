"""Shared fixtures: the CLI in-process, the system Chromium. Helpers that are not fixtures
live in ``tests/support/``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliResult


@pytest.fixture(scope="session", autouse=True)
def template_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled templates go to a folder of the test session (and of the processes it
    starts), never to the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCHEDWATCH_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def pages_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A publish inside the test process makes every page in this process. Whether it would
    fork its page worker depends on whether an earlier test left a thread running, and a
    spy or an injected fault here sees only what this process makes: the same test would
    pass or fail with the order of the suite. The worker itself is tested in processes of
    its own, its sites byte for byte against this path (tests/test_page_worker.py); the
    commands that tests start as processes use it as users' commands do."""
    import reports.page_worker

    monkeypatch.setattr(reports.page_worker, "fork_helps", lambda: False)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., CliResult]:
    """Run ``schedwatch`` in-process (as the console script would) and capture its output."""
    from scheduler.cli import main

    def invoke(*args: str, env: Mapping[str, str] | None = None) -> CliResult:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


# --- the system Chromium, driven by Playwright (tests that need it skip with the reason) ---

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed: pip install playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=ARGS)
        yield browser
        browser.close()
