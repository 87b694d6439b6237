"""The site's pages made by two processes: this one and a forked child, whichever is free.

A publish is CPU-bound Python (Jinja, digests, the CSV writer) and used one core; the
machine usually has two or more. Its pages fall into groups that need nothing from each
other (the reference, the status exports, the history pages, the index, the weekly
reports, …), so a child forked after the snapshot is read takes groups too, into the same
staging folder. The child starts with the snapshot (a fork copies the process: nothing is
pickled); all that comes back, through a pipe, is each of its pages' fingerprint for the
manifest.

Who makes which group is decided as they go: the group numbers wait in a pipe, and each
process reads the next one when it is free (one read of one byte takes one group, from one
process only). Listed costliest first, the groups end up split evenly whatever the day
brings: a cold publish's reference alone is most of its work, an incremental one's is not.

The child is forked only when ``scrapers.forking.fork_helps`` says so (POSIX, two cores, no
other thread running). When it cannot be forked, or fails, is killed or answers something
unreadable, this process makes the groups the child took: the site is the same, only
slower, and an error in them surfaces here as it would without a child.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from scrapers.forking import fork_helps

__all__ = ["Shared", "make_shared"]

#: One group of pages: makes them, returns each page's path → its manifest fingerprint.
Group = Callable[[], dict[str, str]]


@dataclass(frozen=True)
class Shared:
    """What ``make_shared`` did: every page's fingerprint, whether a child was forked, and
    which groups (by position) the child made."""

    manifest: dict[str, str]
    forked: bool
    by_child: tuple[int, ...]


def make_shared(groups: Sequence[Group]) -> Shared:
    """Every group made once, by this process or by a forked child; their manifests merged.
    An exception from a group made here stops the child and propagates."""
    if not groups or len(groups) > 255 or not fork_helps():
        return Shared(_make_all(groups, range(len(groups))), False, ())
    queue_read, queue_write = os.pipe()
    answer_read, answer_write = os.pipe()
    os.write(queue_write, bytes(range(len(groups))))
    os.close(queue_write)  # the queue holds every group: an empty read is the end of it
    os.set_blocking(queue_read, False)
    try:
        pid = os.fork()
    except OSError:  # no process to be had (a limit): all made here
        for fd in (queue_read, answer_read, answer_write):
            os.close(fd)
        return Shared(_make_all(groups, range(len(groups))), False, ())
    if pid == 0:  # the child: take groups, answer, and leave without unwinding
        os.close(answer_read)
        _serve(groups, queue_read, answer_write)
    os.close(answer_write)
    waited = False
    try:
        here = {}
        for index in _taken(queue_read):
            here[index] = groups[index]()
        with os.fdopen(answer_read, "rb") as pipe:
            answer_read = -1
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        waited = True
    finally:
        os.close(queue_read)
        if answer_read >= 0:
            os.close(answer_read)
        if not waited:  # a group made here failed: the child must not go on writing
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    answer = _decode(payload, len(groups)) if os.waitstatus_to_exitcode(status) == 0 else None
    if answer is None or set(answer) | set(here) != set(range(len(groups))):
        # The child failed, died or said something else: whatever it took, it may have left
        # unfinished, so every group not made here is made here (a file it wrote is
        # opened for writing again, so what it wrote is replaced).
        answer = {}
        missing = [i for i in range(len(groups)) if i not in here]
        here.update(zip(missing, (groups[i]() for i in missing), strict=True))
    manifest: dict[str, str] = {}
    for part in (*here.values(), *answer.values()):
        manifest.update(part)
    return Shared(manifest, True, tuple(sorted(answer)))


def _make_all(groups: Sequence[Group], indexes: Sequence[int]) -> dict[str, str]:
    manifest: dict[str, str] = {}
    for index in indexes:
        manifest.update(groups[index]())
    return manifest


def _taken(queue: int) -> Iterator[int]:
    """The groups this process takes, one at a time, until the queue is empty."""
    while True:
        try:
            byte = os.read(queue, 1)
        except BlockingIOError:
            return
        if not byte:
            return
        yield byte[0]


def _serve(groups: Sequence[Group], queue: int, answer: int) -> None:
    """In the child: never returns. ``os._exit`` skips the parent's ``finally`` blocks and
    exit handlers, which would otherwise run twice (removing the staging folder, closing
    the store's connection under the parent's feet, flushing its buffered output again)."""
    code = 1
    try:
        made = {str(index): groups[index]() for index in _taken(queue)}
        with os.fdopen(answer, "wb") as pipe:
            pipe.write(json.dumps(made).encode("utf-8"))
        code = 0
    except BaseException:  # noqa: BLE001, S110 - the parent makes its groups and reports it
        pass
    finally:
        os._exit(code)


def _decode(payload: bytes, count: int) -> dict[int, dict[str, str]] | None:
    """The child's answer: group position → its pages' fingerprints; None if malformed."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    decoded: dict[int, dict[str, str]] = {}
    for key, pages in answer.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < count
                and isinstance(pages, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in pages.items())):
            return None
        decoded[int(key)] = pages
    return decoded
