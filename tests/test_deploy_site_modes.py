"""The published site honours the umask: a web server running as another user can read it,
although it is built in a mkdtemp() folder (0700) and its small files are written through
mkstemp() (0600) before being swapped in."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.site import publish, write_weekly
from tests.support.site_data import NOW, build_store, make_settings


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder others can traverse (pytest's tmp_path is 0700 up the tree, which would
    hide the site from another user whatever its own modes)."""
    folder = Path(tempfile.mkdtemp(prefix="schedwatch-site-modes-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build_site(folder: Path) -> Path:
    store = build_store(folder)
    try:
        settings = make_settings(folder)
        publish(settings, store, now=NOW)
        write_weekly(settings, store, "2026-W47", now=NOW)  # atomic writes into the site
        site = publish(settings, store, now=NOW)  # pages linked from the previous site
    finally:
        store.close()
    return site


def modes(site: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"dirs": set(), "files": set()}
    for path in [site, *site.rglob("*")]:
        mode = oct(stat.S_IMODE(path.lstat().st_mode))
        found["dirs" if path.is_dir() else "files"].add(mode)
    return found


def test_site_folders_are_0755_and_files_0644_under_umask_022(tmp_path: Path,
                                                              umask_022: None) -> None:
    site = build_site(tmp_path)
    assert (site / "weekly").is_dir() and (site / "index.html").is_file()
    assert modes(site) == {"dirs": {"0o755"}, "files": {"0o644"}}


def test_a_stricter_umask_is_honoured_too(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        site = build_site(tmp_path)
    finally:
        os.umask(previous)
    assert modes(site) == {"dirs": {"0o750"}, "files": {"0o640"}}


def test_pages_kept_from_a_site_of_another_mode_are_given_the_umasks(tmp_path: Path,
                                                                     umask_022: None) -> None:
    """A page kept from the previous site is a hard link to its file: published under
    another umask, or by a version that did not honour it (its manifest says no mode), the
    kept files are given this umask's mode; a site of this mode is linked as it is."""
    import json

    from reports.site import SITE_MARKER

    store = build_store(tmp_path)
    settings = make_settings(tmp_path)
    try:
        os.umask(0o077)
        site = publish(settings, store, now=NOW)
        assert modes(site)["files"] == {"0o600"}
        os.umask(0o022)
        site = publish(settings, store, now=NOW)  # every page kept, none remade
        assert modes(site) == {"dirs": {"0o755"}, "files": {"0o644"}}
        # A site written before its manifest said its mode, its files left at 0600.
        manifest = json.loads((site / SITE_MARKER).read_text())
        assert manifest["file_mode"] == 0o644
        del manifest["file_mode"]
        (site / SITE_MARKER).write_text(json.dumps(manifest))
        for path in site.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o600)
        site = publish(settings, store, now=NOW)
        assert modes(site) == {"dirs": {"0o755"}, "files": {"0o644"}}
    finally:
        store.close()


def _as_nobody() -> list[str] | None:
    """A command prefix that runs as the unprivileged user ``nobody``, or None."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        return None
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
            if _group_exists("nogroup") else ["setpriv", "--reuid=nobody", "--regid=nobody",
                                              "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_another_user_can_read_every_page(open_folder: Path, umask_022: None) -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("cannot run a process as another user here (not root, or no "
                    "setpriv/runuser/nobody); the mode test above still checks 0755/0644")
    site = build_site(open_folder)
    # What a web server running as another user does: walk the folders, read every file.
    result = subprocess.run([*prefix, "find", str(site), "-type", "f", "-exec", "cat", "{}",
                             "+"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[:500]
    assert b"<html" in result.stdout.lower()
    assert result.stderr == b""
