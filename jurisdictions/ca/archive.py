"""Canada's archive for ``schedwatch backfill``: Justice Canada's official XML mirror on GitHub
(``justicecanada/laws-lois-xml``, from 2019-09-19), which keeps every consolidation of every Act
and regulation as a commit.

* The commit list of one file, newest first, 100 a page, until an empty page:
  ``GET {history_url}/commits?path=eng/acts/C-38.8.xml&per_page=100&page=N`` (GitHub's REST
  API, ``[{"sha": ..., "commit": {"committer": {"date": ...}}}]``).
* Each version's bytes: ``GET {raw_url}/{sha}/eng/acts/C-38.8.xml``.

Versions are yielded in commit order, oldest first. Their legal date is the version's own
``lims:pit-date``, read from the bytes, never the commit date (the mirror was filled in 2021
with consolidations of 2019; a point-in-time date can repeat with different bytes, so a
version is identified by its commit and its sha256, not its date). Everything the API answers
is untrusted: JSON through ``jurisdictions.parsing.load_json`` (depth-limited), a commit sha
must be 40 hex digits before it goes into a URL.

This module depends only on ``jurisdictions.base`` and ``jurisdictions.parsing`` so that the
Canadian module can import it for its ``Source(archive=...)`` without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date
from functools import partial

from jurisdictions.base import ArchivedVersion, ArchiveReader, FetchContext, Fetcher
from jurisdictions.parsing import load_json
from scrapers.errors import ExtractionError

__all__ = ["ARCHIVE_ENDPOINTS", "CDSA_PATH", "CSR_PATH", "NCR_PATH",
           "mirror_archive", "pit_date_of", "read_cdsa_archive", "read_csr_archive"]

#: The mirror's endpoints, overridable in ``[sources.ca-cdsa]`` / ``[sources.ca-csr]``.
ARCHIVE_ENDPOINTS: Mapping[str, str] = {
    "history_url": "https://api.github.com/repos/justicecanada/laws-lois-xml",
    "raw_url": "https://raw.githubusercontent.com/justicecanada/laws-lois-xml",
}
CDSA_PATH = "eng/acts/C-38.8.xml"
CSR_PATH = "eng/regulations/SOR-2025-242.xml"
NCR_PATH = "eng/regulations/C.R.C.,_c._1041.xml"

PER_PAGE = 100
#: A runaway listing (a server that never answers an empty page) stops here: 100 pages of
#: 100 commits is far more than any one file's history.
MAX_PAGES = 100
_SHA = re.compile(r"^[0-9a-f]{40}$")
#: ``lims:pit-date`` sits on the root element, in the first few hundred bytes.
_PIT_DATE = re.compile(rb"""lims:pit-date\s*=\s*["'](\d{4}-\d{2}-\d{2})""")
_HEAD_BYTES = 8192


def pit_date_of(content: bytes) -> str | None:
    """The point in time a Justice Laws XML version speaks for, from its root element; None
    when its head does not state one (the version is then skipped as not understood)."""
    found = _PIT_DATE.search(content[:_HEAD_BYTES])
    return found.group(1).decode("ascii") if found else None


def _commits(fetcher: Fetcher, history_url: str, path: str, source_id: str
             ) -> list[tuple[str, str]]:
    """(sha, committer date) of every commit of ``path``, oldest first."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    url = f"{history_url.rstrip('/')}/commits"
    for page in range(1, MAX_PAGES + 1):
        response = fetcher.get(url, params={"path": path, "per_page": str(PER_PAGE),
                                            "page": str(page)},
                               headers={"Accept": "application/vnd.github+json"})
        data = load_json(response.content, f"{source_id}: the mirror's commit list (page "
                                           f"{page})")
        if not isinstance(data, list):
            raise ExtractionError(f"{source_id}: the mirror's commit list (page {page}) is not "
                                  f"a JSON list but {type(data).__name__}")
        if not data:
            break
        for entry in data:
            sha = entry.get("sha") if isinstance(entry, dict) else None
            commit = entry.get("commit") if isinstance(entry, dict) else None
            committer = commit.get("committer") if isinstance(commit, dict) else None
            when = committer.get("date") if isinstance(committer, dict) else None
            if not isinstance(sha, str) or not _SHA.match(sha) or not isinstance(when, str):
                raise ExtractionError(f"{source_id}: the mirror's commit list (page {page}) "
                                      "has an entry without a commit sha and date")
            if sha not in seen:
                seen.add(sha)
                found.append((sha, when))
    else:
        raise ExtractionError(f"{source_id}: the mirror's commit list did not end after "
                              f"{MAX_PAGES} pages")
    # GitHub lists newest first; the order of the list is the order of the commits (a
    # committer date can be rewritten, the position cannot), so reverse it.
    found.reverse()
    return found


def mirror_archive(path: str, fetcher: Fetcher, context: FetchContext,
                   since: date | None) -> Iterator[ArchivedVersion]:
    """Every version of ``path`` in the mirror, oldest first. With ``since``, commits made
    before that date are not fetched: a consolidation is committed after its point in time,
    so they can only speak for earlier dates."""
    endpoints = {**ARCHIVE_ENDPOINTS, **context.endpoints}
    raw_url = endpoints["raw_url"].rstrip("/")
    for sha, when in _commits(fetcher, endpoints["history_url"], path, context.source_id):
        if since is not None and when[:10] < since.isoformat():
            continue
        url = f"{raw_url}/{sha}/{path}"
        response = fetcher.get(url)
        content = response.content
        yield ArchivedVersion(url=response.final_url or url, content=content,
                              evidence_date=pit_date_of(content), ident=sha,
                              content_type=response.headers.get("Content-Type")
                              or "application/xml",
                              meta={"commit": sha, "committed_at": when, "path": path})


read_cdsa_archive: ArchiveReader = partial(mirror_archive, CDSA_PATH)
read_csr_archive: ArchiveReader = partial(mirror_archive, CSR_PATH)

