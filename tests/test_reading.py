"""What a reader sees (issue 17, items 4, 13, 14): disabled sources say so wherever a
source's state is shown, the matrix cell and the change page read as a lawyer would, the
printed reference flows, and the small command-line answers (no data, bad dates, weeks
out of range, a failed recording) are one clear line each."""

from __future__ import annotations

import dataclasses
import gc
import json
import socket
from pathlib import Path

import pytest
from lxml import html as lxml_html

from reports import pages, render
from reports.site import publish, read_snapshot
from scheduler.config import SourceSettings
from scrapers import clock
from scrapers.records import StatusRecord
from scrapers.rows import StoredChange
from tests.support.config import write_config
from tests.support.site_data import NOW, build_store, make_settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration over the constructed site data (tracking began 2026-11-02, week 45;
    now is 2026-11-20, week 47), every source disabled."""
    build_store(tmp_path).close()
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return write_config(tmp_path / "c.toml", data_dir=tmp_path / "data", sources={},
                        extra='[scheduler]\ntimezone = "America/Toronto"\n')


# --- item 14: the small ones --------------------------------------------------------------

def test_status_without_data_says_where_it_looked_and_what_to_run(tmp_path: Path,
                                                                 run_cli) -> None:
    config = write_config(tmp_path / "c.toml", data_dir=tmp_path / "data", sources={})
    result = run_cli("--config", str(config), "status")
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        f"No status stored yet in {tmp_path / 'data'}: run `schedwatch run` (or "
        "`make demo` to see it work offline).")


@pytest.mark.parametrize(("args", "option"), [
    (("status", "--as-of", "2026-13-01"), "--as-of"),
    (("changes", "--since", "yesterday"), "--since"),
    (("backfill", "--since", "2026-02-30"), "--since"),
    (("report", "weekly", "--week", "2026-W54"), "--week"),
])
def test_a_bad_date_names_its_option(tmp_path: Path, run_cli, args: tuple[str, ...],
                                     option: str) -> None:
    config = write_config(tmp_path / "c.toml", data_dir=tmp_path / "data", sources={})
    result = run_cli("--config", str(config), *args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': '{args[-1]}' is not" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no usage dump
    assert not (tmp_path / "data" / "site").exists()  # nothing written for a bad value


def test_report_weekly_refuses_a_future_week(tracked: Path, run_cli) -> None:
    result = run_cli("--config", str(tracked), "report", "weekly", "--week", "2026-W50")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["schedwatch: error: week 2026-W50 has not begun yet (the current week is "
                     "2026-W47 in America/Toronto): ask for 2026-W47 or an earlier week"]
    assert not (tracked.parent / "data" / "site" / "weekly" / "2026-W50.html").exists()


def test_report_weekly_before_tracking_says_when_tracking_began(tracked: Path,
                                                                 run_cli) -> None:
    result = run_cli("--config", str(tracked), "report", "weekly", "--week", "2026-W40")
    assert result.exit_code == 2
    assert "tracking began on 2026-11-02 (America/Toronto; week 2026-W45)" in result.stderr
    assert not (tracked.parent / "data" / "site" / "weekly" / "2026-W40.html").exists()
    # The weeks tracked are written as before.
    for week in ("2026-W45", "2026-W47"):
        done = run_cli("--config", str(tracked), "report", "weekly", "--week", week)
        assert done.exit_code == 0, done.stderr


def test_record_defaults_to_recorded_and_leaves_no_empty_folder(
        tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}/C-38.8.xml"
    config = write_config(tmp_path / "c.toml", data_dir=tmp_path / "data",
                          sources={"ca-cdsa": {"url": url}})
    result = run_cli("--config", str(config), "record", "ca-cdsa")
    assert result.exit_code != 0
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "recorded").exists()
    help_text = " ".join(run_cli("record", "--help").stdout.split())
    assert "[default: recorded]" in help_text

    # An --out folder that did not exist is not left behind either.
    result = run_cli("--config", str(config), "record", "ca-cdsa", "--out", "new/deeper")
    assert result.exit_code != 0 and not (tmp_path / "new").exists()


# --- item 4: a disabled source says so ------------------------------------------------------

DISABLED = "disabled in the configuration"
#: Anything shown in red.
BAD = ".//*[contains(concat(' ', @class, ' '), ' bad ')]"


@pytest.fixture
def disabled_site(tmp_path: Path) -> Path:
    """The constructed site with ca-csr and the Federal Register disabled."""
    settings = dataclasses.replace(make_settings(tmp_path), sources={
        "ca-csr": SourceSettings(enabled=False),
        "us-federal-register": SourceSettings(enabled=False)})
    store = build_store(tmp_path)
    try:
        return publish(settings, store, now=NOW)
    finally:
        store.close()


def test_a_disabled_source_says_so_in_the_matrix_reference_and_weekly_report(
        disabled_site: Path) -> None:
    index = lxml_html.fromstring((disabled_site / "index.html").read_bytes())
    heads = {div.findtext("small"): div for div in index.xpath("//thead//div[@class='src']")}
    for source_id in ("ca-csr", "us-federal-register"):
        text = " ".join(heads[source_id].text_content().split())
        assert text == f"{source_id} {DISABLED}"
        assert not heads[source_id].xpath(BAD)
    assert "source healthy" in heads["ca-cdsa"].text_content()  # the others as before

    reference = lxml_html.fromstring((disabled_site / "reference.html").read_bytes())
    rows = {row.xpath("td//small")[0].text_content(): row
            for row in reference.xpath("//table//tr") if row.xpath("td//small")}
    assert DISABLED in rows["ca-csr"].text_content()
    assert "not checked yet" not in rows["ca-csr"].text_content()
    assert not rows["ca-csr"].xpath(BAD)

    for week in ("2026-W45", "2026-W47"):
        weekly = lxml_html.fromstring((disabled_site / f"weekly/{week}.html").read_bytes())
        by_id = {tr.xpath("td")[1].text_content(): tr
                 for tr in weekly.xpath("//table[@class='sources']/tbody/tr")}
        for source_id in ("ca-csr", "us-federal-register"):
            assert DISABLED in by_id[source_id].text_content()
            assert "no healthy fetch yet" not in by_id[source_id].text_content()
            # (failures of that week, if any, stay counted: they happened)
            assert not by_id[source_id].xpath("td")[-1].xpath(BAD)

    status = json.loads((disabled_site / "status.json").read_text())
    health = {row["source_id"]: row["source_health"] for row in status}
    assert health.get("ca-csr") == "disabled" and health["ca-cdsa"] == "healthy"


def test_status_and_sources_say_a_disabled_source_is_disabled(tracked: Path,
                                                              run_cli) -> None:
    # `tracked` disables every source: the data of ca-cdsa was recorded while it was on.
    status = run_cli("--config", str(tracked), "status")
    assert status.exit_code == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if line.startswith("ca ")]
    assert rows and all(DISABLED in line for line in rows)
    assert "FAILING" not in status.stdout
    under = [line for line in status.stdout.splitlines()
             if line.startswith("Disabled in the configuration: ")]
    assert len(under) == 1 and "ca-cdsa" in under[0] and "ca-csr" in under[0]
    listing = run_cli("--config", str(tracked), "sources")
    lines = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert DISABLED in lines["ca-csr"] and "never fetched" not in lines["au-poisons-standard"]
    as_json = run_cli("--config", str(tracked), "sources", "--format", "json").json()
    assert {row["health"] for row in as_json} == {"disabled"}


# --- item 13: the matrix cell, the change page, the printed reference -----------------------

US_LISTED = ("Ketamine, its salts, isomers, and salts of isomers | [Some other names for "
             "ketamine: (±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]")


def _us_record(**fields: object) -> StatusRecord:
    values: dict[str, object] = dict(
        jurisdiction="us", substance="ketamine", status="controlled", schedule="III",
        control_level="C3", instrument="21 CFR 1308.13", provision="21 CFR 1308.13(c)(7)",
        listed_as=US_LISTED, basis="named", code="7285", source_id="us-ecfr-1308",
        source_url="https://www.ecfr.gov/x.xml", document_sha256="a" * 64,
        retrieved_at="2026-11-02T06:00:00+00:00")
    values.update(fields)
    return StatusRecord(**values)  # type: ignore[arg-type]


def test_the_cell_cites_the_us_provision_once_with_its_dea_code_and_names_on_a_line(
        ) -> None:
    view = pages.record_view(_us_record())
    assert view["pinpoint"] == "21 CFR 1308.13(c)(7)"
    assert pages.pinpoint("S.C. 1996, c. 19", "Sch. I, item 14") == \
        "S.C. 1996, c. 19, Sch. I, item 14"
    assert (view["code_label"], view["code"]) == ("DEA code", "7285")
    assert view["listed_lines"] == [
        "Ketamine, its salts, isomers, and salts of isomers",
        "[Some other names for ketamine: (±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]"]
    env = render.environment()
    line = {"record": view, "primary": True, "as_of": view["retrieved_at"], "since": None,
            "evidence": {"sha256": None, "role": ""},
            "health": pages.health_view(None), "source_title": "eCFR",
            "instrument_title": None}
    html = env.from_string('{% import "_macros.html" as m with context %}'
                           '{% include "_line.html" %}').render(line=line, root="")
    tree = lxml_html.fromstring(html)
    assert [" ".join(d.text_content().split()) for d in tree.xpath("//div[@class='listed']")] \
        == ["“Ketamine, its salts, isomers, and salts of isomers”",
            "[Some other names for ketamine: (±)-2-(2-chlorophenyl)-2-(methylamino)-"
            "cyclohexanone]"]
    assert tree.xpath("string(//div[@class='prov'])") == "21 CFR 1308.13(c)(7)"
    assert tree.xpath("string(//div[@class='code'])") == "DEA code 7285"
    assert "|" not in tree.text_content()


def test_the_poisons_standard_is_shown_by_its_title(tmp_path: Path) -> None:
    store = build_store(tmp_path)
    try:
        snap = read_snapshot(make_settings(tmp_path), store)
    finally:
        store.close()
    title = "Therapeutic Goods (Poisons Standard—June 2026) Instrument 2026"
    state = dataclasses.replace(snap.states["au-poisons-standard"], title=title,
                                instrument="F2026L00633")
    snap = dataclasses.replace(snap, states={**snap.states, "au-poisons-standard": state})
    assert snap.instrument_title("au-poisons-standard", "F2026L00633") == title
    assert snap.instrument_title("au-poisons-standard", "F2026L01302") is None  # not current
    context = pages.index_context(snap, now=NOW)
    html = render.environment().get_template("index.html").render(**context, root="")
    tree = lxml_html.fromstring(html)
    shown = [" ".join(d.text_content().split())
             for d in tree.xpath("//div[@class='instrument']")]
    assert f"{title} (F2026L00633)" in shown


def test_the_change_page_diffs_legal_text_only() -> None:
    before = _us_record(schedule="III", control_level="C3",
                        listed_as="Ketamine, its salts")
    after = _us_record(schedule="II", control_level="C2", code="7286",
                       listed_as="Ketamine, its salts, isomers")
    change = StoredChange(
        id=1, run_id=1, detected_at="2026-11-17T06:00:00+00:00", jurisdiction="us",
        substance="ketamine", source_id="us-ecfr-1308", kind="rescheduled",
        before=before.as_dict(), after=after.as_dict(), summary="Ketamine: III → II",
        effective_date="2026-12-01", before_sha256=None, after_sha256=None, details={})
    context = pages.change_context(change)
    assert [d["field"] for d in context["diffs"]] == ["listed_as"]
    rows = {row["field"]: row for row in context["rows"] if row["changed"]}
    assert (rows["control_level"]["before"], rows["control_level"]["after"]) == ("C3", "C2")
    assert (rows["schedule"]["before"], rows["schedule"]["after"]) == ("III", "II")


@pytest.mark.browser
def test_the_printed_reference_lets_records_share_a_page(browser, tmp_path: Path) -> None:
    store = build_store(tmp_path)
    try:
        site = publish(make_settings(tmp_path), store, now=NOW)
    finally:
        store.close()
    page = browser.new_page(bypass_csp=True)  # to add the old rule below
    page.goto((site / "reference.html").as_uri())
    page.emulate_media(media="print")
    entries = page.locator("section.entry").count()
    assert entries >= 10

    def pages_printed() -> int:
        # A short page (130 mm): a record is taller than half of it.
        pdf = page.pdf(width="210mm", height="130mm")
        return pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")

    printed = pages_printed()
    # The old layout: each record kept whole, so each starts a page of its own.
    page.add_style_tag(content="@media print { .entry { break-inside: avoid; } }")
    whole = pages_printed()
    assert printed < whole - entries // 4, (printed, whole)
    page.close()


def test_the_weekly_email_says_a_disabled_source_is_disabled_not_just_never() -> None:
    from reports.weekly import weekly_summary

    context = {"timezone": "UTC", "start": "2026-11-16T00:00:00+00:00",
               "end": "2026-11-23T00:00:00+00:00", "week": "2026-W47", "complete": True,
               "changes_by_jurisdiction": [], "pending": [], "mail_failures": [],
               "sources": [
                   {"id": "ca-csr", "title": "CSR", "checks": 0, "failures": 0,
                    "last_healthy_at": None, "errors": [], "disabled": True},
                   {"id": "ca-cdsa", "title": "CDSA", "checks": 0, "failures": 0,
                    "last_healthy_at": None, "errors": [], "disabled": False}]}
    disabled, never = weekly_summary(context).sources
    assert disabled["last_healthy"] == "never (disabled in the configuration)"
    assert never["last_healthy"] == "never"


@pytest.mark.parametrize("args", [("status",), ("status", "--format", "json"), ("changes",),
                                  ("history", "ketamine"), ("status", "--as-of", "2026-11-10")])
def test_a_reading_command_gives_the_collector_back_to_the_process(
        tracked: Path, run_cli, args: tuple[str, ...]) -> None:
    """The reading commands pause the cyclic collector while they build their rows; a
    process that goes on (the scheduler, these tests) gets it back, on success and on a
    user error alike."""
    assert gc.isenabled()
    assert run_cli("--config", str(tracked), *args).exit_code == 0
    assert gc.isenabled()
    assert run_cli("--config", str(tracked), "history", "no-such-substance").exit_code != 0
    assert gc.isenabled()


def test_json_output_is_written_as_encoded_with_scraped_control_codes_kept_as_data(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON the reading commands print goes to stdout as the encoder wrote it (not
    through click's colour stripping): a terminal colour code in scraped text stays in the
    value, escaped, and never reaches the terminal raw."""
    from scheduler import cli as commands

    rows = [{"listed_as": "\x1b[31mKetamine\x1b[0m", "note": "a/b \u2028 é"}]
    commands._echo_json(rows)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\u001b[31m" in out
    assert json.loads(out) == rows


def test_the_plain_table_aligns_cells_and_prints_scraped_braces_as_they_are(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The table printed for a pipe (and for thousands of rows): every cell starts where its
    column does, a long cell is printed whole, a line break in a cell is a space, no line
    ends in padding; scraped text that looks like a format field ("{0}", "{}", "{x:>9}")
    is printed as it is, never interpreted."""
    from scheduler import cli as commands

    columns = [("a", "Alpha"), ("b", "B"), ("c", "Gamma")]
    rows = [{"a": "{0}", "b": "x" * 70, "c": "{}"},
            {"a": "two\nlines", "b": None, "c": "{x:>9}"},
            {"a": "", "b": 7, "c": ""}]
    commands._plain_table(rows, columns)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Alpha      " + "B".ljust(60) + "  Gamma",
        "{0}        " + "x" * 70 + "  {}",
        "two lines  " + "".ljust(60) + "  {x:>9}",
        "           " + "7",
    ]


def test_lines_are_written_in_stdouts_encoding_after_what_was_written_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading commands write their lines as stdout would write their text: its
    encoding and error handling (PYTHONIOENCODING=ascii:backslashreplace gives "\\xa7"),
    after the text already written (a heading), and to a stream with no bytes beneath it
    (an embedding program's) as text."""
    import io

    from scheduler import cli as commands

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="backslashreplace")
    monkeypatch.setattr("sys.stdout", stream)
    print("heading")
    commands._write_lines(["§ 1308.13", "plain", "α-PVP"])
    assert raw.getvalue() == b"heading\n\\xa7 1308.13\nplain\n\\u03b1-PVP\n"
    commands._write_lines(["a,§\n", "b\n"], ended=True)  # CSV lines end in their own
    assert raw.getvalue().endswith(b"PVP\na,\\xa7\nb\n")

    text = io.StringIO()
    monkeypatch.setattr("sys.stdout", text)
    commands._echo_json([{"provision": "§ 1308.13"}, {"a": None}])
    assert text.getvalue() == '[\n{"provision": "§ 1308.13"},\n{"a": null}\n]\n'
    assert json.loads(text.getvalue()) == [{"provision": "§ 1308.13"}, {"a": None}]
