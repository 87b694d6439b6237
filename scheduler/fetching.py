"""Fetching the sources of one run: one worker per host, one host's requests serial.

The sources of a run live on a handful of hosts (laws-lois.justice.gc.ca, www.ecfr.gov,
www.federalregister.gov, api.prod.legislation.gov.au …). Waiting on each in turn made a
run's wall time the sum of every round trip; here each host gets its own worker and its own
``HttpFetcher`` (its own session, robots.txt and politeness interval), so the run waits for
the slowest host instead. Sources on one host stay in one worker, in their registry order,
so that the per-host interval and robots.txt ``Crawl-delay`` hold as before.

A fetcher given by the caller (tests, the fault harness) is used for every source in turn:
it is one object and must not be shared between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from jurisdictions.base import Source

__all__ = ["by_host", "fetch_sources"]

T = TypeVar("T")


def by_host(sources: Sequence[Source]) -> list[list[int]]:
    """Indexes of ``sources`` grouped by the host of their main URL, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        parts = urlsplit(source.url)
        groups.setdefault(f"{parts.scheme}://{(parts.netloc or '').lower()}", []).append(index)
    return list(groups.values())


def fetch_sources(sources: Sequence[Source], work: Callable[[Source, Any], T], *,
                  make_fetcher: Callable[[], Any], fetcher: Any = None,
                  max_workers: int = 8) -> list[T]:
    """``work(source, fetcher)`` for every source, results in the order of ``sources``.

    With ``fetcher`` given, or one host only, or ``max_workers`` 1: in turn, on one fetcher.
    Otherwise one worker per host (at most ``max_workers`` at once), each with its own
    fetcher from ``make_fetcher``, closed when its host is done. An exception from ``work``
    (it reports a source's own failures as outcomes, so only an internal error) is raised
    once every worker has finished."""
    groups = by_host(sources)
    if fetcher is not None:
        return [work(source, fetcher) for source in sources]
    if len(groups) <= 1 or max_workers <= 1:
        own = make_fetcher()
        try:
            return [work(source, own) for source in sources]
        finally:
            own.close()
    results: list[Any] = [None] * len(sources)

    def one_host(indexes: list[int]) -> None:
        own = make_fetcher()
        try:
            for index in indexes:
                results[index] = work(sources[index], own)
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=min(max_workers, len(groups)),
                            thread_name_prefix="schedwatch-fetch") as pool:
        futures = [pool.submit(one_host, indexes) for indexes in groups]
    for future in futures:
        future.result()
    return results
