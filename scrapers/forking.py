"""When this process may fork a helper that does part of its work on another core.

Forking copies the whole process, so the child starts with everything the parent holds (a
document to parse, the site's snapshot) and nothing has to be pickled across. It is safe
only from a process that runs no other thread: a thread that holds a lock at the moment of
the fork (logging's, the allocator's, a database driver's) leaves it held for ever in the
child, which then hangs. The scheduler daemon's job threads and a test's servers are such
threads; those processes do the work themselves, the same, only slower.
"""

from __future__ import annotations

import os
import threading

__all__ = ["alone", "fork_helps"]


def alone() -> bool:
    """Whether this process runs no other thread (the only state it is safe to fork in)."""
    return threading.active_count() == 1


def fork_helps() -> bool:
    """Whether a forked helper can run beside this process: ``fork`` exists (POSIX), there
    is a second core for it, and no other thread runs here."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2 and alone()
