"""The row digests the site's fingerprints are made of, kept between publishes.

Every publish reads every interval and every change, and its fingerprints name each by a
digest of its stored row: an interval by its record's text (``StatusInterval.record_digest``),
a change by every column (``StoredChange.row_digest``). Making them was sha256 over ~12 MB
of text on twenty years of history, on every publish, for rows that are seldom rewritten:
schedwatch only adds changes, and rewrites intervals' records only in a backfill or for a
replaced Poisons Standard (the instrument of every entry). So the
digests are kept in ``<data_dir>/cache/site/row-digests`` by row id, with the counts of
rewrites the store's own triggers had made when they were kept (``Store.revisions``,
``scrapers.schema.REVISED``). A publish takes a kept digest only while its kind's count is
the same (no row of that kind rewritten or removed since, by schedwatch or by hand), and
makes the digest of every row it holds none for: a new one.

Two more guards, against a store that is not the one the digests were kept from (a data
folder whose database was restored from a backup, or swapped):

- the row with the highest id kept (the anchor) is digested again on every publish and must
  give the kept digest. A restored store lacks that row, or holds another under its id once
  runs have added more; then every digest of that kind is made again.
- a store without the counts (made before them, or with a trigger dropped) is trusted with
  nothing; a trigger made again moves its count (``scrapers.schema``), so what was written
  while it was missing is not trusted either.

The file holds only data (``reports.kept``) and is tagged with the site's code version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports import kept

#: Bump when the file's shape changes.
_SHAPE = 1
FILE = kept.FOLDER / "row-digests"
#: The kinds of digest kept, by their count's name in ``revisions``.
INTERVALS = "status.record"
CHANGES = "changes"


@dataclass(frozen=True)
class Trusted:
    """The kept digests of one kind of row that a publish may take: ``known`` (by row id),
    and the anchor, the highest id kept, whose digest is made again to confirm them."""

    known: Mapping[int, str] = field(default_factory=dict)
    anchor: int | None = None
    anchor_digest: str = ""

    def confirmed(self, made: Mapping[int, str]) -> bool:
        """Whether the rows read are those the digests were kept from: the anchor's digest,
        made again (``made``, by row id), is the kept one."""
        return self.anchor is None or made.get(self.anchor) == self.anchor_digest


NOTHING = Trusted()


@dataclass(frozen=True)
class Carried:
    """What the last publish kept (its counts and digests by kind), as read."""

    revisions: Mapping[str, int]
    digests: Mapping[str, Mapping[int, str]]

    def trusted(self, kind: str, revisions: Mapping[str, int]) -> Trusted:
        """The kept digests of ``kind`` a publish reading a store with ``revisions`` may
        take: none unless both counts are known and the same."""
        count = revisions.get(kind)
        held = self.digests.get(kind)
        if count is None or self.revisions.get(kind) != count or not held:
            return NOTHING
        anchor = max(held)
        return Trusted(known={row: digest for row, digest in held.items() if row != anchor},
                       anchor=anchor, anchor_digest=held[anchor])


NONE_KEPT = Carried(revisions={}, digests={})


def load(data_dir: Path | None, version: str) -> Carried:
    """What the last publish kept under this ``version``; nothing when there is none of
    this shape (the digests are then all made)."""
    found = kept.load(None if data_dir is None else data_dir / FILE, _tag(version))
    if not (type(found) is tuple and len(found) == 2 and type(found[0]) is dict
            and type(found[1]) is dict):
        return NONE_KEPT
    revisions, digests = found
    if not (kept.only(revisions, str) and kept.only(revisions.values(), int)
            and kept.only(digests, str) and kept.only(digests.values(), dict)
            and all(kept.only(held, int) and kept.only(held.values(), str)
                    for held in digests.values())):
        return NONE_KEPT
    return Carried(revisions=revisions, digests=digests)


def by_id(rows: Iterable[Any], attribute: str) -> dict[int, str]:
    """Each row's digest (its ``attribute``) by its id: what ``save`` keeps."""
    return {row.id: getattr(row, attribute) for row in rows}


def save(data_dir: Path | None, version: str, previous: Carried,
         revisions: Mapping[str, int], digests: Mapping[str, Mapping[int, str]]) -> None:
    """Keep the digests read by this publish for the next, with the store's counts; left
    as it is when that is what it holds, and not written for a store without counts (the
    next publish could not trust it)."""
    counts = {kind: revisions[kind] for kind in digests if kind in revisions}
    if data_dir is None or len(counts) != len(digests):
        return
    if previous.revisions == counts and previous.digests == digests:
        return
    kept.save(data_dir / FILE, _tag(version), (counts, {k: dict(v) for k, v in digests.items()}))


def _tag(version: str) -> str:
    return f"{_SHAPE}\0{version}"
