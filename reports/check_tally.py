"""The fetch log as the weekly reports count it — each week's checks of each source, its
failures and their errors, each source's healthy fetch times — kept between publishes and
brought up to date with the fetches written since (``tallied``). Pure but for ``load`` and
``save`` (the data folder's cache, ``reports.kept``).

Every publish used to read the whole log and place each fetch in its week: twenty years of
daily checks are 36,500 rows, a cost that grew with the history's length. The log is only
appended to (no fetch row is rewritten or deleted), so the tally of its rows up to some id,
taken in id order and continued with the rows after that id in id order, is the tally of
the whole log. A source's healthy fetch times are held sorted, as one text a line each
(``reports.sorted_lines``): twenty years of them are 36,500, loaded, saved and read again by
every publish. On PostgreSQL ids come from a sequence when a row is inserted and
transactions commit in any order: a row with a lower id can become visible after one with a
higher id was read. So a kept tally also holds how many rows it counted and the identity of
the last (``mark``), and is continued only while the store holds exactly that many rows up
to that id, that one the same (``Store.check_log_mark``); otherwise it is made again from
the whole log. The same check refuses a tally of another database (one restored from a
backup, another store URL). The weeks are the reader's zone's: a tally is of one zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reports import kept, sorted_lines
from reports.sorted_lines import Lines
from reports.weeks import week_finder

#: Outcomes of a fetch that count as a healthy check of its source, and as a failed one.
HEALTHY_OUTCOMES = frozenset({"fetched", "not_modified", "unchanged"})
FAILED_OUTCOMES = frozenset({"failed", "extraction_failed"})
KEPT_FILE = kept.FOLDER / "check-tally"
#: Bump when what a kept tally holds, or how a row is counted, changes.
_SHAPE = 2
#: What a tally counted: its last id, how many fetches have an id up to it, and that
#: fetch's source, start and outcome (None: the store holds no such fetch).
Mark = tuple[int, int, tuple[str, str, str] | None]


@dataclass(frozen=True)
class CheckTally:
    """The tally of the fetch log up to ``last_id`` in the weeks of ``zone``."""

    zone: str = ""  # "": no fetch counted, in no zone
    last_id: int = 0
    rows: int = 0  # how many fetches have an id up to last_id
    last_row: tuple[str, str, str] | None = None  # (source, start, outcome) of last_id
    #: (week, source) → its fetches that week.
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (week, source) → error text → how many of its failed fetches that week said so,
    #: in the order the week first met each (the report lists the five most frequent;
    #: ties in that order).
    errors: Mapping[tuple[str, str], Mapping[str, int]] = field(default_factory=dict)
    #: source → the starts of its healthy fetches, sorted, one a line (``sorted_lines``).
    healthy: Mapping[str, str] = field(default_factory=dict)
    #: Every source the log names, first seen first.
    sources: Sequence[str] = ()

    @property
    def mark(self) -> Mark:
        return self.last_id, self.rows, self.last_row

    def checks_by_week(self) -> dict[str, dict[str, tuple[int, int, tuple[tuple[str, int],
                                                                          ...]]]]:
        """week → source → (checks, failures, its five commonest errors with their
        counts)."""
        found: dict[str, dict[str, tuple[int, int, tuple[tuple[str, int], ...]]]] = {}
        for key, count in self.counts.items():
            errors = self.errors.get(key)
            # Most weeks of a source have no failure: nothing to add up or sort.
            found.setdefault(key[0], {})[key[1]] = (count, 0, ()) if not errors else (
                count, sum(errors.values()),
                tuple(sorted(errors.items(), key=lambda item: -item[1])[:5]))
        return found

    def healthy_times(self) -> dict[str, Lines]:
        """source → the starts of its healthy fetches, sorted."""
        return {source: Lines(times) for source, times in self.healthy.items()}


def tallied(previous: CheckTally | None, rows: Sequence[Mapping[str, Any]],
            reader_zone: ZoneInfo) -> CheckTally:
    """``previous`` (the tally of the log up to its ``last_id``; None: nothing counted)
    continued with ``rows``, the fetches after it in id order (each with its ``id``,
    ``source_id``, ``started_at``, ``outcome`` and ``error``). ``previous`` is not changed."""
    if previous is None or not previous.rows:
        previous = CheckTally(zone=reader_zone.key)
    if previous.zone != reader_zone.key:
        raise ValueError(f"a tally of the weeks of {previous.zone} continued in "
                         f"{reader_zone.key}")
    if not rows:
        return previous
    starts = [str(row["started_at"]) for row in rows]
    weeks = week_finder(starts, reader_zone).weeks_of(starts)
    counts = dict(previous.counts)
    errors = dict(previous.errors)
    added: dict[str, list[str]] = {}  # source → the starts of its new healthy fetches
    sources = dict.fromkeys(previous.sources)
    # The inner dicts this call made its own (``previous`` shares the others).
    own_errors: set[tuple[str, str]] = set()
    for row, week, at in zip(rows, weeks, starts, strict=True):
        source = str(row["source_id"])
        sources.setdefault(source)
        key = (week, source)
        counts[key] = counts.get(key, 0) + 1
        outcome = row["outcome"]
        if outcome in HEALTHY_OUTCOMES:
            added.setdefault(source, []).append(at)
        elif outcome in FAILED_OUTCOMES:
            if key not in own_errors:
                errors[key] = dict(errors.get(key, {}))
                own_errors.add(key)
            text = str(row.get("error") or outcome)
            week_errors = errors[key]
            week_errors[text] = week_errors.get(text, 0) + 1  # type: ignore[index]
    healthy = {**previous.healthy, **{
        source: sorted_lines.with_added(previous.healthy.get(source, ""), times)
        for source, times in added.items()}}
    last = rows[-1]
    return CheckTally(
        zone=reader_zone.key, last_id=int(last["id"]), rows=previous.rows + len(rows),
        last_row=(str(last["source_id"]), str(last["started_at"]), str(last["outcome"])),
        counts=counts, errors=errors, healthy=healthy, sources=tuple(sources))


def load(data_dir: Path, version: str, reader_zone: ZoneInfo) -> CheckTally | None:
    """The tally the last publish kept (made by this ``version`` of the code, in this
    zone), or None."""
    data = kept.load(data_dir / KEPT_FILE, _tag(version, reader_zone))
    if not (type(data) is tuple and len(data) == 7):
        return None
    last_id, rows, last_row, counts, errors, healthy, sources = data
    # Checked by the types of whole collections at a time (``kept.only``), not value by
    # value: twenty years of daily fetches are tens of thousands of them, every publish.
    if not (type(last_id) is int and type(rows) is int and rows > 0 and _is_row(last_row)
            and type(counts) is dict and _are_keys(counts)
            and kept.only(counts.values(), int)
            and type(errors) is dict and _are_keys(errors)
            and kept.only(errors.values(), dict)
            and all(kept.only(v, str) and kept.only(v.values(), int)
                    for v in errors.values())
            and type(healthy) is dict and kept.only(healthy, str)
            and kept.only(healthy.values(), str)
            and type(sources) is tuple and kept.only(sources, str)):
        return None
    return CheckTally(zone=reader_zone.key, last_id=last_id, rows=rows, last_row=last_row,
                      counts=counts, errors=errors, healthy=healthy, sources=sources)


def save(data_dir: Path, version: str, tally: CheckTally) -> None:
    """Keep ``tally`` for the next publish (left as it was when it cannot be written)."""
    if not tally.rows:
        return
    kept.save(data_dir / KEPT_FILE, _tag(version, ZoneInfo(tally.zone)),
              (tally.last_id, tally.rows, tally.last_row,
               dict(tally.counts),
               {key: dict(value) for key, value in tally.errors.items()},
               dict(tally.healthy),
               tuple(tally.sources)))


def _tag(version: str, reader_zone: ZoneInfo) -> str:
    return f"{_SHAPE}\0{version}\0{reader_zone.key}"


def _are_keys(keys: Iterable[Any]) -> bool:
    """Whether every one of ``keys`` is a (week, source) pair of text."""
    return kept.tuples(keys, 2, {str})


def _is_row(value: Any) -> bool:
    return type(value) is tuple and len(value) == 3 and all(type(v) is str for v in value)
