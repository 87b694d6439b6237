"""HTTP fetching: the only network code in schedwatch.

One ``requests.Session`` per run; connect and read timeouts always, plus an overall deadline
per response so a server that trickles bytes cannot hold a run; bounded retries with
exponential backoff on connection errors, 429 and 5xx, honouring ``Retry-After``; conditional
GET; a size cap; robots.txt (with its ``Crawl-delay``) respected and kept for up to 24 hours
(RFC 9309 §2.4) in the data folder, so that a warm run does not fetch it again; a minimum
interval between requests to one host. A redirect is never followed to another host whose
address is not a public one (loopback, link-local, private, shared or reserved): the
configured host itself may be local (a mirror, the tests), but a public source must not lead
schedwatch into the machine's own network and have an internal service's answer archived as
evidence.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import ipaddress
import os
import socket
import tempfile
import time
import urllib.robotparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from scrapers.errors import FetchError
from scrapers.protocol import FetchContext, Fetched, Response

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class FetchPolicy:
    """Tunables for one run's fetching (from the configuration)."""

    user_agent: str
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    total_timeout: float = 300.0  # whole response, body included
    max_retries: int = 3
    backoff: float = 2.0  # first wait; doubles each retry
    max_wait: float = 120.0  # a Retry-After beyond this fails the fetch instead of waiting
    min_interval: float = 1.0  # seconds between requests to one host
    max_crawl_delay: float = 30.0  # a robots.txt Crawl-delay is honoured up to this
    max_bytes: int = 64 * 1024 * 1024
    verify_tls: bool = True
    respect_robots: bool = True
    #: Where robots.txt answers are kept between runs (None: not kept), and for how long.
    #: RFC 9309 §2.4: crawlers should not use a cached robots.txt for more than 24 hours.
    robots_cache: Path | None = None
    robots_max_age: float = 24 * 3600.0


@dataclass
class _HostState:
    last_request: float = 0.0
    robots: urllib.robotparser.RobotFileParser | None = None
    crawl_delay: float = 0.0


@dataclass
class HttpFetcher:
    """Implements ``scrapers.protocol.Fetcher`` over one requests Session."""

    policy: FetchPolicy
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    #: Wall-clock seconds, for the age of a kept robots.txt (monotonic time does not survive
    #: the process).
    wall_clock: Callable[[], float] = time.time
    _session: requests.Session = field(init=False)
    _hosts: dict[str, _HostState] = field(init=False, default_factory=dict)
    #: Every request made (url, status or error kind), for the run log and for tests.
    log: list[tuple[str, str]] = field(init=False, default_factory=list)
    #: (requested URL, final URL) of every response that came through a redirect.
    redirects: list[tuple[str, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._session = requests.Session()
        self._session.headers["User-Agent"] = self.policy.user_agent
        self._session.headers["Accept-Encoding"] = "gzip, deflate"
        self._session.max_redirects = 5
        self._session.verify = self.policy.verify_tls
        if not self.policy.verify_tls:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- robots.txt ---------------------------------------------------------------------

    def _host(self, url: str) -> tuple[str, _HostState]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return origin, self._hosts.setdefault(origin, _HostState())

    def allowed(self, url: str) -> bool:
        if not self.policy.respect_robots:
            return True
        origin, state = self._host(url)
        if state.robots is None:
            state.robots = self._read_robots(origin, state)
        return state.robots.can_fetch(self.policy.user_agent, url)

    def _read_robots(self, origin: str, state: _HostState) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        lines = self._kept_robots(origin)
        if lines is None:
            lines, keep = self._fetch_robots(origin, state)
            if keep:
                self._keep_robots(origin, lines)
        parser.parse(lines)
        delay = parser.crawl_delay(self.policy.user_agent)
        if delay is not None:
            state.crawl_delay = min(float(delay), self.policy.max_crawl_delay)
        return parser

    def _fetch_robots(self, origin: str, state: _HostState) -> tuple[list[str], bool]:
        """The rules of ``origin``'s robots.txt and whether they may be kept (an answer was
        received; an unreachable robots.txt is asked again next run)."""
        try:
            self._pace(state)
            response = self._session.get(origin + "/robots.txt", allow_redirects=True,
                                         timeout=(self.policy.connect_timeout,
                                                  self.policy.read_timeout),
                                         hooks={"response": _redirect_guard(origin)})
            self.log.append((origin + "/robots.txt", str(response.status_code)))
            if response.status_code in (401, 403):
                # RFC 9309: an access-restricted robots.txt means "disallow all".
                return ["User-agent: *", "Disallow: /"], True
            if response.ok:
                text = response.content[:512 * 1024].decode("utf-8", "replace")
                return text.splitlines(), True
            return [], response.status_code < 500  # 404 and co: no rules; 5xx: ask again
        except (requests.RequestException, FetchError):
            # An unreachable robots.txt (or one redirected into a private address) is read
            # as "no rules"; the document request that follows will fail (or succeed) on its
            # own and say why.
            return [], False

    def _robots_file(self, origin: str) -> Path | None:
        folder = self.policy.robots_cache
        # Named by a hash of the origin: nothing scraped or configured becomes a path.
        name = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:32] + ".txt"
        return folder / name if folder is not None else None

    def _kept_robots(self, origin: str) -> list[str] | None:
        """The kept rules of ``origin`` when younger than ``robots_max_age``; None otherwise
        (also when the file cannot be read: the live robots.txt is then asked)."""
        path = self._robots_file(origin)
        if path is None:
            return None
        try:
            age = self.wall_clock() - path.stat().st_mtime
            if not 0 <= age < self.policy.robots_max_age:
                return None
            head, _, body = path.read_text(encoding="utf-8").partition("\n")
        except (OSError, UnicodeDecodeError):
            return None
        if head != f"# schedwatch robots.txt of {origin}":
            return None  # another origin's file (a hash collision) or a damaged one
        self.log.append((origin + "/robots.txt", "kept"))
        return body.splitlines()

    def _keep_robots(self, origin: str, lines: list[str]) -> None:
        path = self._robots_file(origin)
        if path is None:
            return
        temporary: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".robots-")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(f"# schedwatch robots.txt of {origin}\n" + "\n".join(lines))
            now = self.wall_clock()
            os.utime(temporary, (now, now))
            os.replace(temporary, path)
        except OSError:
            # Keeping robots.txt only saves a request; a full or read-only disk must not fail
            # the fetch (the store reports storage problems where they matter).
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    # --- pacing -------------------------------------------------------------------------

    def _pace(self, state: _HostState) -> None:
        interval = max(self.policy.min_interval, state.crawl_delay)
        wait = state.last_request + interval - self.clock()
        if state.last_request and wait > 0:
            self.sleep(wait)
        state.last_request = self.clock()

    # --- GET ----------------------------------------------------------------------------

    def get(self, url: str, *, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None, etag: str | None = None,
            last_modified: str | None = None) -> Response:
        if not self.allowed(url):
            raise FetchError(f"robots.txt of {urlsplit(url).netloc} disallows {url}; "
                             "schedwatch respects it (point the source at a mirror with "
                             "[sources.<id>] url)", kind="robots", url=url)
        request_headers = dict(headers or {})
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        _, state = self._host(url)
        attempt = 0
        while True:
            self._pace(state)
            try:
                response = self._attempt(url, params, request_headers)
            except FetchError as error:
                retryable = error.kind in ("connection", "timeout", "truncated")
                self.log.append((url, error.kind))
                if not retryable or attempt >= self.policy.max_retries:
                    raise
                self.sleep(min(self.policy.backoff * 2 ** attempt, self.policy.max_wait))
                attempt += 1
                continue
            self.log.append((url, str(response.status)))
            if response.final_url != response.url:
                self.redirects.append((response.url, response.final_url))
            if response.status in RETRY_STATUSES:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if attempt >= self.policy.max_retries:
                    raise FetchError(f"{url} answered HTTP {response.status} "
                                     f"{_reason(response.status)} after {attempt + 1} tries; "
                                     "the server is failing or rate-limiting, try later",
                                     kind="http", status=response.status, url=url)
                if wait is not None and wait > self.policy.max_wait:
                    raise FetchError(f"{url} answered HTTP {response.status} with Retry-After "
                                     f"{wait:.0f} s, longer than the {self.policy.max_wait:.0f}"
                                     " s schedwatch waits; the next run will try again",
                                     kind="http", status=response.status, url=url)
                self.sleep(wait if wait is not None
                           else min(self.policy.backoff * 2 ** attempt, self.policy.max_wait))
                attempt += 1
                continue
            if response.status >= 400:
                raise FetchError(f"{url} answered HTTP {response.status} "
                                 f"{_reason(response.status)}; check the source URL in the "
                                 "configuration", kind="http", status=response.status, url=url)
            return response

    def _attempt(self, url: str, params: Mapping[str, Any] | None,
                 headers: Mapping[str, str]) -> Response:
        started = self.clock()
        try:
            with self._session.get(url, params=params, headers=headers, stream=True,
                                   timeout=(self.policy.connect_timeout,
                                            self.policy.read_timeout),
                                   hooks={"response": _redirect_guard(url)}) as raw:
                body = bytearray()
                declared = raw.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
                    raise _too_large(url, self.policy.max_bytes)
                for chunk in raw.iter_content(chunk_size=64 * 1024):
                    body.extend(chunk)
                    if len(body) > self.policy.max_bytes:
                        raise _too_large(url, self.policy.max_bytes)
                    if self.clock() - started > self.policy.total_timeout:
                        raise FetchError(f"{url} took longer than {self.policy.total_timeout:.0f}"
                                         " s to send its body", kind="timeout", url=url)
                # The URL first requested (with its query), so that a redirect shows.
                requested = raw.history[0].url if raw.history else raw.url
                return Response(url=requested, final_url=raw.url,
                                status=raw.status_code, headers=dict(raw.headers),
                                content=bytes(body))
        except FetchError:
            raise
        except requests.exceptions.TooManyRedirects as error:
            raise FetchError(f"{url} redirects in a loop (more than 5 redirects)",
                             kind="redirect", url=url) from error
        except requests.exceptions.SSLError as error:
            raise FetchError(f"{url}: TLS certificate verification failed; fix the server's "
                             "certificate or, for a private mirror only, set "
                             "insecure_skip_tls_verify = true", kind="tls", url=url) from error
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as error:
            raise FetchError(f"{url} timed out (connect {self.policy.connect_timeout:.0f} s, "
                             f"read {self.policy.read_timeout:.0f} s)", kind="timeout",
                             url=url) from error
        except requests.exceptions.ChunkedEncodingError as error:
            raise FetchError(f"{url}: the response was cut off before its end",
                             kind="truncated", url=url) from error
        except requests.exceptions.ConnectionError as error:
            if _is_read_timeout(error):
                # A server that sent its headers and then went silent: requests wraps
                # urllib3's ReadTimeoutError in a ConnectionError while streaming the body.
                raise FetchError(f"{url} stopped sending its body (read timeout "
                                 f"{self.policy.read_timeout:.0f} s)", kind="timeout",
                                 url=url) from error
            raise FetchError(_connection_message(url, error), kind=_connection_kind(error),
                             url=url) from error
        except requests.RequestException as error:
            raise FetchError(f"{url}: {type(error).__name__}", kind="connection",
                             url=url) from error


def simple_plan(fetcher: Any, context: FetchContext) -> Fetched:
    """The default fetch plan: one conditional GET of the source's main URL."""
    url = context.endpoints["url"]
    response = fetcher.get(url, etag=context.etag, last_modified=context.last_modified)
    moved = url if response.final_url != url else None
    if response.not_modified:
        return Fetched(url=response.final_url, content=None, etag=context.etag,
                       last_modified=context.last_modified, marker=context.marker,
                       redirected_from=moved)
    return Fetched(url=response.final_url, content=response.content,
                   content_type=response.headers.get("Content-Type"),
                   etag=response.headers.get("ETag"),
                   last_modified=response.headers.get("Last-Modified"),
                   redirected_from=moved)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- redirects into private addresses -------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _endpoint(url: str) -> tuple[str, str, int | None]:
    """(scheme, host name in lower case, port with the scheme's default filled in)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _redirect_guard(configured: str) -> Callable[..., None]:
    """A requests response hook: it sees every response of one request, the redirects
    included, *before* the next hop is requested, and refuses a hop to another host whose
    address is not public. A hop that stays on the configured host and port is followed
    (as is an upgrade from http to https on the same host name)."""
    scheme, host, port = _endpoint(configured)

    def check(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if not response.is_redirect:
            return
        target = urljoin(response.url, response.headers.get("Location", ""))
        to_scheme, to_host, to_port = _endpoint(target)
        if to_host == host and (to_port == port or (
                scheme, port, to_scheme, to_port) == ("http", 80, "https", 443)):
            return
        address = non_public_address(to_host, to_port or 80)
        if address is None:
            return
        response.close()
        # The Location is the server's text: shown shortened, without control characters.
        shown = "".join(c if c.isprintable() else "?" for c in target[:200])
        raise FetchError(f"{configured} redirects to {shown}, another host whose address "
                         f"{address} is not public (loopback, link-local or private network); "
                         "schedwatch does not follow a source into private addresses (if this "
                         "is a mirror you trust, configure its URL itself)",
                         kind="redirect", status=response.status_code, url=configured)

    return check


def non_public_address(host: str, port: int) -> str | None:
    """The first address of ``host`` that is loopback, link-local, private, shared (CGNAT),
    reserved or unspecified; None when every address is public, or when the name does not
    resolve (the request then fails on its own, with the DNS message)."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        addresses = []
        for *_, sockaddr in infos:
            with contextlib.suppress(ValueError):
                addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    for address in addresses:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if not (mapped or address).is_global:
            return str(address)
    return None


def _too_large(url: str, limit: int) -> FetchError:
    return FetchError(f"{url} sent more than {limit // (1024 * 1024)} MB; schedwatch stopped "
                      "reading (raise max_document_mb if the document really grew)",
                      kind="too_large", url=url)


def _is_read_timeout(error: Exception) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            return True
        cause = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) \
            else cause.__context__
    return "Read timed out" in str(error)


def _connection_kind(error: Exception) -> str:
    text = str(error)
    if "NameResolutionError" in text or "Name or service not known" in text \
            or "nodename nor servname" in text or "Temporary failure in name resolution" in text:
        return "dns"
    return "connection"


def _connection_message(url: str, error: Exception) -> str:
    host = urlsplit(url).netloc
    if _connection_kind(error) == "dns":
        return f"{url}: the host name {urlsplit(url).hostname} does not resolve; check the URL " \
               "and this machine's DNS"
    if "Connection refused" in str(error):
        return f"{url}: connection refused by {host}; the server is down or the URL is wrong"
    return f"{url}: could not connect to {host}; check the network and the URL"


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
