"""The store's files on disk: a read-only data folder (issue 17, item 5), a brand-new folder
opened by four processes at once, a database damaged by an unclean stop or emptied beside an
archive (issue 16, items 12 and 13), a deleted archived copy (item 14), and evidence copies
typed after a byte-order mark (issue 17, item 6). Real SQLite files, real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reports.pages import document_extension
from scrapers.errors import StoreError
from scrapers.store import Store
from tests.support.scheduler import ca_documents, clean_env, cli, serve_ca, write_config

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _read_only_cli(config: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``schedwatch ARGS`` with ``data`` read-only for it: a read-only bind mount in a mount
    namespace of its own when root (root ignores permission bits), else permission bits."""
    command = [sys.executable, "-c", "from scheduler.cli import main; main()", "--config",
               str(config), *args]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare: cannot make a read-only folder")
        script = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && '
                  'exec "$@"')
        command = ["unshare", "-m", "sh", "-c", script, "sh", str(data), *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env=clean_env(), cwd=config.parent, check=False)
    modes = {p: p.stat().st_mode for p in [data, *data.rglob("*")]}
    try:
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        return subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env=clean_env(), cwd=config.parent, check=False)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.fixture
def tracked(tmp_path: Path, httpserver) -> tuple[Path, Path]:
    """A data folder after one real Canadian baseline run (in its own process, which closed
    the database as a finished `schedwatch run` does); returns (config, data folder)."""
    config = write_config(tmp_path, serve_ca(httpserver, ca_documents()))
    process = cli(config, "run", "-j", "ca")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    return config, tmp_path / "data"


READERS = (("status", "--format", "json"), ("changes", "--format", "json"),
           ("history", "ketamine", "--format", "json"), ("sources", "--format", "json"),
           ("jobs", "--format", "json"))


def test_reading_commands_work_on_a_read_only_data_folder_and_change_nothing(tracked) -> None:
    config, data = tracked
    assert not (data / "schedwatch.db-wal").exists()  # closed cleanly: immutable is safe
    before = _snapshot(data)
    for args in READERS:
        result = _read_only_cli(config, data, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == ""
    status = _read_only_cli(config, data, "status", "--format", "json")
    assert '"substance": "ketamine"' in status.stdout
    history = _read_only_cli(config, data, "history", "ketamine").stdout
    assert "ca-cdsa" in history and "Schedule I" in history
    assert _snapshot(data) == before  # no file, folder, table or WAL written


def test_reading_while_a_writer_has_the_database_open(tracked) -> None:
    """The auditor reads while the service user's process has the database open (its -wal
    and -shm files exist): SQLite's read-only WAL reader, not a frozen "immutable" view."""
    config, data = tracked
    writer = Store(data)
    with writer.db.connect() as held:
        held.scalar("SELECT count(*) FROM runs")
        assert (data / "schedwatch.db-shm").exists()
        result = _read_only_cli(config, data, "status", "--format", "json")
    writer.close()
    assert result.returncode == 0, result.stderr
    assert '"substance": "ketamine"' in result.stdout


def test_a_writing_command_on_a_read_only_folder_says_it_is_not_writable(tracked) -> None:
    config, data = tracked
    result = _read_only_cli(config, data, "run", "-j", "ca")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"schedwatch: error: data_dir {data} is not writable (")
    assert line.endswith("the reading commands (status, changes, history, sources, jobs) "
                         "work on it, this one needs write access")


def test_reading_a_folder_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    store = Store.open_for_reading(tmp_path / "nowhere")
    assert store.runs() == [] and store.source_states() == {} and store.changes() == []
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(StoreError, match="opened for reading only"), \
            store.transaction(started_at=NOW, jurisdictions=["ca"]):
        pass


# --- a brand-new folder, four processes ----------------------------------------------------

OPENER = """
import sys, time
from pathlib import Path
from scrapers.store import Store
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store = Store(Path(sys.argv[1]))
store.runs()
print("ok", flush=True)
"""


def test_four_processes_opening_a_brand_new_folder_at_once_all_succeed(tmp_path: Path) -> None:
    failures = []
    for round_ in range(6):
        data, go = tmp_path / f"data{round_}", tmp_path / f"go{round_}"
        openers = [subprocess.Popen([sys.executable, "-c", OPENER, str(data), str(go)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=clean_env()) for _ in range(4)]
        go.touch()
        for process in openers:
            out, err = process.communicate(timeout=60)
            if process.returncode != 0 or out.strip() != "ok":
                failures.append(err.strip().splitlines()[-1:] or [out])
    assert failures == []


# --- damaged or emptied databases ----------------------------------------------------------

DIE_WRITING = """
import os, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from scrapers.store import Store
store = Store(Path(sys.argv[1]))
at = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
with store.transaction(started_at=at, jurisdictions=["ca"]) as writer:
    writer.finish(finished_at=at, exit_code=0, summary={})
os.kill(os.getpid(), signal.SIGKILL)  # no close: the write-ahead log stays behind
"""


def _die_writing(data: Path) -> None:
    died = subprocess.run([sys.executable, "-c", DIE_WRITING, str(data)], capture_output=True,
                          text=True, timeout=60, env=clean_env(), check=False)
    assert died.returncode == -signal.SIGKILL, died.stderr


def _fill(data: Path) -> None:
    store = Store(data)
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        for n in range(400):
            writer.add_change(detected_at=NOW, jurisdiction="ca", substance=f"s{n}",
                              source_id="ca-cdsa", kind="rescheduled", summary="x" * 200,
                              before=None, after=None)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    store.close()


def test_after_an_unclean_stop_a_healthy_database_opens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill(data)
    _die_writing(data)
    assert (data / "schedwatch.db-wal").stat().st_size > 0
    store = Store(data)
    assert len(store.runs()) == 2 and store.integrity_check() == "ok"


def test_after_an_unclean_stop_a_damaged_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill(data)
    database = data / "schedwatch.db"
    with database.open("r+b") as handle:  # scribble over pages of the changes table
        handle.seek(8 * 4096)
        handle.write(b"\x5a" * 4096 * 4)
    _die_writing(data)

    with pytest.raises(StoreError) as refused:
        Store(data)
    message = str(refused.value)
    assert message.startswith(f"the database {database} is damaged (")
    assert "schedwatch will not use it" in message
    assert "restore schedwatch.db from a backup" in message and ".recover" in message


@pytest.mark.parametrize("how", ["zero bytes", "deleted"])
def test_an_empty_database_beside_archived_documents_is_refused(tmp_path: Path,
                                                                 how: str) -> None:
    data = tmp_path / "data"
    store = Store(data)
    store.archive(b"<Statute/>")
    _fill(data)
    store.close()
    database = data / "schedwatch.db"
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    if how == "zero bytes":
        database.write_bytes(b"")
    else:
        database.unlink()

    with pytest.raises(StoreError) as refused:
        Store(data)
    assert str(refused.value).startswith(
        f"the database {database} is empty, but {data / 'documents'} holds archived "
        "documents: it was deleted, truncated or replaced")
    assert "Restore schedwatch.db from a backup" in str(refused.value)
    assert not database.exists() or database.stat().st_size == 0  # nothing baselined


def test_a_new_folder_and_an_emptied_archive_open_as_before(tmp_path: Path) -> None:
    Store(tmp_path / "fresh").close()
    data = tmp_path / "data"
    Store(data).close()
    (data / "schedwatch.db").write_bytes(b"")  # no archived document: a first run, not a loss
    assert Store(data).runs() == []


def test_a_missing_archived_copy_is_known(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    sha, path = store.archive(b"<Statute/>")
    assert store.has_document_file(sha)
    path.unlink()
    assert not store.has_document_file(sha)


# --- evidence types --------------------------------------------------------------------------

def test_justice_laws_xml_after_a_byte_order_mark_is_published_as_text() -> None:
    bom_xml = b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?><Statute/>"
    assert document_extension(None, bom_xml) == ".xml.txt"
    assert document_extension("application/octet-stream", bom_xml) == ".xml.txt"
    assert document_extension("", b"\xef\xbb\xbf  {\"a\": 1}") == ".json"
    # An HTML page stays a download, BOM or not; a stated XML type wins as before.
    assert document_extension(None, b"\xef\xbb\xbf<!DOCTYPE html><html>") == ".bin"
    assert document_extension("text/html", bom_xml) == ".bin"


def test_real_justice_laws_files_start_with_a_byte_order_mark() -> None:
    from tests.support.documents import SHARED_DOCS

    files = sorted((SHARED_DOCS / "ca").glob("*.xml")) if SHARED_DOCS.is_dir() else []
    if not files:
        pytest.skip("../shared/regulator-documents/ca is absent")
    for path in files:
        head = path.read_bytes()[:64]
        assert head.startswith(b"\xef\xbb\xbf"), path.name
        assert document_extension(None, head) == ".xml.txt", path.name
