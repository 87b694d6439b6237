"""schedwatch's version, read once from the installed package's metadata."""

from __future__ import annotations

from functools import cache


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("schedwatch")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"
