"""``make demo``: schedwatch at work before the network is — the project's own test fixtures
of all three jurisdictions served on 127.0.0.1, a baseline run, then a run with a change.

The fixtures (``tests/fixtures/ca``, ``us``, ``au``) are constructed documents in the
regulators' formats, not the law (``tests/fixtures/README.md`` says what is real in each).
The second cycle serves two of them changed in memory: the eCFR's Part 1308 with ketamine
moved from § 1308.13 (Schedule III) into § 1308.12 (Schedule II) — a reschedule — and a
Federal Register page with a HYPOTHETICAL proposed rule to do the same — a pending item.
Nothing outside 127.0.0.1 is contacted; robots.txt is not asked for.

The data (database, archive, site, and the ``schedwatch.toml`` the demo used) go into
``--data-dir`` (default ``./data/demo``), which is emptied first when an earlier demo made it
and refused when it holds anything else. Usage: ``python -m scheduler.demo [--data-dir D]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scrapers.errors import SchedwatchError

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
#: Written into a data folder the demo made, so that a later demo may empty it.
MARKER = ".schedwatch-demo"

XML = "application/xml"
JSON = "application/json"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CA_CDSA = "/eng/XML/C-38.8.xml"
CA_CSR = "/eng/XML/SOR-2025-242.xml"
ECFR_TITLES = "/api/versioner/v1/titles.json"
ECFR_VERSIONS = "/api/versioner/v1/versions/title-21.json"
ECFR_FULL = re.compile(r"/api/versioner/v1/full/(\d{4}-\d{2}-\d{2})/title-21\.xml")
ECFR_BULK = "/bulkdata/ECFR/title-21/ECFR-title21.xml"
FR_DOCUMENTS = "/api/v1/documents.json"
AU_TITLES = "/v1/titles"
AU_VERSIONS = "/v1/versions"
AU_WORD = "/F2026L00633/asmade/2026-05-28/text/original/word"

#: Ketamine's rows in § 1308.13(c) of the eCFR fixture, and the row they move after.
# The eCFR's own table markup (DIV class="gpotbl_div"/TABLE/TR/TD), as in the fixture.
_KETAMINE_ROWS = ('<TR><TD align="left" class="gpotbl_cell" scope="row">(7) Ketamine, its '
                  'salts, isomers, and salts of isomers</TD><TD align="right" '
                  'class="gpotbl_cell">7285</TD></TR>\n<TR><TD align="left" class="gpotbl_cell" '
                  'scope="row">[Some other names for ketamine: (±)-2-(2-chlorophenyl)-2-'
                  '(methylamino)-cyclohexanone]</TD><TD align="right" class="gpotbl_cell"/></TR>\n')
_SCHEDULE_II_ANCHOR = ('<TR><TD align="left" class="gpotbl_cell" scope="row">(5) Secobarbital'
                       '</TD><TD align="right" class="gpotbl_cell">2315</TD></TR>\n')


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain"


@dataclass
class Documents:
    """What the local server answers; ``changed`` switches to the second cycle."""

    fixtures: Path
    changed: bool = False
    _cache: dict[str, bytes] = field(default_factory=dict)

    def read(self, relative: str) -> bytes:
        if relative not in self._cache:
            self._cache[relative] = (self.fixtures / relative).read_bytes()
        return self._cache[relative]

    @property
    def ecfr_date(self) -> str:
        # A new eCFR point in time announces that Part 1308 changed (its freshness marker).
        return "2026-06-11" if self.changed else "2026-06-10"

    def ecfr_titles(self) -> bytes:
        titles = json.loads(self.read("us/ecfr-titles.json"))
        for title in titles["titles"]:
            if title["number"] == 21:
                title["up_to_date_as_of"] = self.ecfr_date
        return json.dumps(titles).encode()

    def ecfr_part(self) -> bytes:
        text = self.read("us/ecfr-part1308.xml").decode("utf-8")
        if not self.changed:
            return text.encode("utf-8")
        if text.count(_KETAMINE_ROWS) != 1 or text.count(_SCHEDULE_II_ANCHOR) != 1:
            raise SchedwatchError("demo: tests/fixtures/us/ecfr-part1308.xml no longer has "
                                  "the rows the demo moves; update scheduler/demo.py")
        text = text.replace(_KETAMINE_ROWS, "")
        text = text.replace(_SCHEDULE_II_ANCHOR, _SCHEDULE_II_ANCHOR + _KETAMINE_ROWS.replace(
            "(7) Ketamine", "(6) Ketamine"))
        return text.encode("utf-8")

    def fr_page2(self) -> bytes:
        page = json.loads(self.read("us/fr-documents-page2.json"))
        if self.changed:  # the HYPOTHETICAL 2031 proposal to move ketamine to Schedule II
            page["results"] = page["results"] + json.loads(
                self.read("us/fr-documents-proposed-schedule-ii.json"))["results"]
        return json.dumps(page).encode()

    def answer(self, path: str, args: Mapping[str, list[str]]) -> Reply:
        if path == CA_CDSA:
            return Reply(200, self.read("ca/cdsa-mini.xml"), XML)
        if path == CA_CSR:
            return Reply(200, self.read("ca/csr-mini.xml"), XML)
        if path == ECFR_TITLES:
            return Reply(200, self.ecfr_titles(), JSON)
        if path == ECFR_VERSIONS:
            return Reply(200, self.read("us/ecfr-versions-1308.json"), JSON)
        match = ECFR_FULL.fullmatch(path)
        if match and match.group(1) == self.ecfr_date:
            return Reply(200, self.ecfr_part(), XML)
        # The real API's next_page_url drops ".json" from the path (seen 2024-01).
        if path in (FR_DOCUMENTS, FR_DOCUMENTS.removesuffix(".json")):
            if args.get("conditions[cfr][part]") == ["1308"]:
                return Reply(200, self.fr_page2() if args.get("page") == ["2"]
                             else self.read("us/fr-documents-page1.json"), JSON)
            if args.get("conditions[term]") == ["ketamine"]:
                return Reply(200, self.read("us/fr-documents-ketamine.json"), JSON)
        if path == AU_TITLES:
            return Reply(200, self.read("au/api-titles.json"), JSON)
        if path == AU_VERSIONS:
            versions = json.loads(self.read("au/api-versions.json"))
            return Reply(200, json.dumps({"value": list(reversed(versions["value"]))}).encode(),
                         JSON)
        if path == AU_WORD:
            return Reply(200, self.read("au/poisons-standard-june-2026.docx"), DOCX)
        return Reply(404, b"not a document of the demo")


def _handler(documents: Documents) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            parts = urlsplit(self.path)
            try:
                reply = documents.answer(parts.path, parse_qs(parts.query))
            except SchedwatchError as error:
                reply = Reply(500, str(error).encode())
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the runs' own lines say what was fetched

    return Handler


@contextmanager
def serve(documents: Documents) -> Iterator[str]:
    """The documents on 127.0.0.1 on a free port, in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(documents))
    thread = threading.Thread(target=server.serve_forever, name="schedwatch-demo-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def demo_config(data_dir: Path, base: str) -> str:
    """The demo's schedwatch.toml: every source on the local server, no pauses."""
    sources = {
        "ca-cdsa": {"url": base + CA_CDSA},
        "ca-csr": {"url": base + CA_CSR},
        "us-ecfr-1308": {"url": base, "bulk_url": base + ECFR_BULK},
        "us-federal-register": {"url": base},
        "au-poisons-standard": {"url": base + "/v1", "register_url": base},
    }
    lines = [f"data_dir = {json.dumps(str(data_dir))}", 'contact = "demo@localhost"', "",
             "[fetch]", "request_interval = 0", "respect_robots = false", "max_retries = 0",
             "backoff = 0", "connect_timeout = 5", "read_timeout = 30", ""]
    for source_id, endpoints in sources.items():
        lines.append(f"[sources.{source_id}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in endpoints.items()]
        lines.append("")
    return "\n".join(lines)


def prepare(data_dir: Path) -> None:
    """An empty data folder: one an earlier demo made is emptied, anything else refused."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise SchedwatchError(f"demo: {data_dir} is a file; give --data-dir a folder")
        if any(data_dir.iterdir()):
            if not (data_dir / MARKER).is_file():
                raise SchedwatchError(f"demo: {data_dir} holds files the demo did not make; "
                                      "give --data-dir a new or empty folder")
            shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("made by `make demo`; emptied by the next one\n",
                                   encoding="utf-8")


def run_demo(data_dir: Path, fixtures: Path = FIXTURES,
             echo: Callable[[str], None] = print) -> int:
    """The demo; returns the exit code (0 when both runs were healthy and published)."""
    from jurisdictions import all_sources
    from scheduler.config import load_settings
    from scheduler.pipeline import run
    from scrapers.store import Store

    if not all((fixtures / code).is_dir() for code in ("ca", "us", "au")):
        raise SchedwatchError(f"demo: the test fixtures are not at {fixtures}; run the demo "
                              "from a checkout of the project")
    data_dir = data_dir.absolute()
    prepare(data_dir)
    documents = Documents(fixtures)
    worst = 0
    with serve(documents) as base:
        echo(f"schedwatch demo: serving the project's test fixtures (constructed documents, "
             f"not the law) on {base}; data in {data_dir}")
        config = data_dir / "schedwatch.toml"
        config.write_text(demo_config(data_dir, base), encoding="utf-8")
        settings = load_settings(config, environ={},
                                 known_sources={s.id: tuple(s.endpoints) for s in all_sources()})
        for title, changed in (("baseline", False), ("a cycle with a change", True)):
            documents.changed = changed
            echo(f"\n== {title} ==")
            report = run(settings, trigger="demo", notify=False)
            for line in [*report.lines, *report.warnings]:
                echo(f"  {line}")
            worst = max(worst, report.exit_code)
    store = Store(settings.data_dir, settings.database_url)
    try:
        found = store.changes()
    finally:
        store.close()
    site = settings.site_path
    echo("\n== where to look ==")
    echo(f"  site:        {site / 'index.html'}")
    # One page per kind, ketamine's first: the isomers' pages say the same of them.
    for kind in ("rescheduled", "pending"):
        pages = sorted((c for c in found if c.kind == kind),
                       key=lambda c: (c.substance != "ketamine", c.id))
        if pages:
            echo(f"  {kind + ':':<12} {site / 'changes' / f'{pages[0].id}.html'}  "
                 f"({pages[0].summary})")
    echo(f"  changes:     {len(found)} in all, on {site / 'index.html'} and the feed")
    echo(f"  from the shell: schedwatch --config {config} changes")
    return worst


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduler.demo",
                                     description="schedwatch on its own fixtures, offline.")
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"),
                        help="where the demo's database and site go (default: data/demo)")
    args = parser.parse_args(argv)
    try:
        code = run_demo(args.data_dir)
    except SchedwatchError as error:
        print(f"schedwatch: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
