"""Crash points for the reliability tests: ``SCHEDWATCH_CRASH_AT=<point>`` makes the process
kill itself with SIGKILL when it reaches that point, so the tests can prove that a crash at
any step loses and duplicates nothing. Unset (always, outside those tests) it does nothing."""

from __future__ import annotations

import os
import signal

POINTS = ("fetched", "archived", "status_written", "changes_written", "before_commit",
          "email_accepted")


def checkpoint(point: str) -> None:
    if os.environ.get("SCHEDWATCH_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
