"""Shared pieces of the benchmarks: a threaded localhost document server with ETag /
Last-Modified support and route functions for API-like paths; one such server per regulator
host playing the five sources (CA, US eCFR, US Federal Register, AU register API and site);
and a runner that measures a child process's wall time and peak RSS.

Everything is served on 127.0.0.1 only; no benchmark talks to any other address."""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "regulator-documents"
FIXTURES = ROOT / "tests" / "fixtures"
PYTHON = sys.executable
#: Where reusable, uncommitted benchmark material lives (urlwatch's venv, synthetic documents).
CACHE = Path(os.environ.get("SCHEDWATCH_BENCH_CACHE", "/tmp/schedwatch-bench"))

JSON = "application/json"
XML = "application/xml"
WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

Route = Callable[[str, Mapping[str, str]], tuple[int, bytes, str] | None]
_ORDER = itertools.count()


class DocumentServer:
    """Serves ``documents[path] = (bytes, content type)`` or, for API-like paths, whatever a
    route function answers (it gets the path with its query string). Conditional GET: ETag
    and Last-Modified, 304 when they match. ``log`` keeps (order, path) of every request."""

    def __init__(self, documents: Mapping[str, tuple[bytes, str]] | None = None,
                 routes: Sequence[Route] = (),
                 robots: bytes = b"User-agent: *\nAllow: /\n", delay: float = 0.0) -> None:
        self.documents = dict(documents or {})
        #: Seconds slept before each answer: a simulated network round trip.
        self.delay = delay
        self.routes = list(routes)
        self.robots = robots
        self.modified = formatdate(time.time() - 86400, usegmt=True)
        self.requests = 0
        self.log: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm on, the body waits
            # for the client's delayed ACK of the headers (~40 ms per response on Linux), a
            # cost of this test server that production servers do not have.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with server.lock:
                    server.requests += 1
                    server.log.append((next(_ORDER), self.path))
                if server.delay:
                    time.sleep(server.delay)
                answer = server.answer(self.path, dict(self.headers))
                if answer is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body, content_type = answer
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                if status == 200 and (self.headers.get("If-None-Match") == etag or
                                      self.headers.get("If-Modified-Since") == server.modified):
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == 200:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", server.modified)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        if path == "/robots.txt":
            return 200, self.robots, "text/plain"
        plain = path.split("?", 1)[0]
        if plain in self.documents:
            body, content_type = self.documents[plain]
            return 200, body, content_type
        for route in self.routes:
            found = route(path, headers)
            if found is not None:
                return found
        return None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> DocumentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- route functions: the regulators' API paths, as the fetch plans request them ----------

def split_query(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path, parse_qs(parts.query, keep_blank_values=True)


def _bad(message: str) -> tuple[int, bytes, str]:
    return 400, json.dumps({"error": message}).encode(), JSON


def ecfr_route(titles: bytes, part: bytes, versions: bytes) -> Route:
    """The eCFR versioner: ``titles.json``; ``full/{up_to_date_as_of}/title-21.xml?part=1308``;
    ``versions/title-21.json?part=1308&issue_date[gte]=…`` (400 without an issue date, as
    the real API answers)."""
    as_of = next(t["up_to_date_as_of"] for t in json.loads(titles)["titles"]
                 if str(t["number"]) == "21")

    def route(path: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        plain, query = split_query(path)
        if plain == "/api/versioner/v1/titles.json":
            return 200, titles, JSON
        if plain == f"/api/versioner/v1/full/{as_of}/title-21.xml":
            return (200, part, XML) if query.get("part") == ["1308"] else _bad("part?")
        if plain == "/api/versioner/v1/versions/title-21.json":
            if not query.get("issue_date[gte]"):
                return _bad("An issue_date parameter must be provided.")
            return 200, versions, JSON
        return None

    return route


def federal_register_route(pages: Mapping[str, bytes]) -> Route:
    """``/api/v1/documents.json``: the Part 1308 query gets ``pages["cfr"]`` (a list of
    pages, ``page=N`` choosing one), the ketamine term query ``pages["term"]``."""

    def route(path: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        plain, query = split_query(path)
        if plain not in ("/api/v1/documents.json", "/api/v1/documents"):  # next_page_url form
            return None
        if query.get("conditions[agencies][]") != ["drug-enforcement-administration"]:
            return _bad("unexpected agency")
        if query.get("conditions[term]") == ["ketamine"] and \
                "conditions[cfr][part]" not in query:
            return 200, pages["term"], JSON
        if query.get("conditions[cfr][part]") == ["1308"] and \
                query.get("conditions[cfr][title]") == ["21"]:
            cfr = pages["cfr"]
            number = int((query.get("page") or ["1"])[0])
            return (200, cfr[number - 1], JSON) if 0 < number <= len(cfr) else _bad("page")
        return _bad("unexpected query")

    return route


def legislation_api_route(titles: bytes, versions: bytes) -> Route:
    """The Federal Register of Legislation OData API: ``/v1/titles`` and ``/v1/versions``."""

    def route(path: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        plain, query = split_query(path)
        if plain == "/v1/titles":
            return (200, titles, JSON) if query.get("$filter") else _bad("$filter")
        if plain == "/v1/versions":
            return (200, versions, JSON) if query.get("$filter") else _bad("$filter")
        return None

    return route


# --- the five sources on localhost ---------------------------------------------------------

CDSA_PATH = "/eng/XML/C-38.8.xml"
CSR_PATH = "/eng/XML/SOR-2025-242.xml"


@dataclass
class Corpus:
    """What the regulators serve: the real Canadian documents, and US/AU documents (the
    constructed test fixtures, or synthetic realistic-size ones)."""

    cdsa: bytes
    csr: bytes
    ecfr_titles: bytes
    ecfr_part: bytes
    ecfr_versions: bytes
    fr_cfr_pages: list[bytes]
    fr_term: bytes
    au_titles: bytes
    au_versions: bytes
    au_word: bytes
    label: str = "fixtures"
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fixtures(cls) -> Corpus:
        ca, us, au = SHARED / "ca", FIXTURES / "us", FIXTURES / "au"
        if not ca.is_dir():
            sys.exit("../shared/regulator-documents/ca is absent: nothing to benchmark")
        return cls(
            cdsa=(ca / "cdsa-C-38.8-en-pit2026-06-05.xml").read_bytes(),
            csr=(ca / "csr-SOR-2025-242-en-pit2026-04-17.xml").read_bytes(),
            ecfr_titles=(us / "ecfr-titles.json").read_bytes(),
            ecfr_part=(us / "ecfr-part1308.xml").read_bytes(),
            ecfr_versions=(us / "ecfr-versions-1308.json").read_bytes(),
            fr_cfr_pages=[(us / "fr-documents-page1.json").read_bytes(),
                          (us / "fr-documents-page2.json").read_bytes()],
            fr_term=(us / "fr-documents-ketamine.json").read_bytes(),
            au_titles=(au / "api-titles.json").read_bytes(),
            au_versions=(au / "api-versions.json").read_bytes(),
            au_word=(au / "poisons-standard-june-2026.docx").read_bytes(),
        )

    def au_word_path(self) -> str:
        """The Word original's path, as ``jurisdictions.au.word_url`` builds it from the API
        answers (imported here, in the benchmark's own process, not the measured one)."""
        sys.path.insert(0, str(ROOT))
        from datetime import date

        from jurisdictions import au

        candidates = au.in_force_standards(au.odata_values(json.loads(self.au_titles), "titles"))
        version = au.current_version(au.odata_values(json.loads(self.au_versions), "versions"),
                                     candidates[0]["id"], date.today())
        assert version is not None
        return au.word_url("", au.instrument_from(candidates[0], version))

    def sizes(self) -> dict[str, int]:
        return {"ca-cdsa": len(self.cdsa), "ca-csr": len(self.csr),
                "us-ecfr-1308": len(self.ecfr_part),
                "us-federal-register": sum(map(len, self.fr_cfr_pages)) + len(self.fr_term),
                "au-poisons-standard": len(self.au_word)}


class Regulators:
    """One localhost server per regulator host (as in production: one robots.txt, one
    connection pool per host): Justice Laws, eCFR, Federal Register, the legislation API
    and the legislation site."""

    def __init__(self, corpus: Corpus, *, delay: float = 0.0) -> None:
        self.corpus = corpus
        self.justice = DocumentServer({CDSA_PATH: (corpus.cdsa, XML), CSR_PATH: (corpus.csr, XML)},
                                      delay=delay)
        self.ecfr = DocumentServer(routes=[ecfr_route(corpus.ecfr_titles, corpus.ecfr_part,
                                                      corpus.ecfr_versions)], delay=delay)
        self.fr = DocumentServer(routes=[federal_register_route(
            {"cfr": corpus.fr_cfr_pages, "term": corpus.fr_term})], delay=delay)
        self.au_api = DocumentServer(routes=[legislation_api_route(corpus.au_titles,
                                                                   corpus.au_versions)],
                                     delay=delay)
        self.au_site = DocumentServer({corpus.au_word_path(): (corpus.au_word, WORD)},
                                      delay=delay)
        self.servers = (self.justice, self.ecfr, self.fr, self.au_api, self.au_site)
        # The govinfo bulk file is only used when robots.txt disallows the versioner: not
        # here, but the endpoint is pointed at localhost so nothing could leave the machine.
        self.bulk_url = self.ecfr.base + "/bulkdata/ECFR/title-21/ECFR-title21.xml"

    def __enter__(self) -> Regulators:
        for server in self.servers:
            server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.__exit__(*exc)

    def config(self, data_dir: Path, *, watch: str | Sequence[str] = "all",
               site_dir: Path | None = None) -> str:
        """A schedwatch TOML pointing every source at these servers, no pacing between
        requests (the servers are local; urlwatch does not pace either)."""
        watch_toml = '"all"' if watch == "all" else json.dumps(list(watch))
        lines = [f'data_dir = "{data_dir}"', 'contact = "bench@example.org"',
                 f"watch = {watch_toml}"]
        if site_dir is not None:
            lines.append(f'site_dir = "{site_dir}"')
        lines += [
            "[fetch]", "request_interval = 0",
            "[sources.ca-cdsa]", f'url = "{self.justice.base}{CDSA_PATH}"',
            "[sources.ca-csr]", f'url = "{self.justice.base}{CSR_PATH}"',
            "[sources.us-ecfr-1308]", f'url = "{self.ecfr.base}"',
            f'bulk_url = "{self.bulk_url}"',
            "[sources.us-federal-register]", f'url = "{self.fr.base}"',
            "[sources.au-poisons-standard]", f'url = "{self.au_api.base}/v1"',
            f'register_url = "{self.au_site.base}"',
        ]
        return "\n".join(lines) + "\n"

    def mark(self) -> int:
        return next(_ORDER)

    def requested(self, since: int = 0, *, robots: bool = False) -> list[str]:
        """Full URLs requested since ``mark()``, in order (robots.txt left out unless asked)."""
        found = [(order, server.base + path) for server in self.servers
                 for order, path in list(server.log) if order > since]
        return [url for _, url in sorted(found)
                if robots or not url.endswith("/robots.txt")]


# --- measuring ------------------------------------------------------------------------------

@dataclass
class Measured:
    wall: float
    peak_mb: float
    exit_code: int
    output: str
    cpu: float = 0.0  # user + system seconds of the child: less sensitive to a busy machine


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The measured processes' environment: bytecode caching ON (as for any installed
    program; this machine sets PYTHONDONTWRITEBYTECODE=1, which would make every run
    recompile the project's modules), the caches kept outside the source tree."""
    env = {**os.environ, **(extra or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(CACHE / "pycache"))
    return env


#: A small process between the benchmark and the measured command. On Linux a child's
#: ru_maxrss starts at the RSS of the process it was forked (vfork'd) from, so a command
#: spawned straight from a benchmark holding 200 MB would report 200 MB; spawned from this
#: ~10 MB stub it reports its own peak. The stub times fork→exit itself (its own start-up
#: is not counted) and writes "wall maxrss_kb utime stime" to the file named first.
_STUB = """
import os, sys, time
out, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(command[0], command)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as handle:
    handle.write(f"{wall} {usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(command: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run a command; its wall time, CPU time and its own peak resident memory (wait4)."""
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="schedwatch-measure-", suffix=".txt") as report:
        process = subprocess.run([PYTHON, "-S", "-c", _STUB, report.name, *command],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=child_environment(env), cwd=cwd, check=False)
        fields = Path(report.name).read_text().split()
    output = process.stdout.decode("utf-8", "replace")
    if len(fields) != 4:
        return Measured(float("nan"), float("nan"), process.returncode, output)
    wall, maxrss, utime, stime = (float(f) for f in fields)
    return Measured(wall, maxrss / 1024, process.returncode, output, utime + stime)


def schedwatch(*args: str) -> list[str]:
    """The ``schedwatch`` console script as installed (``.venv/bin/schedwatch``): the command
    a user runs, with its real start-up."""
    script = Path(PYTHON).parent / "schedwatch"
    if script.exists():
        return [str(script), *args]
    return [PYTHON, "-c", "from scheduler.cli import main; main()", *args]


def best_of(runs: int, make: Callable[[], Measured]) -> Measured:
    results = [make() for _ in range(runs)]
    return min(results, key=lambda m: m.wall)


def check(result: Measured, what: str) -> Measured:
    if result.exit_code != 0:
        sys.exit(f"{what} failed (exit {result.exit_code}):\n{result.output}")
    return result


def urlwatch_env(folder: Path = CACHE) -> Path:
    """A separate virtual environment with urlwatch (created once, reused)."""
    venv = folder / "urlwatch-venv"
    binary = venv / "bin" / "urlwatch"
    if not binary.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                        "--disable-pip-version-check", "urlwatch"], check=True,
                       stderr=subprocess.DEVNULL)
    return binary


def urlwatch_jobs(folder: Path, urls: Sequence[str]) -> list[str]:
    """urlwatch files for these URLs; returns the command line to run it."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = "\n---\n".join(f"name: job{i}\nurl: {json.dumps(url)}\n"
                          for i, url in enumerate(urls))
    (folder / "urls.yaml").write_text(jobs)
    (folder / "urlwatch.yaml").write_text(
        "display:\n  new: true\n  error: true\n  unchanged: false\n"
        "report:\n  text:\n    details: false\n    footer: false\n    line_length: 75\n"
        "  stdout:\n    enabled: true\n    color: false\n")
    return ["--urls", str(folder / "urls.yaml"), "--config", str(folder / "urlwatch.yaml"),
            "--cache", str(folder / "cache.db")]


def rewritten_pages(before: bytes, after: Path, page_size: int = 4096) -> int:
    """Database pages that differ between a copy taken before a run and the file after it
    (checkpointed: SQLite wrote each such page twice, to the WAL and back). A lower bound of
    a run's database writes that does not depend on kernel writeback, as ru_oublock does."""
    now = after.read_bytes()
    pages = max(len(before), len(now)) // page_size
    return sum(before[i * page_size:(i + 1) * page_size] != now[i * page_size:(i + 1) * page_size]
               for i in range(pages))


# --- reporting --------------------------------------------------------------------------------

def emit_json(path: str | None, rows: Sequence[Mapping[str, object]]) -> None:
    """Write result rows for bench/run_all.py's summary (``--json PATH``)."""
    if path:
        Path(path).write_text(json.dumps(list(rows), indent=1))


def settle(max_wait: float = float(os.environ.get("SCHEDWATCH_BENCH_SETTLE", "120"))) -> float:
    """Wait (up to ``max_wait`` s) for the 1-minute load average to drop below the number of
    CPUs, so that other work on a shared machine disturbs the figures less; returns the load
    average when measuring starts (printed with the results: trust CPU time when it is high)."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= cpus and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"
