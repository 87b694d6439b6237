"""Fetch-plan tests for the US sources against a real HTTP server on localhost
(pytest-httpserver) through the real ``scrapers.fetch.HttpFetcher``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug import Request, Response

from jurisdictions import us
from jurisdictions.base import FetchContext, Fetched
from jurisdictions.substances import build_watch_list
from scrapers.errors import ExtractionError, FetchError
from scrapers.fetch import FetchPolicy, HttpFetcher
from scrapers.records import Document, validate
from tests.support.documents import shared_doc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "us"
TITLES = "/api/versioner/v1/titles.json"
FULL = "/api/versioner/v1/full/2026-06-10/title-21.xml"
VERSIONS = "/api/versioner/v1/versions/title-21.json"
BULK = "/bulkdata/ECFR/title-21/ECFR-title21.xml"
FR_DOCUMENTS = "/api/v1/documents.json"
#: The path of the real API's next_page_url: no ".json", "format=json" in the query.
FR_NEXT = "/api/v1/documents"
WATCH = build_watch_list(["ketamine", "esketamine", "arketamine"])


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def fetcher():
    with HttpFetcher(FetchPolicy(user_agent="schedwatch-test", min_interval=0, backoff=0.01,
                                 max_retries=2)) as http:
        yield http


def ecfr_context(httpserver, marker: str | None = None) -> FetchContext:
    return FetchContext(source_id=us.ECFR_SOURCE_ID,
                        endpoints={"url": httpserver.url_for("/").rstrip("/"),
                                   "bulk_url": httpserver.url_for(BULK)},
                        marker=marker, today=date(2026, 6, 11))


def fr_context(httpserver, marker: str | None = None,
               today: date = date(2026, 6, 11)) -> FetchContext:
    return FetchContext(source_id=us.FR_SOURCE_ID,
                        endpoints={"url": httpserver.url_for("/").rstrip("/")},
                        marker=marker, today=today)


def robots(httpserver, body: str | None = None) -> None:
    # pytest-httpserver answers 500 to unregistered paths: register robots.txt every time.
    if body is None:
        httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    else:
        httpserver.expect_request("/robots.txt").respond_with_data(body,
                                                                   content_type="text/plain")


def requested(httpserver) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def to_document(fetched: Fetched, source_id: str) -> Document:
    assert fetched.content is not None
    return Document(source_id=source_id, url=fetched.url, content=fetched.content,
                    sha256=hashlib.sha256(fetched.content).hexdigest(),
                    retrieved_at=datetime.now(UTC), meta=fetched.meta)


def serve_titles_and_versions(httpserver) -> None:
    httpserver.expect_request(TITLES).respond_with_data(
        fixture_bytes("ecfr-titles.json"), content_type="application/json")
    httpserver.expect_request(VERSIONS, query_string={
        "part": "1308", "issue_date[gte]": us.VERSIONS_SINCE}).respond_with_data(
        fixture_bytes("ecfr-versions-1308.json"), content_type="application/json")


# --- eCFR ----------------------------------------------------------------------------------

def test_ecfr_unchanged_title_downloads_nothing(httpserver, fetcher):
    robots(httpserver)
    serve_titles_and_versions(httpserver)
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver, marker="2026-06-10"))
    assert fetched.content is None
    assert fetched.marker == "2026-06-10"
    assert FULL not in requested(httpserver)
    assert VERSIONS not in requested(httpserver)
    assert BULK not in requested(httpserver)


def test_ecfr_changed_title_fetches_part_1308_from_the_versioner(httpserver, fetcher):
    robots(httpserver)
    serve_titles_and_versions(httpserver)
    httpserver.expect_request(FULL, query_string={"part": "1308"}).respond_with_data(
        fixture_bytes("ecfr-part1308.xml"), content_type="application/xml")
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver, marker="2026-06-09"))
    assert fetched.content == fixture_bytes("ecfr-part1308.xml")
    assert fetched.marker == "2026-06-10"
    assert fetched.url.endswith(f"{FULL}?part=1308")
    assert fetched.meta["fetched_via"] == "versioner"
    assert fetched.meta["up_to_date_as_of"] == "2026-06-10"
    assert fetched.meta["title_latest_amended_on"] == "2026-05-20"
    assert fetched.meta["latest_amended_on"] == "2024-01-02"  # § 1308.49 (2025) is not a schedule
    assert fetched.meta["amended_on:1308.13"] == "2019-03-15"
    assert fetched.meta["part_latest_amended_on"] == "2025-02-14"
    assert BULK not in requested(httpserver)

    result = validate(us.parse_ecfr(to_document(fetched, us.ECFR_SOURCE_ID), WATCH),
                      source_id=us.ECFR_SOURCE_ID, watched=WATCH.keys)
    ketamine = next(r for r in result.records if r.substance == "ketamine")
    assert ketamine.provision == "21 CFR 1308.13(c)(7)"
    assert ("eCFR up to date as of", "2026-06-10") in ketamine.dates
    assert ("§ 1308.13 last amended", "2019-03-15") in ketamine.dates


def test_ecfr_first_run_without_marker_fetches(httpserver, fetcher):
    robots(httpserver, "User-agent: *\nAllow: /\n")
    serve_titles_and_versions(httpserver)
    httpserver.expect_request(FULL, query_string={"part": "1308"}).respond_with_data(
        fixture_bytes("ecfr-part1308.xml"))
    assert us.fetch_ecfr(fetcher, ecfr_context(httpserver)).content is not None


def test_ecfr_robots_disallowing_full_falls_back_to_bulk(httpserver, fetcher):
    robots(httpserver, "User-agent: *\nDisallow: /api/versioner/v1/full/\n"
                       "Disallow: /api/renderer/v1/content/\n")
    serve_titles_and_versions(httpserver)
    httpserver.expect_request(BULK).respond_with_data(
        fixture_bytes("ecfr-bulk-title21-excerpt.xml"), content_type="application/xml")
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver, marker="2026-06-09"))
    assert FULL not in requested(httpserver)
    assert fetched.meta["fetched_via"] == "govinfo-bulk"
    assert fetched.meta["amddate"] == "May 20, 2026"
    assert fetched.marker == "2026-06-10"
    content = fetched.content or b""
    assert b'<DIV5 N="1308"' in content
    assert b'N="1300"' not in content and b'N="1310"' not in content
    assert b"DLPSTEXTCLASS" not in content
    result = us.parse_ecfr(to_document(fetched, us.ECFR_SOURCE_ID), WATCH)
    assert next(r for r in result.records if r.substance == "ketamine").code == "7285"
    assert fetched.meta["amddate_volume"] == "9"
    assert ("Title 21 volume 9 amended as of (AMDDATE, weak)", "2026-05-20") in \
        result.document_dates


def test_ecfr_503_with_retry_after_is_retried(httpserver, fetcher):
    robots(httpserver)
    httpserver.expect_oneshot_request(TITLES).respond_with_data(
        "title 21 is being processed", status=503, headers={"Retry-After": "0"})
    serve_titles_and_versions(httpserver)
    httpserver.expect_request(FULL, query_string={"part": "1308"}).respond_with_data(
        fixture_bytes("ecfr-part1308.xml"))
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver, marker="2026-06-01"))
    assert fetched.content == fixture_bytes("ecfr-part1308.xml")
    statuses = [status for url, status in fetcher.log if url.endswith(TITLES)]
    assert statuses == ["503", "200"]


def test_ecfr_versions_are_paged(httpserver, fetcher):
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data(fixture_bytes("ecfr-titles.json"))
    first = json.loads(fixture_bytes("ecfr-versions-1308.json"))
    first["meta"]["total_pages"] = "2"
    second = {"content_versions": [{"amendment_date": "2025-12-01", "identifier": "1308.13",
                                    "issue_date": "2025-12-01"}],
              "meta": {"page": "2", "total_pages": "2"}}
    httpserver.expect_request(VERSIONS, query_string={
        "part": "1308", "issue_date[gte]": us.VERSIONS_SINCE, "page": "2"}).respond_with_json(second)
    httpserver.expect_request(VERSIONS, query_string={
        "part": "1308", "issue_date[gte]": us.VERSIONS_SINCE}).respond_with_json(first)
    httpserver.expect_request(FULL).respond_with_data(fixture_bytes("ecfr-part1308.xml"))
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver))
    assert fetched.meta["amended_on:1308.13"] == "2025-12-01"
    assert fetched.meta["latest_amended_on"] == "2025-12-01"


@pytest.mark.parametrize("body, message", [
    (json.dumps({"titles": [{"number": 20, "up_to_date_as_of": "2026-06-10"}]}), "does not list title 21"),
    (json.dumps({"titles": [{"number": 21, "up_to_date_as_of": "../../etc"}]}), "no valid up_to_date_as_of"),
    (json.dumps({"error": "maintenance"}), 'no "titles" list'),
    ("<!DOCTYPE html><html><body>Down for maintenance</body></html>", "HTML page"),
    ("{not json", "not JSON"),
])
def test_ecfr_bad_titles_answer_is_an_extraction_error(httpserver, fetcher, body, message):
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data(body)
    with pytest.raises(ExtractionError, match=message):
        us.fetch_ecfr(fetcher, ecfr_context(httpserver))
    assert requested(httpserver)[-1] == TITLES


def test_ecfr_http_failure_is_a_fetch_error(httpserver, fetcher):
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data("gone", status=404)
    with pytest.raises(FetchError) as raised:
        us.fetch_ecfr(fetcher, ecfr_context(httpserver))
    assert raised.value.status == 404


def test_ecfr_bulk_without_part_1308_is_an_extraction_error(httpserver, fetcher):
    robots(httpserver, "User-agent: *\nDisallow: /api/versioner/v1/full/\n")
    serve_titles_and_versions(httpserver)
    text = fixture_bytes("ecfr-bulk-title21-excerpt.xml").decode()
    text = text.replace('<DIV5 N="1308"', '<DIV5 N="1309"')
    httpserver.expect_request(BULK).respond_with_data(text.encode())
    with pytest.raises(ExtractionError, match=r"parts found: 1300, 1309, 1310"):
        us.fetch_ecfr(fetcher, ecfr_context(httpserver))


# --- Federal Register ----------------------------------------------------------------------

def fr_handler(pages: dict[str, bytes]):
    """Serve documents.json: the cfr query gets page 1 then (with page=2) page 2; the term
    query gets the ketamine answer. Anything else is a test failure (400)."""

    def handle(request: Request) -> Response:
        args = request.args
        if args.get("conditions[term]") == "ketamine" and "conditions[cfr][part]" not in args:
            return Response(pages["term"], content_type="application/json")
        if args.get("conditions[cfr][part]") == "1308" and args.get("conditions[cfr][title]") == "21":
            body = pages["page2"] if args.get("page") == "2" else pages["page1"]
            return Response(body, content_type="application/json")
        return Response("unexpected query", status=400)

    return handle


def default_pages() -> dict[str, bytes]:
    return {"page1": fixture_bytes("fr-documents-page1.json"),
            "page2": fixture_bytes("fr-documents-page2.json"),
            "term": fixture_bytes("fr-documents-ketamine.json")}


def serve_fr(httpserver, pages: dict[str, bytes]) -> None:
    """documents.json, and the real next_page_url's /api/v1/documents, same handler."""
    for path in (FR_DOCUMENTS, FR_NEXT):
        httpserver.expect_request(path).respond_with_handler(fr_handler(pages))


def test_fr_follows_pages_and_merges_both_queries(httpserver, fetcher):
    robots(httpserver)
    serve_fr(httpserver, default_pages())
    fetched = us.fetch_federal_register(fetcher, fr_context(httpserver))
    paths = [r.path for r, _ in httpserver.log if r.path in (FR_DOCUMENTS, FR_NEXT)]
    # page 2 through the real next_page_url form: no .json in the path, format=json
    assert paths == [FR_DOCUMENTS, FR_NEXT, FR_DOCUMENTS]
    queries = [parse_qs(urlsplit(r.url).query) for r, _ in httpserver.log
               if r.path in (FR_DOCUMENTS, FR_NEXT)]
    assert len(queries) == 3  # page 1, page 2 (next_page_url, rebased here), term query
    first = queries[0]
    assert first["conditions[agencies][]"] == ["drug-enforcement-administration"]
    assert first["conditions[type][]"] == ["RULE", "PRORULE"]
    assert first["conditions[cfr][title]"] == ["21"] and first["conditions[cfr][part]"] == ["1308"]
    assert first["per_page"] == ["1000"] and first["order"] == ["oldest"]
    assert {"document_number", "type", "title", "publication_date", "effective_on",
            "comments_close_on", "citation", "html_url", "pdf_url", "full_text_xml_url",
            "abstract", "action", "dates", "cfr_references"} <= set(first["fields[]"])
    assert queries[1]["page"] == ["2"] and queries[1]["format"] == ["json"]
    assert queries[2]["conditions[term]"] == ["ketamine"]
    assert queries[2]["conditions[type][]"] == ["RULE", "PRORULE"]

    data = json.loads(fetched.content or b"")
    numbers = [r["document_number"] for r in data["results"]]
    assert numbers == ["97-11111", "99-8812", "99-8815", "99-17803", "2023-04248", "2024-00001"]
    matched = {r["document_number"]: r["matched_by"] for r in data["results"]}
    assert matched["99-17803"] == ["cfr-21-part-1308", "term-ketamine"]
    assert matched["2023-04248"] == ["term-ketamine"]
    assert fetched.marker == hashlib.sha256(fetched.content or b"").hexdigest()
    assert fetched.meta == {"results:cfr-21-part-1308": "5", "results:term-ketamine": "4"}

    result = validate(us.parse_federal_register(to_document(fetched, us.FR_SOURCE_ID), WATCH),
                      source_id=us.FR_SOURCE_ID, watched=WATCH.keys)
    ketamine = next(r for r in result.records if r.substance == "ketamine")
    assert (ketamine.schedule, ketamine.instrument) == ("III", "64 FR 37673")
    assert result.pending == ()


def test_fr_canonical_document_is_byte_identical_across_fetches(httpserver, fetcher):
    robots(httpserver)
    serve_fr(httpserver, default_pages())
    first = us.fetch_federal_register(fetcher, fr_context(httpserver))
    second = us.fetch_federal_register(fetcher, fr_context(httpserver))
    assert first.content == second.content
    assert first.marker == second.marker
    # with the marker of the last healthy parse, nothing new: no content to archive
    third = us.fetch_federal_register(fetcher, fr_context(httpserver, marker=first.marker))
    assert third.content is None and third.marker == first.marker


def test_fr_pages_served_in_another_order_give_the_same_bytes(httpserver, fetcher):
    robots(httpserver)
    pages = default_pages()
    term = json.loads(pages["term"])
    term["results"].reverse()
    for result in term["results"]:  # keys in another order too
        items = list(result.items())
        result.clear()
        result.update(reversed(items))
    pages["term"] = json.dumps(term).encode()
    serve_fr(httpserver, pages)
    shuffled = us.fetch_federal_register(fetcher, fr_context(httpserver))
    httpserver.clear_all_handlers()
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    serve_fr(httpserver, default_pages())
    plain = us.fetch_federal_register(fetcher, fr_context(httpserver))
    assert shuffled.content == plain.content


def test_fr_empty_term_answer_without_results_key(httpserver, fetcher):
    robots(httpserver)
    pages = default_pages()
    pages["term"] = json.dumps({"count": 0, "description": "none", "total_pages": 0}).encode()
    serve_fr(httpserver, pages)
    fetched = us.fetch_federal_register(fetcher, fr_context(httpserver))
    assert json.loads(fetched.content or b"")["count"] == 5


@pytest.mark.parametrize("body, message", [
    (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "HTML page"),
    (b'{"errors": {"conditions": "unknown"}}', 'no "results" list'),
])
def test_fr_bad_api_answers_are_extraction_errors(httpserver, fetcher, body, message):
    robots(httpserver)
    httpserver.expect_request(FR_DOCUMENTS).respond_with_data(body)
    with pytest.raises(ExtractionError, match=message):
        us.fetch_federal_register(fetcher, fr_context(httpserver))


def test_fr_next_page_url_that_is_not_a_documents_page_is_refused(httpserver, fetcher):
    robots(httpserver)
    page = json.loads(fixture_bytes("fr-documents-page1.json"))
    page["next_page_url"] = "https://elsewhere.example/admin/delete?all=1"
    pages = default_pages()
    pages["page1"] = json.dumps(page).encode()
    serve_fr(httpserver, pages)
    with pytest.raises(ExtractionError, match="not a documents.json page"):
        us.fetch_federal_register(fetcher, fr_context(httpserver))
    assert all(r.path in ("/robots.txt", FR_DOCUMENTS) for r, _ in httpserver.log)


def test_fr_future_final_rule_date_passing_changes_the_document(httpserver, fetcher):
    robots(httpserver)
    pages = default_pages()
    page2 = json.loads(pages["page2"])
    page2["results"].extend(json.loads(fixture_bytes("fr-documents-final-future.json"))["results"])
    pages["page2"] = json.dumps(page2).encode()
    serve_fr(httpserver, pages)
    before = us.fetch_federal_register(fetcher, fr_context(httpserver, today=date(2031, 9, 15)))
    after = us.fetch_federal_register(fetcher, fr_context(httpserver, today=date(2031, 10, 1)))
    assert json.loads(before.content or b"")["not_yet_effective"] == ["2031-19876"]
    assert before.marker != after.marker


def test_ecfr_versions_failure_keeps_the_part(httpserver, fetcher):
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data(fixture_bytes("ecfr-titles.json"))
    httpserver.expect_request(VERSIONS).respond_with_json(
        {"error": "An issue_date parameter must be provided."}, status=400)
    httpserver.expect_request(FULL).respond_with_data(fixture_bytes("ecfr-part1308.xml"))
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver))
    assert fetched.content == fixture_bytes("ecfr-part1308.xml")
    assert "400" in fetched.meta["versions_error"]
    assert "latest_amended_on" not in fetched.meta


# --- Real formats (issue 15) and hostile answers -------------------------------------------

REAL_NEXT = ("https://www.federalregister.gov/api/v1/documents?conditions%5Bpublication_date"
             "%5D%5Byear%5D=2024&fields%5B%5D=abstract&format=json&order=oldest&page=2"
             "&per_page=1000")


@pytest.mark.parametrize("next_url, expected", [
    # the real form (no .json in the path, format=json in the query), rebased
    (REAL_NEXT, "http://127.0.0.1:9/api/v1/documents?" + REAL_NEXT.split("?", 1)[1]),
    # the .json form
    ("https://www.federalregister.gov/api/v1/documents.json?page=2&per_page=1000",
     "http://127.0.0.1:9/api/v1/documents.json?page=2&per_page=1000"),
    # already on the configured host
    ("http://127.0.0.1:9/api/v1/documents?format=json&page=3",
     "http://127.0.0.1:9/api/v1/documents?format=json&page=3"),
])
def test_fr_next_page_accepts_both_api_forms(next_url, expected):
    assert us.next_page(next_url, "http://127.0.0.1:9") == expected


@pytest.mark.parametrize("next_url, message", [
    ("https://www.federalregister.gov/api/v1/agencies?format=json&page=2", "not a documents.json page"),
    ("https://www.federalregister.gov/api/v2/documents.json?page=2", "not a documents.json page"),
    ("https://www.federalregister.gov/api/v1/documents/99-17803.json", "not a documents.json page"),
    ("file:///api/v1/documents.json", "not a documents.json page"),
    ("https://evil.example/api/v1/documents.json?page=2", "another host"),
    ("https://www.federalregister.gov/api/v1/documents?page=2", "does not ask for JSON"),
])
def test_fr_next_page_refuses_other_urls(next_url, message):
    with pytest.raises(ExtractionError, match=message):
        us.next_page(next_url, "http://127.0.0.1:9")


def test_fr_next_page_of_the_real_api_page_is_followed(httpserver, fetcher):
    """The real API page's own next_page_url (page 1 of 2, 2024) is followed on the
    configured host; the merged answer lacks the 1999 rule, so it parses to a clear
    ExtractionError, not to "not controlled"."""
    real = shared_doc("us/fr-api-documents-2024-page1-of-2.json")
    assert "/api/v1/documents?" in json.loads(real)["next_page_url"]
    robots(httpserver)
    httpserver.expect_request(FR_DOCUMENTS).respond_with_data(real,
                                                              content_type="application/json")
    httpserver.expect_request(FR_NEXT, query_string=None).respond_with_json(
        {"count": 1893, "total_pages": 2, "results": []})
    fetched = us.fetch_federal_register(fetcher, fr_context(httpserver))
    followed = [parse_qs(urlsplit(r.url).query) for r, _ in httpserver.log if r.path == FR_NEXT]
    assert len(followed) == 2  # one per query
    assert all(q["format"] == ["json"] and q["page"] == ["2"] for q in followed)
    assert json.loads(fetched.content or b"")["count"] == 1000
    with pytest.raises(ExtractionError, match=r"lacks FR Doc 99-17803 \(64 FR 37673\)"):
        us.parse_federal_register(to_document(fetched, us.FR_SOURCE_ID), WATCH)


DEEP = b'{"titles": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


def test_ecfr_deeply_nested_titles_answer_is_an_extraction_error(httpserver, fetcher):
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data(DEEP, content_type="application/json")
    with pytest.raises(ExtractionError, match="nested deeper"):
        us.fetch_ecfr(fetcher, ecfr_context(httpserver))


def test_ecfr_deeply_nested_versions_answer_keeps_the_part(httpserver, fetcher):
    """The versions answer only dates the sections: a hostile one is noted, not a crash."""
    robots(httpserver)
    httpserver.expect_request(TITLES).respond_with_data(fixture_bytes("ecfr-titles.json"))
    httpserver.expect_request(VERSIONS).respond_with_data(DEEP, content_type="application/json")
    httpserver.expect_request(FULL).respond_with_data(fixture_bytes("ecfr-part1308.xml"))
    fetched = us.fetch_ecfr(fetcher, ecfr_context(httpserver))
    assert fetched.content == fixture_bytes("ecfr-part1308.xml")
    assert "nested deeper" in fetched.meta["versions_error"]


@pytest.mark.parametrize("where", ["page1", "page2", "term"])
def test_fr_deeply_nested_answer_is_an_extraction_error(httpserver, fetcher, where):
    robots(httpserver)
    pages = default_pages()
    pages[where] = b'{"results": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    serve_fr(httpserver, pages)
    with pytest.raises(ExtractionError, match="nested deeper"):
        us.fetch_federal_register(fetcher, fr_context(httpserver))
