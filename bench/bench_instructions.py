"""Instructions executed (valgrind's callgrind) by the commands whose wall time drifts with
the machine: the reading commands and the incremental publish on the ten-year store.

    .venv/bin/python bench/bench_instructions.py                  # this tree
    .venv/bin/python bench/bench_instructions.py --against HEAD~3 # and another version
    .venv/bin/python bench/bench_instructions.py --full-rebuild   # and a whole new site
    .venv/bin/python bench/bench_instructions.py --lengths 5,20   # the publish per length
    .venv/bin/python bench/bench_instructions.py --lengths 5,20 --steady  # same substances

Wall time on this machine drifts by up to a factor of two within a day, and a change worth
5 % cannot be told from that drift even by alternating runs. The same code on the same input
executes the same instructions, run after run, whatever else the machine does: this prints
that count per case, and with ``--against REV`` the count of that version (checked out with
``git worktree`` beside this one) in the same table. With ``--lengths``, the incremental
publish after a one-change run on the store of each history length (bench_history.py's
generator) and its growth per year of history: issue 18's "whatever its length" as a
figure that does not drift; with ``--steady``, on histories whose substances are the same
at every length, where the one-change day rightly rewrites the same pages whatever the
length (bench_history.py's docstring says why both). It is a count of CPU work, not of time:
it leaves out waiting, page faults and the cost of memory traffic, and it may overweight
hashing (under valgrind OpenSSL may not use the CPU's SHA instructions), so a change is
confirmed here and its wall time measured in the other benchmarks. Each case runs once to
compile the bytecode, then once under callgrind (about 50 times slower than normal: ~5
minutes a version). The publish is made in one process (no page worker): a forked child
would count the instructions of the process it was forked from as well.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_history import (  # noqa: E402
    POPULATIONS,
    _lengths,
    _slope,
    copy_site,
    ensure_history,
    spare_of,
)
from common import PYTHON, ROOT, child_environment, emit_json  # noqa: E402

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
#: Runs the command line in this process, with the version of the code given first: the
#: console script would import the installed (editable) tree, whatever PYTHONPATH says.
_CLI = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from scheduler.cli import console_main; console_main()")
#: One ``reports.site.publish`` of a prepared workspace, without the page worker.
_PUBLISH = """
import sys
sys.path.insert(0, sys.argv[1])
from datetime import datetime
from pathlib import Path
import reports.page_worker
reports.page_worker.fork_helps = lambda: False
from reports.settings import Settings
from reports.site import publish
from scrapers.store import Store
work = Path(sys.argv[2])
store = Store(work / "data")
publish(Settings(data_dir=work / "data", site_dir=work / "site", watch="all"), store,
        now=datetime.fromisoformat(sys.argv[3]))
store.close()
"""
#: The workspace of the publish case, made by the version measured (its pages carry its
#: own fingerprints): the ten-year site (and its spare), then a run that changes one
#: thing.
_PREPARE = """
import sys
code, bench, work, published, run_at = sys.argv[1:6]
sys.path.insert(0, bench)
import bench_history
from pathlib import Path
from datetime import datetime
bench_history.ROOT = Path(code)
bench_history.publish_daily(Path(work), datetime.fromisoformat(published))
print(bench_history.one_change_run(Path(work), datetime.fromisoformat(run_at)))
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", default=None,
                        help="also count a git revision of this repository (e.g. HEAD~1)")
    parser.add_argument("--full-rebuild", action="store_true",
                        help="also count the publish of the whole site with no previous one "
                             "(~5 more minutes a version): what rendering every page costs")
    parser.add_argument("--lengths", type=_lengths, default=None, metavar="YEARS,YEARS",
                        help="only the incremental publish, on the store of each history "
                             "length (e.g. 5,20), and its growth per year")
    parser.add_argument("--steady", action="store_true",
                        help="with --lengths: histories of the same substances at every "
                             "length (events move the same few entries, never add or "
                             "remove one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench_instructions: valgrind is not installed (apt-get install valgrind)",
              file=sys.stderr)
        return 2
    if args.lengths:
        return _by_length(valgrind, args.lengths, args.against, args.json, args.steady)
    folder, info = ensure_history()
    last = datetime.fromisoformat(info["last_day"]).replace(tzinfo=UTC)
    config = folder / "schedwatch.toml"
    as_of = (last - timedelta(days=1)).date().isoformat()
    cases = [("status", ["status"]), ("status --format json", ["status", "--format", "json"]),
             ("status --format csv", ["status", "--format", "csv"]),
             (f"status --as-of {as_of}", ["status", "--as-of", as_of])]
    with _trees(args.against) as (place, trees):
        counts = {label: _count_tree(valgrind, tree, config, cases, folder, last,
                                     place / f"work-{index}", args.full_rebuild)
                  for index, (label, tree) in enumerate(trees)}
    publishes = [INCREMENTAL] + ([FULL] if args.full_rebuild else [])
    rows = _print(counts, [label for label, _ in cases] + publishes,
                  [label for label, _ in trees])
    emit_json(args.json, rows)
    return 0


FULL = "full rebuild (no previous site)"
INCREMENTAL = "incremental publish, one change"


@contextlib.contextmanager
def _trees(against: str | None) -> Iterator[tuple[Path, list[tuple[str, Path]]]]:
    """A scratch folder and the versions measured: this tree and, with ``against``, that
    revision checked out in the scratch folder (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="schedwatch-instructions-") as scratch:
        place = Path(scratch)
        trees = [("this tree", ROOT)]
        if against:
            other = place / "against"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                            str(other), against], check=True)
            trees.append((against, other))
        try:
            yield place, trees
        finally:
            if against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(other)], check=False)


def _by_length(valgrind: str, lengths: Sequence[int], against: str | None,
               json_path: str | None, steady: bool = False) -> int:
    """The incremental publish after a one-change run on each length's store, per version;
    then its growth per year (the least-squares slope) against issue 18's "whatever its
    length": the longest history may cost 5 % more than the shortest, as in
    bench_history.py's timed verdict. With ``steady``, on histories of the same substances
    at every length."""
    stores = {years: ensure_history(years, steady=steady) for years in lengths}
    with _trees(against) as (place, trees):
        counts = {label: [_count_publish(valgrind, tree, stores[years][0], _last_day(
            stores[years][1]), place / f"work-{index}-{years}", of=f"{years} years")[
            INCREMENTAL] for years in lengths] for index, (label, tree) in enumerate(trees)}
    population = POPULATIONS[steady]
    print("\nInstructions executed by the incremental publish after a one-change run "
          f"({population}; callgrind; watch = \"all\"; one run each)")
    print(f"{'version':16}" + "".join(f"{str(y) + ' y':>12}" for y in lengths)
          + f"{'per year':>12}  target")
    rows: list[dict[str, object]] = []
    for label, values in counts.items():
        slope = _slope(lengths, values)
        grows = slope * (lengths[-1] - lengths[0]) > 0.05 * values[0]
        outcome = "MISSED" if grows else "ok"
        print(f"{label:16}" + "".join(f"{v / 1e9:10.3f} G" for v in values)
              + f"{slope / 1e6:9.0f} M   no growth with the history {outcome}")
        rows.append({"benchmark": f"instructions against the history's length, {population}",
                     "case": f"{INCREMENTAL} ({label})",
                     "note": " / ".join(f"{v / 1e9:.3f} G" for v in values)
                     + f" on {' / '.join(map(str, lengths))} years; {slope / 1e6:.0f} M a year",
                     "target": "no growth with the history", "verdict": outcome})
    emit_json(json_path, rows)
    return 0


def _last_day(info: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(info["last_day"])).replace(tzinfo=UTC)


def _count_tree(valgrind: str, tree: Path, config: Path, cases: list[tuple[str, list[str]]],
                folder: Path, last: datetime, work: Path, full: bool = False
                ) -> dict[str, int]:
    place = work.parent
    counts: dict[str, int] = {}
    for label, arguments in cases:
        command = [PYTHON, "-c", _CLI, str(tree), "--config", str(config), *arguments]
        counts[label] = _instructions(valgrind, command, place)
        print(f"  {tree}: {label}: {counts[label] / 1e9:.3f} G", flush=True)
    return {**counts, **_count_publish(valgrind, tree, folder, last, work, full)}


def _count_publish(valgrind: str, tree: Path, folder: Path, last: datetime, work: Path,
                   full: bool = False, of: str = "ten years") -> dict[str, int]:
    """The incremental publish after a one-change run on a copy of the store in
    ``folder`` (``of``: its history's length, as printed), and, with ``full``, the whole
    site made with no previous one."""
    place = work.parent
    counts: dict[str, int] = {}
    shutil.copytree(folder / "data", work / "data")
    run_at = last + timedelta(days=1, hours=6)
    subprocess.run([PYTHON, "-c", _PREPARE, str(tree), str(ROOT / "bench"), str(work),
                    (last + timedelta(hours=12)).isoformat(), run_at.isoformat()],
                   check=True, cwd=place, env=child_environment(), stdout=subprocess.DEVNULL)
    baseline = work / "site.baseline"
    copy_site(work / "site", baseline)
    # What the last publish kept for the next (reports.kept): put back before each run, as
    # bench_history's rig does, so that the counted run finds what the run compiling its
    # bytecode found, not what that run kept of the day's change.
    sys.path.insert(0, str(ROOT))
    from reports.kept import FOLDER as KEPT

    kept, kept_baseline = work / "data" / KEPT, work / "kept.baseline"
    if kept.is_dir():
        shutil.copytree(kept, kept_baseline)
    moment = (run_at + timedelta(minutes=1)).isoformat()

    def fresh_site() -> None:
        shutil.rmtree(work / "site", ignore_errors=True)
        shutil.rmtree(spare_of(work / "site"), ignore_errors=True)
        copy_site(baseline, work / "site")
        shutil.rmtree(kept, ignore_errors=True)
        if kept_baseline.is_dir():
            shutil.copytree(kept_baseline, kept)

    command = [PYTHON, "-c", _PUBLISH, str(tree), str(work), moment]
    counts[INCREMENTAL] = _instructions(valgrind, command, place, before=fresh_site)
    print(f"  {tree}: {INCREMENTAL} ({of}): {counts[INCREMENTAL] / 1e9:.3f} G", flush=True)
    if full:
        def no_site() -> None:
            shutil.rmtree(work / "site", ignore_errors=True)
            shutil.rmtree(spare_of(work / "site"), ignore_errors=True)

        counts[FULL] = _instructions(valgrind, command, place, before=no_site)
    shutil.rmtree(work, ignore_errors=True)
    return counts


def _instructions(valgrind: str, command: list[str], place: Path,
                  before: Callable[[], None] | None = None) -> int:
    """The instructions ``command`` executes, after one run that compiles its bytecode. Run
    from a scratch folder: the current folder comes first on ``sys.path`` and must not be
    either tree. With one hash seed: a text's hash decides the order of a set and how a
    dictionary's keys collide, and so how much work sorting and looking them up take —
    ±0.2 % from one run to the next under random seeds, as much as the changes counted."""
    for measured in (False, True):
        if before is not None:
            before()
        prefix = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"] \
            if measured else []
        done = subprocess.run([*prefix, *command], cwd=place,
                              env=child_environment({"PYTHONHASHSEED": "0"}),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise SystemExit(f"bench_instructions: {' '.join(command[-3:])} failed: {tail}")
    found = _REFS.findall(done.stderr.decode("utf-8", "replace"))
    if len(found) != 1:
        raise SystemExit(f"bench_instructions: no single instruction count in valgrind's "
                         f"report ({len(found)} found)")
    return int(found[0].replace(",", ""))


def _print(counts: dict[str, dict[str, int]], cases: list[str], trees: list[str]
           ) -> list[dict[str, object]]:
    print("\nInstructions executed (callgrind; ten-year watch = \"all\" store; one run each)")
    head = f"{'case':44}" + "".join(f"{name:>16}" for name in trees)
    print(head + ("  change" if len(trees) == 2 else ""))
    rows: list[dict[str, object]] = []
    for case in cases:
        values = [counts[name][case] for name in trees]
        line = f"{case:44}" + "".join(f"{v / 1e9:14.3f} G" for v in values)
        row: dict[str, object] = {"benchmark": "instructions", "case": case,
                                  **{name: values[i] for i, name in enumerate(trees)}}
        if len(values) == 2 and values[1]:
            change = (values[0] - values[1]) / values[1]
            line += f"  {change:+.1%}"
            row["change"] = round(change, 4)
        print(line)
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
