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
