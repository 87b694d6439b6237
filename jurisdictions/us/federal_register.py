"""us-federal-register: DEA rules and proposed rules on 21 CFR Part 1308 (and any that mention
ketamine) from the Federal Register API, merged into one canonical JSON document.

The fetch plan runs two ``documents.json`` queries and follows each one's ``next_page_url``
(the real API writes it as ``/api/v1/documents?…&format=json&…&page=2``, without ``.json``
in the path: regulator-documents/us/fr-api-documents-2024-page1-of-2.json). The parser
reports, per watched substance, the final rule in effect that placed it and, as pending
items, open proposals and final rules whose effective date has not come.

This is an early-warning source: it never by itself makes a status ``not_controlled``. An
answer that lacks a document establishing a current status (``ESTABLISHED_BY``: for
ketamine the 1999 final rule 64 FR 37673) is refused as incomplete. A record's legal date
``in_force_since`` is the rule's effective date, built from the document's own fields
(``effective_on``, else its DATES text, else its publication date, labelled which).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jurisdictions.base import FetchContext, Fetched, Fetcher
from jurisdictions.parsing import MONTH_NUMBERS, exact_iso_date, load_json_object
from jurisdictions.substances import KNOWN, Substance, WatchList
from jurisdictions.us import CODE, FR_SOURCE_ID, SCHEDULE_LEVELS, TIMEZONE
from scrapers.errors import ExtractionError
from scrapers.records import (
    Document,
    ParseResult,
    PendingItem,
    ScheduledAction,
    StatusRecord,
    normalise_text,
)

PART = "1308"
MAX_FR_PAGES = 20
FR_AGENCY = "drug-enforcement-administration"
#: The Federal Register search term for documents that mention ketamine without listing
#: Part 1308 among their CFR references (fetch plans do not see the watch list).
FR_TERM = "ketamine"
FR_FIELDS = (
    "abstract", "action", "cfr_references", "citation", "comments_close_on", "dates",
    "document_number", "effective_on", "full_text_xml_url", "html_url", "pdf_url",
    "publication_date", "title", "type",
)
FR_CANONICAL_FORMAT = "schedwatch/us-federal-register/1"
#: The API's path for document searches: ``/api/v1/documents.json`` (what schedwatch asks
#: for) or ``/api/v1/documents`` with ``format=json`` (what the API's next_page_url says).
FR_API_PATHS = ("/api/v1/documents.json", "/api/v1/documents")


@dataclass(frozen=True)
class Establishing:
    """A Federal Register document that establishes a substance's current US status: an
    answer about that substance without it is incomplete (SOURCES.md §1.4)."""

    document_number: str  # "99-17803"
    citation: str  # "64 FR 37673"
    what: str  # "the 1999 final rule placing ketamine in Schedule III"
    #: Its publication date: an archived version ``as_of`` an earlier day cannot hold it.
    published: str | None = None


#: Substance key → the documents an answer must hold. Isomers covered by the substance
#: (esketamine, arketamine) need the same ones: their status rests on the same rule.
ESTABLISHED_BY: Mapping[str, tuple[Establishing, ...]] = {
    "ketamine": (Establishing("99-17803", "64 FR 37673",
                              "the 1999 final rule placing ketamine in Schedule III",
                              "1999-07-13"),),
}




def _local_date(moment: datetime) -> date:
    """The date in Washington at ``moment``: FR effective dates are US Eastern dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(ZoneInfo(TIMEZONE)).date()
    except ZoneInfoNotFoundError:  # pragma: no cover - a system without tz data
        return moment.astimezone(UTC).date()


def _substance_by_key(key: str, watch: WatchList) -> Substance | None:
    found = watch.get(key)
    if found is not None:
        return found
    return next((s for s in KNOWN if s.key == key), None)


# =========================================================================================
# Federal Register: fetch plan and the canonical document
# =========================================================================================

def _fr_queries() -> tuple[tuple[str, dict[str, str | list[str]]], ...]:
    common: dict[str, str | list[str]] = {
        "conditions[agencies][]": FR_AGENCY,
        "conditions[type][]": ["RULE", "PRORULE"],
        "per_page": "1000",
        "order": "oldest",
        "fields[]": list(FR_FIELDS),
    }
    return (
        ("cfr-21-part-1308", {**common, "conditions[cfr][title]": "21",
                              "conditions[cfr][part]": PART}),
        (f"term-{FR_TERM}", {**common, "conditions[term]": FR_TERM}),
    )


#: The host the real API writes into its next_page_url; a configured mirror keeps being used.
FR_API_HOST = "www.federalregister.gov"


def next_page(next_url: str, base: str) -> str:
    """The API's ``next_page_url``, checked and put on the configured host: a scraped URL
    never chooses the host schedwatch talks to (and a mirror configured as ``url`` keeps
    being used).

    Accepted: the API's own host or the configured one; the path ``/api/v1/documents.json``
    or ``/api/v1/documents`` (the real form, with ``format=json`` in the query), behind the
    configured URL's path prefix if it has one. Anything else is ExtractionError."""
    nxt, configured = urlsplit(next_url), urlsplit(base)
    prefix = configured.path.rstrip("/")
    path = nxt.path[len(prefix):] if prefix and nxt.path.startswith(prefix + "/") else nxt.path
    host = (nxt.hostname or "").lower()
    if nxt.scheme not in ("http", "https") or path not in FR_API_PATHS:
        raise ExtractionError(f"Federal Register next_page_url {next_url[:200]!r} is not a "
                              "documents.json page (/api/v1/documents[.json]); the API "
                              "changed")
    if host not in (FR_API_HOST, (configured.hostname or "").lower()):
        raise ExtractionError(f"Federal Register next_page_url {next_url[:200]!r} points at "
                              f"another host ({host!r}); refused")
    if not path.endswith(".json") and "format=json" not in nxt.query.split("&"):
        raise ExtractionError(f"Federal Register next_page_url {next_url[:200]!r} does not "
                              "ask for JSON (no .json, no format=json); the API changed")
    return urlunsplit((configured.scheme, configured.netloc, prefix + path, nxt.query, ""))


def _fr_pages(fetcher: Fetcher, base: str, params: Mapping[str, str | list[str]],
              query_id: str) -> tuple[list[dict[str, Any]], str]:
    """All results of one documents.json query, following ``next_page_url``."""
    url: str = f"{base}/api/v1/documents.json"
    query: Mapping[str, str | list[str]] | None = params
    results: list[dict[str, Any]] = []
    first_url = ""
    for _ in range(MAX_FR_PAGES):
        response = fetcher.get(url, params=query)
        first_url = first_url or response.final_url
        data = load_json_object(response.content, f"Federal Register API ({query_id})")
        page = data.get("results")
        if page is None and data.get("count") == 0:
            # The API leaves "results" out when nothing matches (from memory, not seen in
            # a recorded answer): a healthy empty page, not a changed shape.
            page = []
        if not isinstance(page, list):
            raise ExtractionError(f"Federal Register API ({query_id}): no \"results\" list; "
                                  "the API changed")
        results.extend(r for r in page if isinstance(r, dict))
        next_url = data.get("next_page_url")
        if not next_url:
            return results, first_url
        url, query = next_page(str(next_url), base), None
    raise ExtractionError(f"Federal Register API ({query_id}): more than {MAX_FR_PAGES} "
                          "pages; refusing to follow further")


def canonical_federal_register(results_by_query: Mapping[str, Sequence[Mapping[str, Any]]],
                               today: date, *, as_of: date | None = None) -> bytes:
    """ONE canonical JSON document for a set of FR results: merged by document number,
    sorted by (publication date, document number), keys sorted, each document saying which
    queries matched it. The same documents give the same bytes, so the pipeline's sha256
    sees no spurious change.

    ``not_yet_effective`` lists final rules whose effective date is after ``today``: when
    such a date passes the list shrinks, the bytes change and the parser runs again, so a
    pending final rule does not stay pending forever on unchanged API data.

    ``as_of`` (archived versions only, ``jurisdictions.us.fr_archive``): the day the version
    speaks for, written as ``"as_of"``; the parser then reads the law on that day (not on
    the day the version was read) and asks only for establishing documents published by
    then. Live answers have no ``as_of``: their bytes stay the same from day to day."""
    merged: dict[str, dict[str, Any]] = {}
    for query_id, results in results_by_query.items():
        for result in results:
            number = result.get("document_number")
            if not isinstance(number, str) or not number:
                raise ExtractionError("a Federal Register result has no document_number")
            entry = merged.setdefault(number, {k: v for k, v in result.items()
                                               if k != "matched_by"})
            entry.setdefault("matched_by", [])
            if query_id not in entry["matched_by"]:
                entry["matched_by"].append(query_id)
    for entry in merged.values():
        entry["matched_by"].sort()
    ordered = sorted(merged.values(),
                     key=lambda r: (str(r.get("publication_date") or ""), r["document_number"]))
    pending = sorted(
        r["document_number"] for r in ordered
        if _fr_type(r.get("type")) == "RULE"
        and (exact_iso_date(r.get("effective_on")) or "") > today.isoformat())
    queries = []
    for query_id, params in _fr_queries():
        queries.append({"id": query_id, "conditions": {
            k: v for k, v in sorted(params.items()) if k.startswith("conditions")}})
    document = {"format": FR_CANONICAL_FORMAT, "api": "Federal Register API v1 documents.json",
                "queries": queries, "count": len(ordered),
                "not_yet_effective": pending, "results": ordered}
    if as_of is not None:
        document["as_of"] = as_of.isoformat()
    # Compact separators and no indent: only then does json use its C encoder (indent forces
    # the pure-Python one, ~50 ms for ~700 documents on every run, changed or not).
    return (json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            + "\n").encode()


def fr_results(fetcher: Fetcher, context: FetchContext
               ) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Every page of both queries (results by query id) and the first URL requested: what a
    live run and the archive reader both read."""
    base = context.endpoints["url"].rstrip("/")
    by_query: dict[str, list[dict[str, Any]]] = {}
    first_url = ""
    for query_id, params in _fr_queries():
        results, url = _fr_pages(fetcher, base, params, query_id)
        by_query[query_id] = results
        first_url = first_url or url
    return by_query, first_url


def fetch_federal_register(fetcher: Fetcher, context: FetchContext) -> Fetched:
    """Fetch plan of ``us-federal-register``: two documents.json queries (DEA rules and
    proposed rules on 21 CFR Part 1308; DEA rules and proposed rules mentioning ketamine),
    every page of each, merged into one canonical JSON document. The marker is its sha256:
    unchanged → ``content=None``."""
    by_query, first_url = fr_results(fetcher, context)
    content = canonical_federal_register(by_query, context.today)
    marker = hashlib.sha256(content).hexdigest()
    if context.marker is not None and marker == context.marker:
        return Fetched(url=first_url, content=None, marker=marker)
    meta = {f"results:{q}": str(len(r)) for q, r in by_query.items()}
    return Fetched(url=first_url, content=content, content_type="application/json",
                   marker=marker, meta=meta)


# =========================================================================================
# Federal Register: parser
# =========================================================================================

_FR_CITATION = re.compile(r"\b(\d{1,3})\s*FR\s*(\d{1,6})\b")
#: "Placement of Ketamine Into Schedule III", "… From Schedule III to Schedule II".
_TARGET = re.compile(r"\b(?:into|to|in)\s+schedule\s+(V|IV|III|II|I)\b", re.IGNORECASE)
#: In an abstract only next to a scheduling verb: abstracts also say things like "controlled
#: substances in schedules III–V" that place nothing.
_ABSTRACT_TARGET = re.compile(r"\b(?:plac|transfer|mov|reschedul|control)\w*\b[^.;]{0,160}?"
                              r"\b(?:into|to|in)\s+schedule\s+(V|IV|III|II|I)\b",
                              re.IGNORECASE)
#: "Removal of X From Control"; not "removes X from schedule III and places it in II".
_REMOVAL = re.compile(r"\bremov\w*\b[^.;]{0,120}?\bfrom\s+(?:control|(?:all\s+)?the\s+"
                      r"schedules)\b", re.IGNORECASE)
REMOVAL = "removal from control"
#: The words by which a rule on a substance reaches its isomers, quoted in the isomer basis.
_ISOMER_PHRASE = re.compile(r"including (?:its|their) salts, (?:optical )?isomers,? and salts "
                            r"of (?:its |such |these )?isomers", re.IGNORECASE)


def _fr_type(value: Any) -> str | None:
    """The API's result ``type`` ("Rule", "Proposed Rule") or condition ("RULE",
    "PRORULE") as RULE / PRORULE; None for notices and the rest."""
    text = str(value or "").strip().lower().replace("_", " ")
    if text in ("rule", "final rule"):
        return "RULE"
    if text in ("proposed rule", "prorule"):
        return "PRORULE"
    return None


def _safe_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and " " not in value \
            and value.isprintable():
        return value
    return None


def _plain(value: Any) -> str:
    """``normalise_text`` of a string field ("" for anything else). ASCII text whose
    whitespace is already single spaces and that has no "- (" is returned as it is: the
    Unicode, dash and no-break-space folding change only non-ASCII characters and the
    hyphen rule needs "- (", so its regex passes are skipped (several per document, for
    hundreds of documents)."""
    if not isinstance(value, str):
        return ""
    if value.isascii() and value.isprintable() and "- (" not in value \
            and " ".join(value.split()) == value:
        return value
    return normalise_text(value)


EFFECTIVE_ON = "effective_on"
EFFECTIVE_DATES = "dates"
EFFECTIVE_PUBLISHED = "publication_date"
EFFECTIVE_LABELS = {
    EFFECTIVE_ON: "effective",
    EFFECTIVE_DATES: "effective (from the DATES text; effective_on is empty)",
    EFFECTIVE_PUBLISHED: "effective (publication date; no effective date stated)",
}
#: How an ``in_force_since_basis`` says where a fallback date came from.
_BASIS_SUFFIX = {EFFECTIVE_ON: "", EFFECTIVE_DATES: " (per its DATES text)",
                 EFFECTIVE_PUBLISHED: " (its publication date; no effective date stated)"}
_MONTH_DATE = r"(?P<month>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2}),\s*(?P<year>\d{4})"
#: "Effective date: August 12, 1999.", "This final rule is effective on February 1, 2024.",
#: "This temporary scheduling order is effective January 2, 2024." (real wordings, 2024 page).
_EFFECTIVE_IN_DATES = re.compile(r"\beffective\b[^.;]{0,60}?" + _MONTH_DATE, re.IGNORECASE)
#: "January 16, 2024. For the implementation date …": a DATES text that is a date.
_LEADING_DATE = re.compile(r"^" + _MONTH_DATE + r"\b")


def dates_text_effective(text: str) -> str | None:
    """The effective date a rule's DATES text states ("… is effective on February 1, 2024."
    → "2024-02-01"), or None when it states none readable."""
    match = _EFFECTIVE_IN_DATES.search(text) or _LEADING_DATE.match(text)
    return _month_date(match) if match else None


def _month_date(match: re.Match[str]) -> str | None:
    """The ISO date of a ``_MONTH_DATE`` match ("June 2, 1981" → "1981-06-02"), or None."""
    month = MONTH_NUMBERS.get(match.group("month").lower())
    if month is None:
        month = next((n for name, n in MONTH_NUMBERS.items()
                      if name[:3] == match.group("month").lower()[:3]), None)
    if month is None:
        return None
    try:
        return date(int(match.group("year")), month, int(match.group("day"))).isoformat()
    except ValueError:
        return None


@dataclass(frozen=True)
class FrDocument:
    """One Federal Register document, as the parser uses it."""

    number: str
    type: str | None  # RULE / PRORULE / None
    type_label: str
    title: str
    abstract: str
    action: str
    published: str
    effective: str | None
    comments_close: str | None
    citation: str | None
    html_url: str | None
    pdf_url: str | None
    xml_url: str | None
    dates_text: str
    #: Where ``effective`` comes from: EFFECTIVE_ON (the API field), EFFECTIVE_DATES (its
    #: DATES text, when effective_on is null: 7 of 120 real Rules in the 2024 page) or
    #: EFFECTIVE_PUBLISHED (neither gives a date: the publication date). None: no date.
    effective_source: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> FrDocument:
        number = data.get("document_number")
        if not isinstance(number, str) or not re.fullmatch(r"[\w.-]{1,40}", number):
            raise ExtractionError(f"Federal Register result #{index} has no valid "
                                  "document_number; the API changed")
        published = exact_iso_date(data.get("publication_date"))
        if published is None:
            raise ExtractionError(f"Federal Register document {number} has no valid "
                                  "publication_date; the API changed")
        # The query asks for rules and proposed rules only: a result without a recognisable
        # type or title means the API's fields changed, and must not read as "no final rule"
        # (which would say "descheduled").
        kind, type_label = _fr_type(data.get("type")), _plain(data.get("type"))
        if kind is None and not type_label:
            raise ExtractionError(f"Federal Register document {number} has no type; the API "
                                  "changed")
        title = _plain(data.get("title"))
        if not title:
            raise ExtractionError(f"Federal Register document {number} has no title; the API "
                                  "changed")
        citation = _plain(data.get("citation")) or None
        dates_text = _plain(data.get("dates"))
        effective, source = exact_iso_date(data.get("effective_on")), EFFECTIVE_ON
        if effective is None and kind == "RULE":
            effective, source = dates_text_effective(dates_text), EFFECTIVE_DATES
            if effective is None:
                effective, source = published, EFFECTIVE_PUBLISHED
        return cls(number=number, type=kind, type_label=type_label, title=title,
                   abstract=_plain(data.get("abstract")), action=_plain(data.get("action")),
                   published=published, effective=effective,
                   comments_close=exact_iso_date(data.get("comments_close_on")),
                   citation=citation, html_url=_safe_url(data.get("html_url")),
                   pdf_url=_safe_url(data.get("pdf_url")),
                   xml_url=_safe_url(data.get("full_text_xml_url")),
                   dates_text=dates_text,
                   effective_source=source if effective else None)

    @property
    def effective_label(self) -> str:
        """The label of ``effective`` in a record's dates: says where the date comes from."""
        return EFFECTIVE_LABELS.get(self.effective_source or EFFECTIVE_ON, "effective")

    @property
    def reference(self) -> str:
        return self.citation or f"FR Doc {self.number}"

    @property
    def is_withdrawal(self) -> bool:
        return "withdraw" in self.action.lower() or "withdrawal" in self.title.lower()

    @property
    def is_correction(self) -> bool:
        return "correction" in self.action.lower() or self.title.lower().endswith("correction")

    @property
    def target(self) -> str | None:
        """The schedule the document places or would place its substance in ("II" from
        "Transfer of Ketamine From Schedule III to Schedule II"), REMOVAL, or None."""
        for text, pattern in ((self.title, _TARGET), (self.abstract, _ABSTRACT_TARGET)):
            if _REMOVAL.search(text):
                return REMOVAL
            match = pattern.search(text)
            if match:
                return match.group(1).upper()
        return None

    @property
    def cited(self) -> frozenset[str]:
        """FR citations the document's own text names (other than its own)."""
        found: set[str] = set()
        for text in (self.title, self.abstract, self.action, self.dates_text):
            found.update(f"{v} FR {p}" for v, p in _FR_CITATION.findall(text))
        found.discard(self.citation or "")
        return frozenset(found)

    def in_effect(self, today: date) -> bool:
        return (self.effective or self.published) <= today.isoformat()

    def details(self) -> tuple[tuple[str, str], ...]:
        # "dates as printed" is kept beside "effective": the API's effective_on is machine
        # extracted and can be wrong (third-party note, SOURCES.md §1.1).
        pairs = [("document number", self.number), ("type", self.type_label),
                 ("title", self.title), ("published", self.published),
                 (self.effective_label, self.effective),
                 ("comment deadline", self.comments_close),
                 ("citation", self.citation), ("dates as printed", self.dates_text),
                 ("target", f"Schedule {self.target}" if self.target and self.target != REMOVAL
                  else self.target),
                 ("html", self.html_url), ("pdf", self.pdf_url),
                 ("full text xml", self.xml_url)]
        return tuple((label, value) for label, value in pairs if value)


def _mention_pattern(substance: Substance) -> re.Pattern[str]:
    names = sorted((re.escape(normalise_text(n)) for n in substance.names() if n.strip()),
                   key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(names) + r")(?![\w-])", re.IGNORECASE)


def _mentions(doc: FrDocument, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.search(doc.title) or pattern.search(doc.abstract))


#: The only characters that ``re.IGNORECASE`` matches with an ASCII character although
#: ``str.lower`` does not make them that character (KELVIN SIGN ~ k, LONG S ~ s, DOTLESS I
#: and I WITH DOT ABOVE ~ i; a test checks every code point): folded before the substring
#: pre-check, so that it never misses what the pattern matches.
_ASCII_CASE_FOLD = str.maketrans({"\u212a": "k", "\u017f": "s", "\u0131": "i",
                                  "\u0130": "i"})
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _folded(text: str) -> str:
    """A document field for the pre-check: lower case, the characters above folded."""
    return text.lower() if text.isascii() else text.translate(_ASCII_CASE_FOLD).lower()


def _needles(substance: Substance) -> tuple[str, ...] | None:
    """For each name of the mention pattern, a piece a text must hold (lower case, after
    ``_folded``) for the pattern to match it: the name, or for a name with non-ASCII
    letters ("kétamine") its longest ASCII run ("tamine"), since case-insensitive matching
    of other scripts has more equivalences than ``lower`` knows. None when a name has no
    ASCII at all: the substance is then searched in every document."""
    needles = []
    for name in (normalise_text(n) for n in substance.names() if n.strip()):
        runs = _ASCII_RUN.findall(name)
        if not runs:
            return None
        needles.append(max(runs, key=len).lower())
    return tuple(dict.fromkeys(needles))


class _Mentions:
    """Which documents name which substances (in title or abstract), worked out once per
    parse: the mention regex, with its lookarounds, is the parser's main cost, and every
    document is asked about again in each final / proposal / withdrawal comparison. A cheap
    substring test on the lower-cased fields comes first; a document that lacks every name
    cannot match the pattern."""

    def __init__(self, docs: Sequence[FrDocument]) -> None:
        self._docs = docs
        self._fields: list[tuple[str, str]] | None = None
        self._named: dict[Substance, frozenset[int]] = {}

    def documents(self, substance: Substance) -> frozenset[int]:
        """``id`` of each document that names the substance."""
        found = self._named.get(substance)
        if found is None:
            found = self._named[substance] = frozenset(self._search(substance))
        return found

    def _search(self, substance: Substance) -> Iterator[int]:
        pattern, needles = _mention_pattern(substance), _needles(substance)
        if needles is None:
            yield from (id(d) for d in self._docs if _mentions(d, pattern))
            return
        if self._fields is None:
            self._fields = [(_folded(d.title), _folded(d.abstract)) for d in self._docs]
        for doc, (title, abstract) in zip(self._docs, self._fields, strict=True):
            if any(n in title or n in abstract for n in needles) and _mentions(doc, pattern):
                yield id(doc)

    def __call__(self, doc: FrDocument, substance: Substance) -> bool:
        return id(doc) in self.documents(substance)


def _withdrawn(proposal: FrDocument, withdrawals: Sequence[FrDocument],
               naming: frozenset[int]) -> bool:
    """A withdrawal withdraws earlier proposals only: the ones whose citation it names or,
    naming none, those on the same substance (``naming``: the ``_Mentions.documents`` of
    the proposal's subject). Never one of its own day: on 1999-04-09 DEA withdrew the 1981
    proposal (64 FR 17298) and published a new one (64 FR 17299) in the same issue, and a
    withdrawal may well point at the new proposal."""
    for withdrawal in withdrawals:
        if withdrawal.published <= proposal.published:
            continue
        if withdrawal.cited:
            if proposal.citation and proposal.citation in withdrawal.cited:
                return True
        elif id(withdrawal) in naming:
            return True
    return False


def _superseded(proposal: FrDocument, finals: Sequence[FrDocument],
                naming: frozenset[int]) -> bool:
    """A later final rule on the same substance (``naming``, as for ``_withdrawn``) with the
    same target (or one citing the proposal) closes the proposal."""
    return any(
        final.published >= proposal.published and id(final) in naming
        and (final.target == proposal.target
             or (proposal.citation is not None and proposal.citation in final.cited))
        for final in finals)


def _isomer_cover(substance: Substance, watch: WatchList) -> Substance | None:
    if substance.relation != "isomer" or not substance.covered_by:
        return None
    return _substance_by_key(substance.covered_by, watch)


def _fr_record(substance: Substance, rule: FrDocument | None, document: Document,
               today: date, cover: Substance | None = None) -> StatusRecord:
    common: dict[str, Any] = {
        "jurisdiction": CODE, "substance": substance.key, "source_id": FR_SOURCE_ID,
        "document_sha256": document.sha256,
        "retrieved_at": document.retrieved_at.isoformat(),
        # The answer lists every document published up to the day it was asked for (US
        # Eastern): that is the date it speaks for.
        "evidence_date": today.isoformat(),
    }
    if rule is None:
        return StatusRecord(status="not_controlled", schedule=None, control_level=None,
                            instrument="Federal Register (DEA rules on 21 CFR Part 1308)",
                            provision=None, listed_as=None,
                            basis="no DEA final rule in the Federal Register results",
                            source_url=document.url, **common)
    removal = rule.target == REMOVAL
    if cover is None:
        basis = "final rule (removal from control)" if removal else "final rule"
    else:
        basis = f"isomer of {cover.name.lower()}, covered by the final rule {rule.reference}"
        phrase = _ISOMER_PHRASE.search(f"{rule.title} {rule.abstract}")
        if phrase:
            basis += f" (\"{phrase.group(0)}\")"
    dates = [("published", rule.published)]
    if rule.effective:
        dates.append((rule.effective_label, rule.effective))
    basis_of_date = None
    if rule.effective:
        basis_of_date = f"{rule.reference}, effective {rule.effective}" + \
            _BASIS_SUFFIX.get(rule.effective_source or EFFECTIVE_ON, "")
    return StatusRecord(
        status="not_controlled" if removal else "controlled",
        schedule=None if removal else rule.target,
        control_level=None if removal or rule.target is None
        else SCHEDULE_LEVELS.get(rule.target),
        instrument=rule.reference, provision=f"FR Doc {rule.number}", listed_as=rule.title,
        basis=basis, source_url=rule.html_url or document.url,
        effective_from=rule.effective, dates=tuple(dates),
        in_force_since=rule.effective, in_force_since_basis=basis_of_date,
        in_force_since_kind="instrument" if rule.effective else None, **common)


def _pending(substance: Substance, doc: FrDocument, action: str,
             cover: Substance | None) -> PendingItem:
    target = doc.target
    if action == "proposed_rule":
        what = "Proposed rule"
        label, when = ("comment deadline", doc.comments_close) if doc.comments_close \
            else (None, None)
    else:
        what = "Final rule, not yet effective"
        label, when = "effective", doc.effective
    change = REMOVAL if target == REMOVAL else f"Schedule {target}"
    description = f"{what} ({doc.reference}, published {doc.published}): {doc.title} " \
                  f"[{change}]"
    if cover is not None:
        description = f"Covers {substance.name.lower()} as an isomer of " \
                      f"{cover.name.lower()}. {description}"
    return PendingItem(
        jurisdiction=CODE, substance=substance.key, source_id=FR_SOURCE_ID,
        key=f"FR:{doc.number}", action=action, description=description,
        reference=doc.reference, proposed_schedule=None if target == REMOVAL else target,
        date_label=label, date=when, url=doc.html_url or doc.pdf_url, details=doc.details())


def _documents(document: Document) -> tuple[list[FrDocument], date | None]:
    """The documents of an answer, and the day an archived version speaks for (its
    ``as_of``, given by schedwatch's own archive reader in the version's meta — or, in
    versions archived before that, in the JSON; None for a live answer). A version read as
    of a day holds only the documents published by then."""
    data = load_json_object(document.content, "Federal Register document")
    as_of = None
    stated = document.meta.get("as_of") if "as_of" in document.meta else data.get("as_of")
    if stated is not None or "as_of" in data:
        day = exact_iso_date(stated)
        if day is None:
            raise ExtractionError("the archived Federal Register version has an unreadable "
                                  "\"as_of\" date; it is not what schedwatch's archive writes")
        as_of = date.fromisoformat(day)
    results = data.get("results")
    if not isinstance(results, list):
        raise ExtractionError("the Federal Register document has no \"results\" list; it is "
                              "not what the API (or schedwatch's canonical merge) returns")
    if not results:
        raise ExtractionError("no Federal Register documents in the results: DEA's 1999 final "
                              "rule placing ketamine in Schedule III (64 FR 37673) must always "
                              "be there, so the API or the query is broken")
    if as_of is not None:
        # Only what was published by that day (a later document, even a malformed one, is
        # not part of that day's version).
        day_s = as_of.isoformat()
        results = [r for r in results if not isinstance(r, dict)
                   or (exact_iso_date(r.get("publication_date")) or "") <= day_s]
        if not results:
            raise ExtractionError(f"no Federal Register document published by {as_of}: an "
                                  "archived version speaks for a day its list cannot hold")
    return [FrDocument.from_json(r if isinstance(r, dict) else {}, i)
            for i, r in enumerate(results)], as_of


def _names_isomers(doc: FrDocument) -> bool:
    return "isomer" in (doc.abstract + " " + doc.title).lower()


#: Whom a document must mention for a substance: the substance itself (via None) or, for an
#: isomer, the substance it is an isomer of (via that substance).
_Subject = tuple[Substance, Substance | None]


def _subjects(substance: Substance, watch: WatchList) -> list[_Subject]:
    subjects: list[_Subject] = [(substance, None)]
    cover = _isomer_cover(substance, watch)
    if cover is not None:
        subjects.append((cover, cover))
    return subjects


def _concerns(doc: FrDocument, subject: _Subject, mentions: _Mentions) -> bool:
    """The document is about the subject: names it, and (through a parent substance) names
    isomers too."""
    named, via = subject
    return mentions(doc, named) and (via is None or _names_isomers(doc))


def _rule_in_effect(substance: Substance, subjects: Sequence[_Subject],
                    finals: Sequence[FrDocument], today: date, document: Document,
                    mentions: _Mentions) -> StatusRecord:
    """The record of the latest final rule in effect on the substance (directly first, then
    through its parent), or "no DEA final rule"."""
    for subject in subjects:
        in_effect = [f for f in finals
                     if _concerns(f, subject, mentions) and f.in_effect(today)]
        if in_effect:
            latest = max(in_effect, key=lambda f: (f.effective or f.published, f.published,
                                                   f.number))
            return _fr_record(substance, latest, document, today, subject[1])
    return _fr_record(substance, None, document, today)


def _open_items(substance: Substance, subjects: Sequence[_Subject],
                finals: Sequence[FrDocument], proposals: Sequence[FrDocument],
                withdrawals: Sequence[FrDocument], today: date,
                mentions: _Mentions) -> list[PendingItem]:
    """Final rules not yet effective, and proposals neither withdrawn nor superseded."""
    items: list[PendingItem] = []
    seen: set[str] = set()
    for subject in subjects:
        naming = mentions.documents(subject[0])
        via = subject[1]
        for doc in finals:
            if doc.number not in seen and _concerns(doc, subject, mentions) \
                    and not doc.in_effect(today):
                seen.add(doc.number)
                items.append(_pending(substance, doc, "final_rule", via))
        for doc in proposals:
            if doc.number in seen or not _concerns(doc, subject, mentions) \
                    or _withdrawn(doc, withdrawals, naming) \
                    or _superseded(doc, finals, naming):
                continue
            seen.add(doc.number)
            items.append(_pending(substance, doc, "proposed_rule", via))
    return items


def _check_complete(docs: Sequence[FrDocument], watch: WatchList,
                    required: Mapping[str, Sequence[Establishing]],
                    as_of: date | None = None) -> None:
    """ExtractionError when the answer lacks a document that establishes the current status
    of a watched substance (or of the substance an isomer is covered by): a non-empty answer
    without 64 FR 37673 is incomplete or another query's, and read as it is it would make
    ketamine "not controlled" (the real 2024 API page does exactly that)."""
    present = {d.number for d in docs}
    for substance in watch.substances:
        cover = _isomer_cover(substance, watch)
        for key in dict.fromkeys([substance.key] + ([cover.key] if cover else [])):
            for needed in required.get(key, ()):
                if as_of is not None and needed.published is not None \
                        and needed.published > as_of.isoformat():
                    continue  # an archived version of a day before it was published
                if needed.document_number not in present:
                    raise ExtractionError(
                        f"the Federal Register answer ({len(docs)} documents) lacks FR Doc "
                        f"{needed.document_number} ({needed.citation}), {needed.what}, which "
                        f"establishes {key}'s current status: the answer is incomplete or "
                        "not DEA's Part 1308 query; refused rather than read as not "
                        "controlled")


#: Hosts whose document links an action may carry (the API's html_url / pdf_url).
_ACTION_HOSTS = frozenset({"www.federalregister.gov", "federalregister.gov",
                           "www.govinfo.gov", "govinfo.gov"})
#: "withdrawing a Notice of Proposed Rulemaking (NPRM) which was published on June 2, 1981
#: (46 FR 29484)" (the real 99-8812): what a withdrawal withdrew, and when that was published.
_WITHDREW = re.compile(r"published\s+on\s+" + _MONTH_DATE + r"\s*\(\s*(?P<cit>\d{1,3}\s*FR\s*"
                       r"\d{1,6})\s*\)", re.IGNORECASE)


def _action_url(doc: FrDocument) -> str | None:
    """The document's html_url (else its pdf_url) when it is an https link on the Federal
    Register's or govinfo's own host: a scraped URL shown to a reader must lead there."""
    for url in (doc.html_url, doc.pdf_url):
        if url and url.startswith("https://") \
                and (urlsplit(url).hostname or "").lower() in _ACTION_HOSTS:
            return url
    return None


def _change_words(target: str | None, proposed: bool = False) -> str | None:
    if target is None:
        return None
    if target == REMOVAL:
        return "proposed removal from control" if proposed else "removed from control"
    return f"proposed placement in Schedule {target}" if proposed \
        else f"placed in Schedule {target}"


def _withdrew(doc: FrDocument) -> str:
    """What a withdrawal withdrew, in words, as far as its own text says."""
    found = _WITHDREW.search(doc.abstract) or _WITHDREW.search(doc.dates_text)
    if found:
        citation = " ".join(found.group("cit").replace("FR", " FR ").split())
        published = _month_date(found)
        when = f" (published {published})" if published else ""
        return f"withdrew the proposed rule {citation}{when}"
    cited = sorted(doc.cited)
    if cited:
        return f"withdrew the proposed rule {', '.join(cited)}"
    return "withdrew an earlier proposed rule (its text names none)"


def _document_actions(substance: Substance, doc: FrDocument,
                      via: Substance | None) -> list[ScheduledAction]:
    common: dict[str, Any] = {
        "jurisdiction": CODE, "substance": substance.key, "source_id": FR_SOURCE_ID,
        "title": doc.title, "citation": doc.reference, "document": f"FR Doc {doc.number}",
        "url": _action_url(doc)}
    suffix = f" (covers {substance.name.lower()} as an isomer of {via.name.lower()})" \
        if via is not None else ""
    if doc.is_withdrawal:
        return [ScheduledAction(date=doc.published, date_kind="published",
                                action="withdrawal of proposed rule",
                                effect=_withdrew(doc) + suffix, **common)]
    if doc.is_correction:
        return [ScheduledAction(date=doc.published, date_kind="published",
                                action="correction", effect=None, **common)]
    if doc.target is None:
        return []  # names the substance but changes no schedule (a telemedicine rule)
    if doc.type == "PRORULE":
        return [ScheduledAction(date=doc.published, date_kind="published",
                                action="proposed rule",
                                effect=f"{_change_words(doc.target, True)}{suffix}", **common)]
    if doc.type != "RULE":
        return []
    words = _change_words(doc.target)
    found = [ScheduledAction(date=doc.published, date_kind="published", action="final rule",
                             effect=f"{words}{suffix}", **common)]
    if doc.effective and doc.effective_source in (EFFECTIVE_ON, EFFECTIVE_DATES):
        found.append(ScheduledAction(date=doc.effective, date_kind="effective",
                                     action="final rule takes effect",
                                     effect=f"{words} from this date{suffix}", **common))
    return found


def _page(citation: str) -> tuple[int, int]:
    found = _FR_CITATION.search(citation)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _actions(substance: Substance, subjects: Sequence[_Subject], docs: Sequence[FrDocument],
             mentions: _Mentions) -> list[ScheduledAction]:
    """The substance's scheduling history in these documents, oldest first: proposed rules,
    withdrawals of proposed rules (with what they withdrew, when their text says: 99-8812
    withdraws the 1981 NPRM 46 FR 29484, older than the API), final rules (published) and
    the day each final rule took effect (its own action, ``date_kind`` "effective"). A
    document counts when it names the substance (or, for an isomer, its parent and
    isomers); on one day, in page order (64 FR 17298, the withdrawal, before 64 FR 17299,
    the new proposal)."""
    found: list[ScheduledAction] = []
    seen: set[str] = set()
    for subject in subjects:
        for doc in docs:
            if doc.number not in seen and _concerns(doc, subject, mentions):
                seen.add(doc.number)
                found.extend(_document_actions(substance, doc, subject[1]))
    order = {"published": 0, "effective": 1}
    found.sort(key=lambda a: (a.date, order.get(a.date_kind, 2), _page(a.citation),
                              a.document or ""))
    return found


def parse_federal_register(document: Document, watch: WatchList) -> ParseResult:
    """Parser of ``us-federal-register`` (``read_federal_register`` with the documents that
    every answer must hold, ``ESTABLISHED_BY``)."""
    return read_federal_register(document, watch, required=ESTABLISHED_BY)


def read_federal_register(document: Document, watch: WatchList, *,
                          required: Mapping[str, Sequence[Establishing]]) -> ParseResult:
    """Parser of ``us-federal-register``: the canonical JSON of ``fetch_federal_register``
    (or one raw documents.json page) → per watched substance, a record of the latest final
    rule in effect that placed it (or its parent, for an isomer); pending items for open
    proposals (not withdrawn, not followed by a final rule on the same change) and for final
    rules whose effective date is after the retrieval date (US Eastern).

    A document is about a substance when its title or abstract names it; its change is read
    from the title ("Placement of Ketamine Into Schedule III", "… From Schedule III to
    Schedule II", "Removal of … From Control"), else from the abstract. ``watch.all_entries``
    adds nothing here: the FR reports only on watched substances.

    ``required``: substance key → documents an answer must hold (ExtractionError without
    them). Records carry ``in_force_since`` (the rule's effective date), its basis ("64 FR
    37673, effective 1999-08-12") and ``evidence_date`` (the retrieval day in Washington)."""
    docs, as_of = _documents(document)
    _check_complete(docs, watch, required, as_of)
    today = as_of or _local_date(document.retrieved_at)
    withdrawals = [d for d in docs if d.is_withdrawal]
    finals = [d for d in docs if d.type == "RULE" and not d.is_withdrawal
              and not d.is_correction and d.target]
    proposals = [d for d in docs if d.type == "PRORULE" and not d.is_withdrawal
                 and not d.is_correction and d.target]
    mentions = _Mentions(docs)
    records: list[StatusRecord] = []
    pending: list[PendingItem] = []
    actions: list[ScheduledAction] = []
    for substance in watch.substances:
        subjects = _subjects(substance, watch)
        records.append(_rule_in_effect(substance, subjects, finals, today, document, mentions))
        pending.extend(_open_items(substance, subjects, finals, proposals, withdrawals, today,
                                   mentions))
        actions.extend(_actions(substance, subjects, docs, mentions))
    return ParseResult(
        records=tuple(records), pending=tuple(pending), actions=tuple(actions),
        document_dates=(("latest Federal Register document published",
                         max(d.published for d in docs)),),
        title="Federal Register: DEA rules and proposed rules on 21 CFR Part 1308")


