"""The page worker: half of a publish made in a forked process, the same site either way.

Each case runs in a Python process of its own: the test process may run other threads
(left by earlier tests' servers), and the worker is forked only from a process that runs
none. A real publish of a real store (tests/support/history_store.py) is compared byte for
byte with the same publish made in one process (another thread running: no fork)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reports.site import publish
from scrapers.store import Store
from tests.support.history_store import AFTER, PUBLISHED, build, one_change_run
from tests.support.site_data import make_settings

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "fork"),
                                reason="the page worker runs only where fork and two cores "
                                       "exist")


def python(code: str, *args: str) -> str:
    """Run ``code`` in a new interpreter (no thread but its own); its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


SHARED = """
    import json, os, sys, threading, time
    from reports.page_worker import make_shared
    parent = os.getpid()
    if "--thread" in sys.argv:
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    def group(name):
        def make():
            here = os.getpid()
            if here != parent:
                {child}
            time.sleep({pause})
            return {{name: "parent" if here == parent else "child"}}
        return make
    shared = make_shared([group(name) for name in "abcd"])
    print(json.dumps({{"forked": shared.forked, "by_child": shared.by_child,
                      "manifest": shared.manifest}}))
"""


def shared(child: str = "pass", *args: str, pause: float = 0.2) -> dict[str, object]:
    return json.loads(python(SHARED.format(child=child, pause=pause), *args))  # type: ignore[no-any-return]


def test_each_group_is_made_once_by_whichever_process_is_free() -> None:
    answer = shared()
    assert answer["forked"] is True
    manifest = answer["manifest"]
    assert isinstance(manifest, dict) and sorted(manifest) == ["a", "b", "c", "d"]
    by_child = {"abcd"[i] for i in answer["by_child"]}  # type: ignore[attr-defined]
    # Four groups of equal cost, two processes: each makes some (two, unless the machine
    # is slow to start the child), and says truthfully which.
    assert 0 < len(by_child) < 4
    assert {name for name, who in manifest.items() if who == "child"} == by_child


def test_a_process_running_another_thread_forks_no_child() -> None:
    # A thread could hold a lock at the fork that the child would never see released.
    assert shared("pass", "--thread", pause=0) == {
        "forked": False, "by_child": [], "manifest": dict.fromkeys("abcd", "parent")}


@pytest.mark.parametrize("child", [
    "os.kill(here, 9)",                      # killed (out of memory, an operator)
    "raise ValueError('a template failed')",  # failed
    "return {name: 1}",                       # answered what a manifest cannot hold
    "os._exit(0)",                            # left without answering
], ids=["killed", "raised", "unreadable", "silent"])
def test_a_child_that_does_not_deliver_has_its_groups_made_here(child: str) -> None:
    assert shared(child) == {"forked": True, "by_child": [],
                             "manifest": dict.fromkeys("abcd", "parent")}


def test_a_group_failing_here_stops_the_child_and_is_raised() -> None:
    # The publish failed: the child must not go on writing into a folder that is about to
    # be removed, nor outlive the command.
    out = python("""
        import json, os, time
        from reports.page_worker import make_shared
        parent = os.getpid()
        children = []
        def group():
            # Here it fails; in the child it takes a minute, so the child takes one group
            # and this process, the other.
            if os.getpid() == parent:
                raise ValueError("a template failed")
            time.sleep(60)
            return {}
        def spy_fork(real=os.fork):
            pid = real()
            if pid:
                children.append(pid)
            return pid
        os.fork = spy_fork
        started = time.monotonic()
        try:
            make_shared([group, group])
            raised = None
        except ValueError as error:
            raised = str(error)
        try:
            os.kill(children[0], 0)
            alive = True
        except ProcessLookupError:
            alive = False
        print(json.dumps({"raised": raised, "alive": alive,
                          "seconds": time.monotonic() - started}))
    """)
    answer = json.loads(out)
    assert answer["raised"] == "a template failed"
    assert answer["alive"] is False
    assert answer["seconds"] < 30


# --- a whole publish --------------------------------------------------------------------

PUBLISH = """
    import dataclasses, json, os, sys, threading
    from datetime import datetime
    from pathlib import Path
    import reports.page_worker, reports.reference, reports.site
    from scrapers.store import Store
    from tests.support.site_data import make_settings
    folder, site, now, mode = sys.argv[1:5]
    forked = []
    def recorded(groups, real=reports.site.make_shared):
        shared = real(groups)
        forked.append(shared.forked)
        return shared
    reports.site.make_shared = recorded
    if mode == "one-process":
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    if mode == "child-dies":
        parent, real = os.getpid(), reports.reference.reference_context
        def dying(*args, **kwargs):
            if os.getpid() != parent:
                os.kill(os.getpid(), 9)
            return real(*args, **kwargs)
        reports.reference.reference_context = dying
    settings = dataclasses.replace(make_settings(Path(folder), watch="all", timezone="UTC"),
                                   site_dir=Path(site))
    store = Store(Path(folder) / "data")
    reports.site.publish(settings, store, now=datetime.fromisoformat(now))
    store.close()
    print(json.dumps(forked))
"""


def files(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*"))
            if p.is_file()}


def publish_in_process(tmp_path: Path, now: str, mode: str) -> list[bool]:
    """Publish ``tmp_path``'s store into ``tmp_path / "site"`` in a process of its own;
    whether each publish forked its worker."""
    return json.loads(python(PUBLISH, str(tmp_path), str(tmp_path / "site"), now, mode))  # type: ignore[no-any-return]


def test_a_site_made_with_the_worker_is_the_site_made_in_one_process(tmp_path: Path) -> None:
    # One site folder for every publish (the feed's id is made from it); each site is set
    # aside under another name, and put back to be published over.
    store, records = build(tmp_path)
    store.close()
    site, forked, alone = tmp_path / "site", tmp_path / "forked", tmp_path / "alone"
    first = PUBLISHED.isoformat()
    assert publish_in_process(tmp_path, first, "forked") == [True]
    site.rename(forked)
    assert publish_in_process(tmp_path, first, "one-process") == [False]
    made = files(forked)
    assert {"reference.html", "status.csv", "status.json", "index.html"} <= set(made)
    assert files(site) == made
    # The next day's run changes one record: each site published again over itself (the
    # worker copying the reference's unchanged parts from the previous one), and a full
    # rebuild in an empty folder, say the same.
    store = Store(tmp_path / "data")
    one_change_run(store, records["drug-3"])
    store.close()
    again = AFTER.isoformat()
    assert publish_in_process(tmp_path, again, "one-process") == [False]
    site.rename(alone)
    forked.rename(site)
    assert publish_in_process(tmp_path, again, "forked") == [True]
    after = files(site)
    assert after != made
    assert after == files(alone)
    shutil.rmtree(site)
    assert publish_in_process(tmp_path, again, "forked") == [True]
    assert files(site) == after


def test_a_worker_killed_mid_publish_still_gives_the_whole_site(tmp_path: Path) -> None:
    store, _ = build(tmp_path)
    settings = dataclasses.replace(make_settings(tmp_path, watch="all", timezone="UTC"),
                                   site_dir=tmp_path / "site")
    publish(settings, store, now=PUBLISHED)  # in this process (tests/conftest.py)
    store.close()
    made = files(tmp_path / "site")
    shutil.rmtree(tmp_path / "site")
    assert publish_in_process(tmp_path, PUBLISHED.isoformat(), "child-dies") == [True]
    assert files(tmp_path / "site") == made


def test_a_worker_killed_while_the_spare_is_brought_up_to_date_still_gives_the_whole_site(
        tmp_path: Path) -> None:
    """The groups a killed worker took are made again here in the spare site it was
    updating (``reports.site``): the site is the one a publish in one process makes."""
    store, records = build(tmp_path)
    settings = dataclasses.replace(make_settings(tmp_path, watch="all", timezone="UTC"),
                                   site_dir=tmp_path / "site")
    publish(settings, store, now=PUBLISHED)
    publish(settings, store, now=PUBLISHED)  # the first site is now the spare
    one_change_run(store, records["drug-3"])
    store.close()
    site, spare = tmp_path / "site", tmp_path / ".site.spare"
    assert (spare / "index.html").is_file()
    alone = tmp_path / "alone"
    shutil.copytree(site, alone, copy_function=os.link)
    shutil.copytree(spare, tmp_path / "alone.spare", copy_function=os.link)
    spare_folder = spare.stat().st_ino
    assert publish_in_process(tmp_path, AFTER.isoformat(), "child-dies") == [True]
    assert site.stat().st_ino == spare_folder  # built in the spare, not in a new folder
    killed = files(site)
    # The same day published in one process, from the same live site and spare.
    shutil.rmtree(site)
    shutil.rmtree(spare)
    alone.rename(site)
    (tmp_path / "alone.spare").rename(spare)
    assert publish_in_process(tmp_path, AFTER.isoformat(), "one-process") == [False]
    assert killed == files(site)
    assert not [p for p in site.rglob("*.partial")]
