"""Fetching the sources of one run: one worker per host, one host's requests serial.

The sources of a run live on a handful of hosts (laws-lois.justice.gc.ca, www.ecfr.gov,
www.federalregister.gov, api.prod.legislation.gov.au …). Waiting on each in turn made a
run's wall time the sum of every round trip; here each host gets its own worker and its own
``HttpFetcher`` (its own session, robots.txt and politeness interval), so the run waits for
the slowest host instead. Sources on one host stay in one worker, in their registry order,
so that the per-host interval and robots.txt ``Crawl-delay`` hold as before.

A fetcher given by the caller (tests, the fault harness) is used for every source in turn:
it is one object and must not be shared between threads.

The threads share one core (parsing holds the GIL). The longest parse of a run, the
Poisons Standard's (every paragraph of a ~10 MB Word XML, ~0.8 s at realistic size), runs
in a worker process on the second core instead (``ParseWorker``), while the other sources
are fetched and parsed here — on a run where another source parses for sure (a first run,
a source whose last check failed, a changed watch list). On a warm day the Standard is
rarely new, and when it is nothing else parses beside it: the worker would only cost its
fork.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from jurisdictions.base import Source
from jurisdictions.substances import WatchList
from scrapers.errors import ExtractionError
from scrapers.forking import fork_helps
from scrapers.records import Document, ParseResult

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["PARSE_IN_WORKER", "ParseWorker", "ParserCrashed", "by_host", "fetch_sources"]

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


# --- the parse of the Poisons Standard, on the second core --------------------------------

#: The sources whose parse runs in the worker process. One: the Standard's parse takes about
#: as long as all the others together, so one worker balances the two cores (measured:
#: bench/bench_cold_all.py).
PARSE_IN_WORKER = frozenset({"au-poisons-standard"})


class ParserCrashed(Exception):
    """The parser raised something other than ``ExtractionError`` in the worker; ``kind`` is
    the name of its type (the one-line failure names it, as for a parse done here)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _parse_there(parse: Callable[[Document, WatchList], ParseResult], document: Document,
                 watch: WatchList) -> tuple[str, Any]:
    """In the worker: the parse, its failure as data (an exception need not pickle)."""
    try:
        return "ok", parse(document, watch)
    except ExtractionError as error:
        return "extraction", str(error)
    except Exception as error:  # noqa: BLE001 - reported by its type, as in process_source
        return "crash", type(error).__name__


class ParseWorker:
    """One worker process for the parses of ``PARSE_IN_WORKER``; every other parse, and all
    of them when a worker cannot help or cannot be had, runs in the calling thread.

    The worker is forked when the run starts, before the fetch threads exist (forking a
    process while another thread holds a lock can deadlock the child), so it also sees the
    process as the run found it. Only where ``fork`` exists (Linux), from a process with
    no other thread running, with two cores or more, for a run of several sources of which
    one is listed and its parser can be named across processes (a module function, not a
    test's closure), and when another parse is expected ``beside`` it (the caller knows:
    a source with no document it can trust parses for sure, ``pipeline.parses_for_sure``;
    with nothing else to parse the worker saves nothing). A worker that dies makes the
    parse run here instead: the outcome is the same, only slower."""

    def __init__(self, sources: Sequence[Source], *, beside: bool = True) -> None:
        self._ids = frozenset(s.id for s in sources
                              if s.id in PARSE_IN_WORKER and _named(s.parse))
        self._pool: ProcessPoolExecutor | None = None
        if not self._ids or len(sources) < 2 or not beside or not fork_helps():
            # Not without fork or a second core, nor from a process that already runs
            # threads (the scheduler daemon's job pool, a test's servers): one of them may
            # hold a lock the child would inherit held; nor with nothing to parse beside
            # it. The parse then runs here, the same.
            return
        # Imported here: a run that starts no worker (``run -j ca``, a warm day) does not
        # pay for them.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with contextlib.suppress(OSError, ValueError):  # no semaphores, no processes here
            pool = ProcessPoolExecutor(max_workers=1,
                                       mp_context=multiprocessing.get_context("fork"))
            pool.submit(int)  # forks now (a fork context starts its processes at once)
            self._pool = pool

    def parse(self, source: Source, document: Document, watch: WatchList) -> ParseResult:
        """``source.parse(document, watch)``, here or in the worker: the same result, or
        the same ``ExtractionError``; any other failure of the parser in the worker is
        raised as ``ParserCrashed`` naming its type."""
        if self._pool is None or source.id not in self._ids:
            return source.parse(document, watch)
        import pickle
        from concurrent.futures.process import BrokenProcessPool

        try:
            kind, value = self._pool.submit(_parse_there, source.parse, document,
                                            watch).result()
        except (BrokenProcessPool, RuntimeError, pickle.PicklingError):
            return source.parse(document, watch)  # the worker is gone (killed, out of memory)
        if kind == "extraction":
            raise ExtractionError(value)
        if kind == "crash":
            raise ParserCrashed(value)
        assert isinstance(value, ParseResult)
        return value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ParseWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(parse: Callable[..., Any]) -> bool:
    """The parser pickles by name (a module-level function the worker finds as it is)."""
    import pickle

    try:
        pickle.dumps(parse)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True
