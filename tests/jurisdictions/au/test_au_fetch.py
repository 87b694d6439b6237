"""The Poisons Standard fetch plan against a real local HTTP server (pytest-httpserver) through
the real ``HttpFetcher``: one server plays both the register's API and its website. The API
answers are CONSTRUCTED in the register's OData shape (tests/fixtures/README.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from werkzeug import Request, Response

from jurisdictions import au
from jurisdictions.base import FetchContext
from jurisdictions.substances import build_watch_list
from scrapers.errors import ExtractionError, FetchError
from scrapers.fetch import FetchPolicy, HttpFetcher
from scrapers.records import Document
from tests.support.documents import shared_doc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "au"
JUNE_WORD = "/F2026L00633/asmade/2026-05-28/text/original/word"
OCTOBER_WORD = "/F2026L01302/asmade/2026-09-25/text/original/word"
# As the register's robots.txt reads (third-party copy, 2026-09-05).
ROBOTS = "User-agent: *\nCrawl-delay: 10\nDisallow: /assets/\n"


class FakeTime:
    """An injectable clock and sleep: waits are recorded, never slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def time_():
    return FakeTime()


@pytest.fixture
def fetcher(time_):
    policy = FetchPolicy(user_agent="schedwatch-test", min_interval=0, backoff=0.01,
                         max_retries=2)
    with HttpFetcher(policy, sleep=time_.sleep, clock=time_.clock) as http:
        yield http


def context(httpserver, *, marker: str | None = None,
            today: date = date(2026, 9, 1)) -> FetchContext:
    return FetchContext(source_id=au.SOURCE_ID,
                        endpoints={"url": httpserver.url_for("/v1"),
                                   "register_url": httpserver.url_for("")},
                        marker=marker, today=today)


def fixture_json(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def serve(httpserver, *, titles: str = "api-titles.json", versions: str = "api-versions.json",
          word_path: str = JUNE_WORD, word: str = "poisons-standard-june-2026.docx") -> bytes:
    content = (FIXTURES / word).read_bytes()
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS,
                                                               content_type="text/plain")
    httpserver.expect_request("/v1/titles").respond_with_data(
        fixture_json(titles), content_type="application/json; odata.metadata=minimal")
    httpserver.expect_request("/v1/versions").respond_with_data(
        fixture_json(versions), content_type="application/json; odata.metadata=minimal")
    httpserver.expect_request(word_path).respond_with_data(content,
                                                           content_type=au.WORD_MEDIA_TYPE)
    return content


def paths(httpserver) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def test_finds_the_in_force_instrument_and_downloads_its_word_original(httpserver, fetcher):
    content = serve(httpserver)
    fetched = au.fetch_poisons_standard(fetcher, context(httpserver))
    assert fetched.content == content
    assert fetched.url == httpserver.url_for(JUNE_WORD)
    assert fetched.content_type == au.WORD_MEDIA_TYPE
    assert fetched.marker == "F2026L00633@2026-06-01"
    assert fetched.meta == {
        "instrument_id": "F2026L00633",
        "instrument_title": "Therapeutic Goods (Poisons Standard\u2014June 2026) Instrument 2026",
        "register_id": "F2026L00633",
        "commencement": "2026-06-01",
        "registered_at": "2026-05-28T12:59:30+00:00",
    }
    # Few requests: the crawl delay makes each one cost 10 s.
    assert paths(httpserver) == ["/robots.txt", "/v1/titles", "/v1/versions", JUNE_WORD]
    titles_query = httpserver.log[1][0].args
    assert titles_query["$filter"] == "contains(name,'Poisons Standard')"
    versions_query = httpserver.log[2][0].args
    assert versions_query["$filter"] == "titleId eq 'F2026L00633'"
    assert httpserver.log[1][0].headers["Accept"] == "application/json"


def test_what_is_fetched_parses(httpserver, fetcher):
    """The fetch plan's meta is what the parser needs: the register id and dates."""
    serve(httpserver)
    fetched = au.fetch_poisons_standard(fetcher, context(httpserver))
    assert fetched.content is not None
    document = Document(source_id=au.SOURCE_ID, url=fetched.url, content=fetched.content,
                        sha256=hashlib.sha256(fetched.content).hexdigest(),
                        retrieved_at=datetime.now(UTC), content_type=fetched.content_type,
                        meta=fetched.meta)
    result = au.parse_poisons_standard(document, build_watch_list(["ketamine"]))
    (record,) = result.records
    assert (record.schedule, record.instrument) == ("8", "F2026L00633")
    assert record.dates == ((au.COMMENCEMENT_LABEL, "2026-06-01"), ("registered", "2026-05-28"))


def test_an_unchanged_marker_means_no_download(httpserver, fetcher):
    serve(httpserver)
    fetched = au.fetch_poisons_standard(
        fetcher, context(httpserver, marker="F2026L00633@2026-06-01"))
    assert fetched.content is None
    assert fetched.marker == "F2026L00633@2026-06-01"
    assert fetched.meta["instrument_id"] == "F2026L00633"
    assert JUNE_WORD not in paths(httpserver)


def test_a_replacement_instrument_is_downloaded(httpserver, fetcher):
    content = serve(httpserver, titles="api-titles-october.json",
                    versions="api-versions-october.json", word_path=OCTOBER_WORD,
                    word="poisons-standard-october-2026.docx")
    fetched = au.fetch_poisons_standard(
        fetcher, context(httpserver, marker="F2026L00633@2026-06-01", today=date(2026, 10, 2)))
    assert fetched.content == content
    assert fetched.marker == "F2026L01302@2026-10-01"
    assert fetched.meta["instrument_id"] == "F2026L01302"


def test_a_registered_replacement_that_has_not_commenced_is_not_yet_current(httpserver,
                                                                              fetcher):
    """Both Standards read "InForce" while the new one waits for its commencement: the one
    that has commenced is current."""
    titles = json.loads(fixture_json("api-titles-october.json"))
    titles["value"][1]["status"] = "InForce"
    versions = {"F2026L00633": fixture_json("api-versions.json"),
                "F2026L01302": fixture_json("api-versions-october.json")}

    def answer(request: Request) -> Response:
        title_id = request.args["$filter"].split("'")[1]
        return Response(versions[title_id], content_type="application/json")

    content = (FIXTURES / "poisons-standard-june-2026.docx").read_bytes()
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/v1/titles").respond_with_json(titles)
    httpserver.expect_request("/v1/versions").respond_with_handler(answer)
    httpserver.expect_request(JUNE_WORD).respond_with_data(content)
    httpserver.expect_request(OCTOBER_WORD).respond_with_data(
        (FIXTURES / "poisons-standard-october-2026.docx").read_bytes())
    fetched = au.fetch_poisons_standard(fetcher, context(httpserver, today=date(2026, 9, 28)))
    assert fetched.marker == "F2026L00633@2026-06-01"
    assert fetched.content == content
    # What was learnt about the replacement travels with the document.
    assert fetched.meta["next_instrument_id"] == "F2026L01302"
    assert fetched.meta["next_commencement"] == "2026-10-01"
    # On commencement day the replacement takes over.
    fetched = au.fetch_poisons_standard(
        fetcher, context(httpserver, marker=fetched.marker, today=date(2026, 10, 1)))
    assert fetched.marker == "F2026L01302@2026-10-01"
    assert "next_instrument_id" not in fetched.meta


def test_no_in_force_instrument_is_a_fetch_error(httpserver, fetcher):
    serve(httpserver, titles="api-titles-none-in-force.json")
    with pytest.raises(FetchError, match="no in-force Poisons Standard") as caught:
        au.fetch_poisons_standard(fetcher, context(httpserver))
    assert caught.value.kind == "empty"
    assert "/v1/versions" not in paths(httpserver)


def test_an_api_answering_html_is_an_extraction_error(httpserver, fetcher):
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/v1/titles").respond_with_data(
        "<!DOCTYPE html><html><body>Maintenance</body></html>", content_type="text/html")
    with pytest.raises(ExtractionError, match="did not answer JSON"):
        au.fetch_poisons_standard(fetcher, context(httpserver))


def test_an_api_answering_json_of_another_shape_is_an_extraction_error(httpserver, fetcher):
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/v1/titles").respond_with_json({"titles": []})
    with pytest.raises(ExtractionError, match="not an OData collection"):
        au.fetch_poisons_standard(fetcher, context(httpserver))


def test_a_register_id_that_is_not_one_is_never_put_in_a_url(httpserver, fetcher):
    titles = json.loads(fixture_json("api-titles.json"))
    titles["value"][0]["id"] = "../../etc/passwd"
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/v1/titles").respond_with_json(titles)
    with pytest.raises(ExtractionError, match="not a register id"):
        au.fetch_poisons_standard(fetcher, context(httpserver))
    assert paths(httpserver) == ["/robots.txt", "/v1/titles"]


def test_a_missing_word_file_is_a_fetch_error(httpserver, fetcher):
    serve(httpserver, word_path="/elsewhere")
    with pytest.raises(FetchError) as caught:
        au.fetch_poisons_standard(fetcher, context(httpserver))
    assert caught.value.url == httpserver.url_for(JUNE_WORD)


def test_the_robots_crawl_delay_is_honoured(httpserver, fetcher, time_):
    serve(httpserver)
    au.fetch_poisons_standard(fetcher, context(httpserver))
    # robots.txt first, then 10 s before each of the three requests that follow it.
    assert paths(httpserver) == ["/robots.txt", "/v1/titles", "/v1/versions", JUNE_WORD]
    assert time_.sleeps == [pytest.approx(10.0)] * 3


@pytest.mark.parametrize(("registered", "expected"), [
    ("2026-05-28T12:59:30Z", "2026-05-28"),
    ("2026-05-28T15:30:00Z", "2026-05-29"),  # already the 29th in Sydney
    ("2026-05-28T13:40:38.9539588", "2026-05-28"),  # no offset: the register's own date
])
def test_the_as_made_url_uses_the_sydney_registration_date(registered, expected):
    version = {"titleId": "F2026L00633", "start": "2026-06-01T00:00:00",
               "registerId": "F2026L00633", "registeredAt": registered}
    instrument = au.instrument_from({"id": "F2026L00633", "name": "X Poisons Standard"},
                                    version)
    assert au.word_url("https://r", instrument) == \
        f"https://r/F2026L00633/asmade/{expected}/text/original/word"


def test_a_compilation_is_addressed_by_its_start_date():
    version = {"titleId": "F2026L00633", "start": "2026-08-15T00:00:00",
               "registerId": "F2026C00801", "registeredAt": "2026-08-20T01:00:00Z"}
    instrument = au.instrument_from({"id": "F2026L00633", "name": "X"}, version)
    # The confirmed form first (a project downloaded 933 compilations at it), then the
    # unconfirmed one built before.
    assert au.word_url("https://r", instrument) == \
        "https://r/F2026L00633/2026-08-15/2026-08-15/text/original/word"
    assert au.word_urls("https://r", instrument) == (
        "https://r/F2026L00633/2026-08-15/2026-08-15/text/original/word",
        "https://r/F2026L00633/latest/2026-08-15/text/original/word")
    assert instrument.marker == "F2026L00633@2026-08-15"


def test_in_force_standards_skips_amendments_and_repealed_titles():
    titles = json.loads(fixture_json("api-titles.json"))["value"]
    assert [t["id"] for t in au.in_force_standards(titles)] == ["F2026L00633"]


# --- compilations, URL forms and the register's dates (real rows) -------------------------

COMPILATION_WORD = "/F2026L00633/2026-08-15/2026-08-15/text/original/word"
COMPILATION_LATEST = "/F2026L00633/latest/2026-08-15/text/original/word"


def test_a_compilation_is_downloaded_at_the_confirmed_url(httpserver, fetcher):
    """Versions in the real rows' shape: ``start`` with seven-digit sub-seconds and no time
    zone is the Australian date 2026-08-15."""
    content = serve(httpserver, versions="api-versions-compilation.json",
                    word_path=COMPILATION_WORD)
    fetched = au.fetch_poisons_standard(fetcher, context(httpserver, today=date(2026, 9, 1)))
    assert fetched.content == content
    assert fetched.marker == "F2026L00633@2026-08-15"
    assert fetched.meta["register_id"] == "F2026C00801"
    assert fetched.meta["commencement"] == "2026-08-15"
    assert COMPILATION_LATEST not in paths(httpserver)


def test_the_unconfirmed_compilation_url_is_tried_when_the_confirmed_one_is_missing(
        httpserver, fetcher):
    content = serve(httpserver, versions="api-versions-compilation.json",
                    word_path=COMPILATION_LATEST)
    httpserver.expect_request(COMPILATION_WORD).respond_with_data("not found", status=404)
    fetched = au.fetch_poisons_standard(fetcher, context(httpserver))
    assert fetched.content == content
    assert fetched.url == httpserver.url_for(COMPILATION_LATEST)
    assert paths(httpserver)[-2:] == [COMPILATION_WORD, COMPILATION_LATEST]


def test_every_url_form_missing_is_a_fetch_error_naming_them(httpserver, fetcher):
    serve(httpserver, versions="api-versions-compilation.json", word_path="/elsewhere")
    for path in (COMPILATION_WORD, COMPILATION_LATEST):
        httpserver.expect_request(path).respond_with_data("gone", status=404 if "latest"
                                                          not in path else 410)
    with pytest.raises(FetchError, match="other URL forms tried are missing too") as caught:
        au.fetch_poisons_standard(fetcher, context(httpserver))
    assert caught.value.url == httpserver.url_for(COMPILATION_WORD)
    assert COMPILATION_LATEST in str(caught.value)


def test_a_server_error_at_the_confirmed_url_is_not_retried_elsewhere(httpserver, fetcher):
    serve(httpserver, versions="api-versions-compilation.json", word_path=COMPILATION_LATEST)
    httpserver.expect_request(COMPILATION_WORD).respond_with_data("no", status=403)
    with pytest.raises(FetchError) as caught:
        au.fetch_poisons_standard(fetcher, context(httpserver))
    assert caught.value.status == 403
    assert COMPILATION_LATEST not in paths(httpserver)


def test_a_late_utc_registration_tries_the_sydney_then_the_utc_day():
    version = {"titleId": "F2026L00633", "start": "2026-06-01T00:00:00",
               "registerId": "F2026L00633", "registeredAt": "2026-05-28T15:30:00Z"}
    instrument = au.instrument_from({"id": "F2026L00633", "name": "X"}, version)
    assert au.word_urls("https://r", instrument) == (
        "https://r/F2026L00633/asmade/2026-05-29/text/original/word",
        "https://r/F2026L00633/asmade/2026-05-28/text/original/word")


@pytest.mark.parametrize(("value", "expected"), [
    ("2023-09-01T00:00:00", date(2023, 9, 1)),
    ("2023-09-01T00:00:00.0000000", date(2023, 9, 1)),  # seven digits
    ("2023-09-01T23:59:59.9999999", date(2023, 9, 1)),  # an Australian date, not UTC
    ("2023-09-01", date(2023, 9, 1)),
    ("2026-05-31T15:00:00Z", date(2026, 6, 1)),  # UTC: already the 1st in Sydney
])
def test_register_dates_are_australian_calendar_dates(value, expected):
    assert au.register_date(value, "start") == expected


@pytest.mark.parametrize("value", ["", "yesterday", "2023-13-01T00:00:00", None, 20230901])
def test_a_register_date_that_is_not_one_is_an_extraction_error(value):
    with pytest.raises(ExtractionError, match="not an ISO date"):
        au.register_date(value, "start")


def _real_rows(name: str):
    return json.loads(shared_doc(f"au/{name}"))


def test_the_real_versions_rows_parse():
    """Real Versions rows of the register's API (regulator-documents/au/)."""
    rows = _real_rows("ryanduguid-probe13-versions-rows.json")
    versions = [row["latest_doc"] for row in rows if row.get("latest_doc")]
    assert len(versions) >= 10
    compilations = 0
    for title, version in ((row, row["latest_doc"]) for row in rows if row.get("latest_doc")):
        start = au.register_date(version["start"], "start")
        assert start.isoformat() == version["start"][:10]
        assert au.current_version([version], title["id"], date(2026, 12, 1)) == version
        if version["registerId"] != version["titleId"]:
            compilations += 1
            instrument = au.instrument_from(title, version)
            assert instrument.commencement == start
            assert au.word_url("https://r", instrument) == (
                f"https://r/{title['id']}/{start}/{start}/text/original/word")
        else:
            # The as-made text is addressed by its registration date, absent from these rows.
            with pytest.raises(ExtractionError, match="no registeredAt"):
                au.instrument_from(title, version)
    assert compilations >= 3


def test_the_real_title_rows_parse():
    rows = _real_rows("ryanduguid-titles_all.json")
    assert len(rows) > 1000
    for row in rows:
        assert au.register_id(row["id"], "title id") == row["id"]
    # A tax corpus: no Poisons Standard among them, and nothing in them breaks the filter.
    assert au.in_force_standards(rows) == []
    in_force = [{**row, "name": f"{row['name']} Poisons Standard"} for row in rows
                if row["status"] == "InForce" and row["isPrincipal"]
                and "amendment" not in row["name"].lower()]
    assert 0 < len(au.in_force_standards(in_force)) == len(in_force)


# --- every failure of the JSON handling is an extraction failure --------------------------


@pytest.mark.parametrize("where", ["/v1/titles", "/v1/versions"])
def test_a_deeply_nested_json_answer_is_an_extraction_error(httpserver, fetcher, where):
    """json.loads on 100,000 nested lists raises RecursionError, which ended the whole run."""
    serve(httpserver)
    nested = "[" * 100_000 + "]" * 100_000
    httpserver.clear_all_handlers()
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    if where == "/v1/versions":
        httpserver.expect_request("/v1/titles").respond_with_data(
            fixture_json("api-titles.json"), content_type="application/json")
    httpserver.expect_request(where).respond_with_data(nested,
                                                       content_type="application/json")
    with pytest.raises(ExtractionError, match="nested deeper"):
        au.fetch_poisons_standard(fetcher, context(httpserver))


@pytest.mark.parametrize("row", [
    {"titleId": "F2026L00633", "start": ["2026-06-01"], "registerId": "F2026L00633",
     "registeredAt": "2026-05-28T12:59:30Z"},
    {"titleId": "F2026L00633", "start": "2026-06-01T00:00:00", "registerId": 7,
     "registeredAt": "2026-05-28T12:59:30Z"},
    {"titleId": "F2026L00633", "start": "2026-06-01T00:00:00", "registerId": "F2026L00633",
     "registeredAt": {"at": 1}},
    {"titleId": {"x": 1}, "start": {"y": 2}},
])
def test_version_rows_of_an_unknown_shape_are_an_extraction_error(httpserver, fetcher, row):
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/v1/titles").respond_with_data(
        fixture_json("api-titles.json"), content_type="application/json")
    httpserver.expect_request("/v1/versions").respond_with_json({"value": [row]})
    with pytest.raises(ExtractionError):
        au.fetch_poisons_standard(fetcher, context(httpserver))
