"""Configuration: TOML, environment overrides, and one clear line (exit 2) for bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.config import load_settings
from scrapers.errors import ConfigError

KNOWN = {"ca-cdsa": ("url",), "ca-csr": ("url",), "au-poisons-standard": ("url", "register_url")}


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "schedwatch.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, environ={}, known_sources=KNOWN)
    assert settings.data_dir == Path("data")
    assert settings.site_path == Path("data/site")
    assert settings.watch == ("ketamine", "esketamine", "arketamine")


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, 'data_dir = "/srv/sw"\ncontact = "a@example.org"\n'
                           '[sources.ca-cdsa]\nurl = "https://mirror.example.org/C-38.8.xml"\n')
    settings = load_settings(path, environ={"SCHEDWATCH_CONTACT": "b@example.org",
                                            "SCHEDWATCH_SOURCE_CA_CSR_ENABLED": "false",
                                            "SCHEDWATCH_WATCH": "all"}, known_sources=KNOWN)
    assert settings.data_dir == Path("/srv/sw")
    assert settings.contact == "b@example.org"
    assert settings.source("ca-cdsa").endpoints == {"url": "https://mirror.example.org/C-38.8.xml"}
    assert settings.source("ca-csr").enabled is False
    assert settings.watch == "all"


def test_config_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, 'data_dir = "elsewhere"\n')
    settings = load_settings(None, environ={"SCHEDWATCH_CONFIG": str(path)}, known_sources=KNOWN)
    assert settings.data_dir == Path("elsewhere")


@pytest.mark.parametrize(("text", "words"), [
    ('data_dri = "x"\n', "unknown key 'data_dri'"),
    ('[sources.ca-cdsa]\nulr = "https://x"\n', "unknown key 'sources.ca-cdsa.ulr'"),
    ('[sources.ca-cdsaa]\nurl = "https://x"\n', "unknown source 'sources.ca-cdsaa'"),
    ('[sources.ca-cdsa]\nurl = "ftp://x"\n', "not an http(s) URL"),
    ('[sources.ca-cdsa]\nenabled = "yes"\n', "'sources.ca-cdsa.enabled' has a bad value"),
    ('watch = "everything"\n', "'watch'"),
    ('watch = []\n', "'watch'"),
    ('[fetch]\nread_timeout = -1\n', "'fetch.read_timeout' must not be negative"),
    ('[fetch]\nread_timeout = "slow"\n', "'fetch.read_timeout' has a bad value"),
    ('data_dir = \n', "not valid TOML"),
    ('[email]\nhost = "smtp"\nsecurity = "tls"\n', "'email.security'"),
    ('[email]\nhost = "smtp"\n[[email.recipients]]\naddress = "nobody"\n', "not an email address"),
    ('[email]\nhost = "smtp"\n[[email.recipients]]\naddress = "a@b.org"\nkinds = ["oops"]\n',
     "valid values"),
])
def test_bad_configuration_is_one_line_naming_the_key(tmp_path: Path, text: str,
                                                      words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={}, known_sources=KNOWN)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={}, known_sources=KNOWN)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(binary, environ={}, known_sources=KNOWN)


def test_password_in_a_readable_file_is_refused(tmp_path: Path) -> None:
    text = '[email]\nhost = "smtp.example.org"\npassword = "hunter2-secret"\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text, 0o644), environ={}, known_sources=KNOWN)
    assert "chmod 600" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    settings = load_settings(write(tmp_path, text, 0o600), environ={}, known_sources=KNOWN)
    assert settings.email is not None and settings.email.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)


def test_smtp_password_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[email]\nhost = "smtp.example.org"\nusername = "alerts"\n')
    settings = load_settings(path, environ={"SCHEDWATCH_SMTP_PASSWORD": "s3cret"},
                             known_sources=KNOWN)
    assert settings.email is not None
    assert settings.email.password == "s3cret"
    assert "s3cret" not in repr(settings)


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, run_cli) -> None:
    path = write(tmp_path, 'data_dri = "x"\n')
    result = run_cli("--config", str(path), "status")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "data_dri" in result.stderr
    assert "Traceback" not in result.stderr


def test_politeness_defaults_to_one_request_per_second_per_host() -> None:
    # The eCFR and the Federal Register ask for no more than one request a second; a
    # robots.txt Crawl-delay (legislation.gov.au: 10 s) is honoured on top of this.
    settings = load_settings(None, environ={}, known_sources=KNOWN)
    assert settings.fetch.request_interval == 1.0
    assert settings.fetch.respect_robots is True


def test_every_command_help_has_an_example(run_cli) -> None:
    import click

    from scheduler.cli import cli

    def walk(group: click.Group, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [prefix]
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += walk(command, (*prefix, name))
            else:
                found.append((*prefix, name))
        return found

    for path in walk(cli, ()):
        result = run_cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.stdout and "schedwatch" in result.stdout.split("Example")[1], \
            f"schedwatch {' '.join(path)} --help has no example"


# --- environment overrides get the file's checks ---------------------------------------------

@pytest.mark.parametrize(("variable", "value", "words"), [
    ("SCHEDWATCH_SOURCE_CA_CDSA_ENABLED", "maybe",
     "SCHEDWATCH_SOURCE_CA_CDSA_ENABLED = 'maybe' is not true or false"),
    ("SCHEDWATCH_SOURCE_CA_CDSA_URL", "ftp://mirror.example.org/C-38.8.xml",
     "'SCHEDWATCH_SOURCE_CA_CDSA_URL' = 'ftp://mirror.example.org/C-38.8.xml' is not an "
     "http(s) URL"),
    ("SCHEDWATCH_SOURCE_CA_CDSAA_URL", "https://x.example.org/",
     "environment variable SCHEDWATCH_SOURCE_CA_CDSAA_URL names no source setting"),
    ("SCHEDWATCH_SOURCE_CA_CDSA_UTL", "https://x.example.org/",
     "environment variable SCHEDWATCH_SOURCE_CA_CDSA_UTL names no source setting"),
    ("SCHEDWATCH_CONTACT", "me (at) example.org", "'SCHEDWATCH_CONTACT' must be one line"),
    ("SCHEDWATCH_WATCH", "ketamine,ketamin",
     "'SCHEDWATCH_WATCH': 'ketamin' is not a known substance; did you mean 'ketamine'?"),
])
def test_a_bad_environment_override_names_the_variable(tmp_path: Path, variable: str,
                                                       value: str, words: str) -> None:
    path = write(tmp_path, '[sources.ca-cdsa]\nenabled = true\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={variable: value}, known_sources=KNOWN)
    message = str(caught.value)
    assert words in message
    assert "'sources.ca-cdsa" not in message  # the variable, not the file key it overrides
    assert "\n" not in message


@pytest.mark.parametrize(("value", "enabled"), [("false", False), ("0", False), ("OFF", False),
                                                ("no", False), ("true", True), ("1", True),
                                                (" yes ", True), ("on", True)])
def test_enabled_overrides_accept_the_usual_words(value: str, enabled: bool) -> None:
    settings = load_settings(None, environ={"SCHEDWATCH_SOURCE_CA_CDSA_ENABLED": value},
                             known_sources=KNOWN)
    assert settings.source("ca-cdsa").enabled is enabled


def test_every_endpoint_of_a_known_source_can_be_overridden() -> None:
    settings = load_settings(None, environ={
        "SCHEDWATCH_SOURCE_AU_POISONS_STANDARD_REGISTER_URL": "https://mirror.example.org/",
        "SCHEDWATCH_SOURCE_AU_POISONS_STANDARD_URL": "https://api.mirror.example.org/v1"},
        known_sources=KNOWN)
    assert settings.source("au-poisons-standard").endpoints == {
        "url": "https://api.mirror.example.org/v1", "register_url": "https://mirror.example.org/"}


def test_cli_bad_enabled_override_exits_2_naming_the_variable(tmp_path: Path, run_cli) -> None:
    path = write(tmp_path, 'data_dir = "x"\n')
    result = run_cli("--config", str(path), "status",
                     env={"SCHEDWATCH_SOURCE_CA_CDSA_ENABLED": "maybe"})
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "schedwatch: config: SCHEDWATCH_SOURCE_CA_CDSA_ENABLED = 'maybe' is not true or "
        "false; write true or false (or 1/0, yes/no, on/off)")
    assert not (tmp_path / "x").exists()


# --- the watch list names substances schedwatch knows ------------------------------------------

@pytest.mark.parametrize(("entry", "message"), [
    ("ketamin", "config: 'watch': 'ketamin' is not a known substance; did you mean 'ketamine'?"),
    ("eskatamine", "config: 'watch': 'eskatamine' is not a known substance; did you mean "
                   "'esketamine'?"),
    ("fentanly", "config: 'watch': 'fentanly' is not a known substance; did you mean "
                 "'fentanyl' or 'fentanil'?"),
])
def test_a_misspelt_watch_entry_is_refused_with_the_nearest_names(tmp_path: Path, entry: str,
                                                                  message: str) -> None:
    path = write(tmp_path, f'watch = ["ketamine", "{entry}"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, known_sources=KNOWN)
    assert str(caught.value) == message


def test_a_watch_entry_with_nothing_near_says_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, 'watch = ["xyzzy"]\n'), environ={}, known_sources=KNOWN)
    message = str(caught.value)
    assert message.startswith("config: 'watch': 'xyzzy' is not a known substance; known "
                              "substances are 'ketamine', 'esketamine', 'arketamine'")
    assert 'watch = "all"' in message


def test_known_names_synonyms_and_the_synonym_table_are_accepted(tmp_path: Path) -> None:
    # Brand names and chemical names of the known substances, a name of the curated synonym
    # table (jurisdictions/matching.py) and its spellings; "all" is unchanged.
    entries = ["Spravato", "Ketalar", "kétamine", "(R)-ketamine", "fentanyl", "MDMA",
               "amfetamine"]
    path = write(tmp_path, "watch = [" + ", ".join(f'"{e}"' for e in entries) + "]\n")
    settings = load_settings(path, environ={}, known_sources=KNOWN)
    assert settings.watch == tuple(entries)
    assert load_settings(write(tmp_path, 'watch = "all"\n'), environ={},
                         known_sources=KNOWN).watch == "all"
    assert load_settings(None, environ={"SCHEDWATCH_WATCH": "ALL"}, known_sources=KNOWN
                         ).watch == "all"


def test_cli_run_with_a_misspelt_watch_entry_exits_2_before_fetching(tmp_path: Path,
                                                                      run_cli) -> None:
    path = write(tmp_path, f'data_dir = "{tmp_path / "data"}"\nwatch = ["ketamin"]\n')
    result = run_cli("--config", str(path), "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("schedwatch: config: 'watch': 'ketamin' is not a known "
                                     "substance; did you mean 'ketamine'?")
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing fetched, nothing published
    env = run_cli("status", env={"SCHEDWATCH_WATCH": "ketamin",
                                 "SCHEDWATCH_DATA_DIR": str(tmp_path / "data")})
    assert env.exit_code == 2
    assert "SCHEDWATCH_WATCH': 'ketamin' is not a known substance" in env.stderr


# --- the whole configuration is checked by every command --------------------------------------

@pytest.mark.parametrize("command", ["run", "status"])
@pytest.mark.parametrize(("section", "words"), [
    ('[scheduler]\ntimezone = "Mars/Olympus"\n',
     "config: 'scheduler.timezone' = 'Mars/Olympus' is not a known IANA time zone"),
    ('[scheduler.cron]\nca = "15 6 * *"\n',
     "config: 'scheduler.cron.ca' = '15 6 * *' is not a valid crontab expression"),
    ('[scheduler.cron]\nnz = "15 6 * * *"\n', "config: unknown job 'scheduler.cron.nz'"),
])
def test_run_and_status_refuse_a_bad_scheduler_section(tmp_path: Path, run_cli, command: str,
                                                       section: str, words: str) -> None:
    data = tmp_path / "data"
    path = write(tmp_path, f'data_dir = "{data}"\n' + section)
    result = run_cli("--config", str(path), command)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"schedwatch: {words}")
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert not data.exists()  # refused before the database or the network


def test_a_run_whose_site_cannot_be_published_exits_non_zero(tmp_path: Path, run_cli,
                                                             httpserver) -> None:
    from tests.support.config import write_config as write_test_config
    from tests.support.documents import FIXTURES

    httpserver.expect_request("/C-38.8.xml").respond_with_data(
        (FIXTURES / "ca" / "cdsa-mini.xml").read_bytes(), content_type="application/xml")
    site = tmp_path / "not-a-folder"
    site.write_text("a file where the site should go\n")
    path = write_test_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": httpserver.url_for("/C-38.8.xml")}})
    path.write_text(f'site_dir = "{site}"\n' + path.read_text())  # a top-level key: first
    result = run_cli("--config", str(path), "run", "-j", "ca")
    assert "ca-cdsa: ok, parsed" in result.stdout  # the tracking itself worked
    assert "site not updated" in result.stderr
    assert result.exit_code != 0, result.stdout + result.stderr
    assert "all healthy" not in result.stdout


@pytest.mark.parametrize(("args", "option"), [
    (("status", "--as-of", "2025-13-01"), "'--as-of'"),
    (("changes", "--since", "yesterday"), "'--since'"),
])
def test_a_bad_date_option_names_the_option(tmp_path: Path, run_cli, args: tuple[str, ...],
                                            option: str) -> None:
    result = run_cli(*args, env={"SCHEDWATCH_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2
    assert f"Invalid value for {option}: {args[-1]!r} is not a date; write YYYY-MM-DD" \
        in result.stderr
    assert "Traceback" not in result.stderr
