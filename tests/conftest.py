"""Shared test helpers: the real regulator documents, configuration files, the CLI in-process."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DOCS = ROOT.parent / "shared" / "regulator-documents"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_doc(relative: str) -> bytes:
    """A real regulator document from ../shared, or skip the test with the reason."""
    path = SHARED_DOCS / relative
    if not SHARED_DOCS.is_dir():
        pytest.skip("../shared/regulator-documents is absent: real-document tests skipped")
    if not path.is_file():
        pytest.skip(f"../shared/regulator-documents/{relative} is absent")
    return path.read_bytes()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


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


#: [fetch] for tests: no pauses, one retry, short timeouts.
TEST_FETCH: dict[str, Any] = {"request_interval": 0, "backoff": 0, "max_retries": 1,
                              "connect_timeout": 2, "read_timeout": 5.0, "max_wait": 5}


def write_config(path: Path, *, data_dir: Path, sources: Mapping[str, Mapping[str, Any]],
                 extra: str = "", read_timeout: float | None = None,
                 fetch: Mapping[str, Any] | None = None) -> Path:
    """A configuration file pointing the named sources at local URLs; every other source is
    disabled (tests never touch the internet). ``fetch`` overrides TEST_FETCH; ``extra`` is
    appended TOML (an [email] section, say)."""
    from jurisdictions import all_sources

    settings_fetch = {**TEST_FETCH, **(fetch or {})}
    if read_timeout is not None:
        settings_fetch["read_timeout"] = read_timeout
    lines = [f"data_dir = {json.dumps(str(data_dir))}", 'contact = "tests@example.org"', "",
             "[fetch]", *(f"{key} = {json.dumps(value)}" for key, value in settings_fetch.items()),
             ""]
    for source in all_sources():
        lines.append(f"[sources.{source.id}]")
        lines += [f"{key} = {json.dumps(value)}"
                  for key, value in sources.get(source.id, {"enabled": False}).items()]
        lines.append("")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def without_item(xml: bytes, text_start: str) -> bytes:
    """Delete the first <Item> whose <Text> starts with ``text_start`` (a variant made in the
    test from the original, never by editing the shared file)."""
    source = xml.decode("utf-8-sig")
    pattern = re.compile(r"<Item\b[^>]*>\s*<Label>[^<]*</Label>\s*<Text>" + re.escape(text_start)
                         + r"[^<]*</Text>\s*</Item>")
    result, count = pattern.subn("", source, count=1)
    assert count == 1, f"no item starting {text_start!r}"
    return result.encode("utf-8")


def insert_into_schedule(xml: bytes, schedule_label: str, item_xml: str) -> bytes:
    """Insert an <Item> at the start of the first <List> of the schedule with this label."""
    source = xml.decode("utf-8-sig")
    at = source.index(f"<Label>{schedule_label}</Label>")
    list_start = source.index("<List", at)
    list_end = source.index(">", list_start) + 1
    return (source[:list_end] + item_xml + source[list_end:]).encode("utf-8")


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
