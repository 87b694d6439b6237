"""Settings: TOML from ``--config PATH`` or ``SCHEDWATCH_CONFIG``, then environment overrides.

Every key is checked: an unknown key, a bad value or an unreadable file raises ``ConfigError``
with one line naming the key and the fix (the CLI turns it into exit code 2). Secrets (the
SMTP password) come from the environment; a password in the file is accepted only when the
file is readable by its owner alone.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reports.settings import (
    ALERT_KINDS,
    DEFAULT_ALERT_KINDS,
    DEFAULT_CONTACT,
    SECURITY_MODES,
    EmailSettings,
    FetchSettings,
    Recipient,
    SchedulerSettings,
    Settings,
    SourceSettings,
)
from scrapers.clock import reader_zone_named
from scrapers.errors import ConfigError

# The settings' shapes live below the scheduler (reports/ type-checks against them); the
# names stay importable from here.
__all__ = ["ALERT_KINDS", "DEFAULT_ALERT_KINDS", "DEFAULT_CONTACT", "SECURITY_MODES",
           "EmailSettings", "FetchSettings", "Recipient", "SchedulerSettings", "Settings",
           "SourceSettings", "check_timezone", "load_settings"]


# --- reading -------------------------------------------------------------------------------

def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None,
                  known_sources: Mapping[str, tuple[str, ...]] | None = None) -> Settings:
    """Read the configuration. ``known_sources`` maps source id → endpoint names (from the
    jurisdiction registry) so that a misspelt source or endpoint is reported by name."""
    env = dict(os.environ if environ is None else environ)
    chosen = path if path is not None else env.get("SCHEDWATCH_CONFIG") or None
    raw: dict[str, Any] = {}
    config_path: Path | None = None
    if chosen:
        config_path = Path(chosen)
        raw = _read_toml(config_path)
    raw, origins = _apply_environment(raw, env, known_sources)
    settings = _build(raw, known_sources, config_path, origins)
    _check_jobs(settings)
    password = env.get("SCHEDWATCH_SMTP_PASSWORD")
    if settings.email is not None and password:
        settings = _replace(settings, email=_replace(settings.email, password=password))
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config: {path} does not exist; pass --config with an existing "
                          "file or copy schedwatch.example.toml") from None
    except OSError as error:
        raise ConfigError(f"config: cannot read {path} ({error.strerror}); check its "
                          "permissions") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config: {path} is not valid TOML ({error}); fix the syntax "
                          "there") from None


_ENV_SCALARS = {
    "SCHEDWATCH_DATA_DIR": "data_dir",
    "SCHEDWATCH_SITE_DIR": "site_dir",
    "SCHEDWATCH_CONTACT": "contact",
    "SCHEDWATCH_DATABASE_URL": "database_url",
}
_SOURCE_PREFIX = "SCHEDWATCH_SOURCE_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _env_source_key(variable: str, known: Mapping[str, tuple[str, ...]] | None
                    ) -> tuple[str, str] | None:
    """(source id, key) of a SCHEDWATCH_SOURCE_<ID>_<KEY> variable; None when it names
    nothing. With the registry's sources every endpoint can be set (``_BULK_URL``,
    ``_REGISTER_URL``); without them only ``_URL`` and ``_ENABLED`` are recognised."""
    rest = variable[len(_SOURCE_PREFIX):]
    if known is not None:
        for source_id, endpoints in known.items():
            prefix = source_id.upper().replace("-", "_") + "_"
            if rest.startswith(prefix):
                key = rest[len(prefix):].lower()
                if key == "enabled" or key in endpoints:
                    return source_id, key
        return None
    for suffix in ("_URL", "_ENABLED"):
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return rest[: -len(suffix)].lower().replace("_", "-"), suffix[1:].lower()
    return None


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str],
                       known: Mapping[str, tuple[str, ...]] | None = None
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """Environment overrides: SCHEDWATCH_DATA_DIR, SCHEDWATCH_SITE_DIR, SCHEDWATCH_CONTACT,
    SCHEDWATCH_DATABASE_URL, SCHEDWATCH_WATCH ("all" or comma-separated names), and per
    source SCHEDWATCH_SOURCE_<ID>_URL / _ENABLED / _<ENDPOINT> (id upper-cased, "-" as "_").

    Returns the merged table and, for each key set from the environment, the variable's
    name (dotted key → variable), so that an error names what the user actually wrote. A
    SCHEDWATCH_SOURCE_* variable that names no source or key is an error too: a misspelt
    override must not be silently ignored."""
    raw = {**raw}
    origins: dict[str, str] = {}
    for variable, key in _ENV_SCALARS.items():
        if env.get(variable):
            raw[key] = env[variable]
            origins[key] = variable
    if env.get("SCHEDWATCH_WATCH"):
        value = env["SCHEDWATCH_WATCH"].strip()
        raw["watch"] = value if value.lower() == "all" else [
            part.strip() for part in value.split(",") if part.strip()]
        origins["watch"] = "SCHEDWATCH_WATCH"
    for variable in sorted(env):
        if not variable.startswith(_SOURCE_PREFIX):
            continue
        value = env[variable]
        found = _env_source_key(variable, known)
        if found is None:
            choices = ", ".join(f"{_SOURCE_PREFIX}{sid.upper().replace('-', '_')}_URL"
                                for sid in known) if known else ""
            raise ConfigError(f"config: environment variable {variable} names no source "
                              "setting; write SCHEDWATCH_SOURCE_<SOURCE_ID>_URL or _ENABLED"
                              + (f", e.g. {choices.split(', ')[0]}" if choices else ""))
        source_id, key = found
        sources = raw.setdefault("sources", {})
        entry = dict(sources.get(source_id, {}))
        if key == "enabled":
            word = value.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ConfigError(f"config: {variable} = {value!r} is not true or false; "
                                  "write true or false (or 1/0, yes/no, on/off)")
            entry[key] = word in _TRUE
        else:
            entry[key] = value.strip()
        sources[source_id] = entry
        origins[f"sources.{source_id}.{key}"] = variable
    return raw, origins


# --- checking ------------------------------------------------------------------------------

def _unknown(section: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            where = f"{section}.{key}" if section else key
            raise ConfigError(f"config: unknown key '{where}'; valid keys"
                              f"{' in [' + section + ']' if section else ''}: "
                              f"{', '.join(allowed)}")


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         default: Any, fix: str) -> Any:
    if key not in data:
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"config: '{where}' has a bad value {value!r}; {fix}")
    return value


def _positive(value: float, where: str) -> float:
    if value < 0:
        raise ConfigError(f"config: '{where}' must not be negative (got {value})")
    return value


_TOP = ("data_dir", "site_dir", "contact", "watch", "sources", "fetch", "failures_before_alert",
        "database_url", "email", "scheduler")
_FETCH = ("connect_timeout", "read_timeout", "max_retries", "backoff", "max_wait",
          "request_interval", "max_document_mb", "insecure_skip_tls_verify", "respect_robots",
          "parallel_hosts")


def _build(raw: Mapping[str, Any], known_sources: Mapping[str, tuple[str, ...]] | None,
           config_path: Path | None, origins: Mapping[str, str] | None = None) -> Settings:
    origins = origins or {}

    def at(key: str) -> str:  # the file key, or the variable that set it
        return origins.get(key, key)

    _unknown("", raw, _TOP)
    data_dir = Path(_get(raw, "data_dir", str, at("data_dir"), "data", "give a folder path"))
    site_dir_raw = _get(raw, "site_dir", str, at("site_dir"), None, "give a folder path")
    contact = _get(raw, "contact", str, at("contact"), DEFAULT_CONTACT,
                   "give an email address or URL for the User-Agent")
    if not contact.strip() or any(ch in contact for ch in "\r\n()"):
        raise ConfigError(f"config: '{at('contact')}' must be one line without parentheses, "
                          "e.g. \"compliance@example.org\"")
    watch = _watch(raw.get("watch", ["ketamine", "esketamine", "arketamine"]), at("watch"))
    sources = _sources(raw.get("sources", {}), known_sources, origins)
    fetch = _fetch(raw.get("fetch", {}))
    failures = _get(raw, "failures_before_alert", int, "failures_before_alert", 1,
                    "give a whole number ≥ 1")
    if failures < 1:
        raise ConfigError("config: 'failures_before_alert' must be at least 1")
    database_url = _get(raw, "database_url", str, at("database_url"), None,
                        "give an SQLAlchemy URL such as sqlite:///data/schedwatch.db")
    email = _email(raw["email"], config_path) if "email" in raw else None
    scheduler = _scheduler(raw.get("scheduler", {}))
    return Settings(data_dir=data_dir, site_dir=Path(site_dir_raw) if site_dir_raw else None,
                    contact=contact.strip(), watch=watch, sources=sources, fetch=fetch,
                    failures_before_alert=failures, database_url=database_url, email=email,
                    scheduler=scheduler, config_path=config_path)


def _watch(value: Any, where: str = "watch") -> tuple[str, ...] | str:
    """``"all"`` or a list of names, each a substance schedwatch knows by one of its names
    or synonyms: a typo must never be published as "<typo> — not controlled"."""
    from jurisdictions.matching import check_watch_names

    if isinstance(value, str):
        if value.strip().lower() == "all":
            return "all"
        raise ConfigError(f"config: '{where}' is {value!r}; use \"all\" or a list such as "
                          "[\"ketamine\", \"esketamine\"]")
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"config: '{where}' must be \"all\" or a non-empty list of "
                          "substance names, e.g. [\"ketamine\"]")
    names = tuple(v.strip() for v in value)
    try:
        check_watch_names(names)
    except ValueError as error:
        raise ConfigError(f"config: '{where}': {error}") from None
    return names


def _sources(value: Any, known: Mapping[str, tuple[str, ...]] | None,
             origins: Mapping[str, str] | None = None) -> dict[str, SourceSettings]:
    if not isinstance(value, dict):
        raise ConfigError("config: 'sources' must be a table of [sources.<source_id>] sections")
    result: dict[str, SourceSettings] = {}
    for source_id, entry in value.items():
        if known is not None and source_id not in known:
            raise ConfigError(f"config: unknown source 'sources.{source_id}'; known sources: "
                              f"{', '.join(known)}")
        if not isinstance(entry, dict):
            raise ConfigError(f"config: 'sources.{source_id}' must be a table with url/enabled")
        endpoint_names = known[source_id] if known is not None else tuple(
            k for k in entry if k != "enabled")
        allowed = ("enabled", *endpoint_names)
        _unknown(f"sources.{source_id}", entry, allowed)
        endpoints: dict[str, str] = {}
        for name in endpoint_names:
            if name in entry:
                where = (origins or {}).get(f"sources.{source_id}.{name}",
                                            f"sources.{source_id}.{name}")
                url = _get(entry, name, str, where, None, "give an http(s) URL")
                if not url.startswith(("http://", "https://")):
                    raise ConfigError(f"config: '{where}' = {url!r} is not an http(s) URL; "
                                      "write it as https://host/path")
                endpoints[name] = url
        enabled = _get(entry, "enabled", bool, f"sources.{source_id}.enabled", True,
                       "write true or false")
        result[source_id] = SourceSettings(enabled=enabled, endpoints=endpoints)
    return result


def _fetch(value: Any) -> FetchSettings:
    if not isinstance(value, dict):
        raise ConfigError("config: 'fetch' must be a table")
    _unknown("fetch", value, _FETCH)
    defaults = FetchSettings()
    numbers: dict[str, Any] = {}
    for key in ("connect_timeout", "read_timeout", "backoff", "max_wait", "request_interval"):
        numbers[key] = _positive(_get(value, key, float, f"fetch.{key}", getattr(defaults, key),
                                      "give a number of seconds"), f"fetch.{key}")
    for key in ("max_retries", "max_document_mb", "parallel_hosts"):
        numbers[key] = int(_positive(_get(value, key, int, f"fetch.{key}",
                                          getattr(defaults, key), "give a whole number"),
                                     f"fetch.{key}"))
    if numbers["parallel_hosts"] < 1:
        raise ConfigError("config: 'fetch.parallel_hosts' must be at least 1 (1 fetches one "
                          f"host at a time; got {numbers['parallel_hosts']})")
    for key in ("insecure_skip_tls_verify", "respect_robots"):
        numbers[key] = _get(value, key, bool, f"fetch.{key}", getattr(defaults, key),
                            "write true or false")
    return FetchSettings(**numbers)


_EMAIL = ("host", "port", "security", "username", "password", "from", "site_url", "recipients",
          "timeout", "max_attempts")
_RECIPIENT = ("address", "jurisdictions", "substances", "kinds", "weekly")


def _email(value: Any, config_path: Path | None) -> EmailSettings:
    if not isinstance(value, dict):
        raise ConfigError("config: 'email' must be a table ([email])")
    _unknown("email", value, _EMAIL)
    host = _get(value, "host", str, "email.host", None, "give the SMTP server's host name")
    if not host:
        raise ConfigError("config: 'email.host' is missing; give the SMTP server's host name")
    security = _get(value, "security", str, "email.security", "starttls",
                    "use \"starttls\", \"ssl\" or \"none\"")
    if security not in SECURITY_MODES:
        raise ConfigError(f"config: 'email.security' = {security!r}; use \"starttls\", \"ssl\" "
                          "or \"none\"")
    port = _get(value, "port", int, "email.port", 465 if security == "ssl" else 587,
                "give a port number")
    if not 0 < port < 65536:
        raise ConfigError(f"config: 'email.port' = {port} is not a port number (1–65535)")
    password = None
    if "password" in value:
        password = _get(value, "password", str, "email.password", None, "give a string")
        _check_private(config_path)
    site_url = _get(value, "site_url", str, "email.site_url", None, "give an http(s) URL")
    if site_url and not site_url.endswith("/"):
        site_url += "/"
    recipients_raw = value.get("recipients", [])
    if not isinstance(recipients_raw, list):
        raise ConfigError("config: 'email.recipients' must be a list of [[email.recipients]] "
                          "tables")
    recipients = tuple(_recipient(r, i) for i, r in enumerate(recipients_raw))
    sender = _get(value, "from", str, "email.from", "schedwatch@localhost",
                  "give a sender address")
    _check_address(sender, "email.from")
    return EmailSettings(
        host=host, port=port, security=security,
        username=_get(value, "username", str, "email.username", None, "give a user name"),
        sender=sender, site_url=site_url, recipients=recipients,
        timeout=_positive(_get(value, "timeout", float, "email.timeout", 30.0,
                               "give a number of seconds"), "email.timeout"),
        max_attempts=_get(value, "max_attempts", int, "email.max_attempts", 8,
                          "give a whole number"),
        password=password)


def _check_private(config_path: Path | None) -> None:
    if config_path is None:
        return
    mode = config_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"config: {config_path} holds an SMTP password but others can read it; "
                          f"run `chmod 600 {config_path}` or move the password to "
                          "SCHEDWATCH_SMTP_PASSWORD")


def _check_address(address: str, where: str) -> None:
    if "@" not in address or any(ch in address for ch in " \r\n<>,"):
        raise ConfigError(f"config: '{where}' = {address!r} is not an email address")


def _recipient(value: Any, index: int) -> Recipient:
    where = f"email.recipients[{index}]"
    if not isinstance(value, dict):
        raise ConfigError(f"config: '{where}' must be a table with address = \"...\"")
    _unknown(where, value, _RECIPIENT)
    address = _get(value, "address", str, f"{where}.address", None, "give an email address")
    if not address:
        raise ConfigError(f"config: '{where}.address' is missing")
    _check_address(address, f"{where}.address")

    def names(key: str, check: Callable[[str], bool] | None = None) -> tuple[str, ...] | None:
        if key not in value:
            return None
        items = value[key]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"config: '{where}.{key}' must be a list of strings")
        for item in items:
            if check is not None and not check(item):
                raise ConfigError(f"config: '{where}.{key}' has {item!r}; valid values: "
                                  f"{', '.join(ALERT_KINDS)}")
        return tuple(items)

    kinds = names("kinds", lambda k: k in ALERT_KINDS)
    return Recipient(address=address, jurisdictions=names("jurisdictions"),
                     substances=names("substances"),
                     kinds=kinds if kinds is not None else DEFAULT_ALERT_KINDS,
                     weekly=_get(value, "weekly", bool, f"{where}.weekly", True,
                                 "write true or false"))


#: ``[scheduler] timezone`` as a zone, or ConfigError naming the key. Checked when the
#: configuration is loaded, so that no command runs with a zone nothing can render.
check_timezone = reader_zone_named


def _scheduler(value: Any) -> SchedulerSettings:
    if not isinstance(value, dict):
        raise ConfigError("config: 'scheduler' must be a table")
    _unknown("scheduler", value, ("timezone", "cron", "misfire_grace_time",
                                  "heartbeat_seconds"))
    timezone = _get(value, "timezone", str, "scheduler.timezone", "UTC",
                    "give an IANA zone such as \"America/Toronto\"")
    check_timezone(timezone)
    cron = value.get("cron", {})
    if not isinstance(cron, dict) or not all(isinstance(v, str) for v in cron.values()):
        raise ConfigError("config: 'scheduler.cron' must be a table of job id = \"crontab "
                          "expression\"")
    seconds: dict[str, int] = {}
    for key, default in (("misfire_grace_time", 3600), ("heartbeat_seconds", 60)):
        seconds[key] = _get(value, key, int, f"scheduler.{key}", default, "give seconds")
        if seconds[key] < 1:
            raise ConfigError(f"config: 'scheduler.{key}' must be at least 1 second "
                              f"(got {seconds[key]})")
    return SchedulerSettings(timezone=timezone, cron=dict(cron), **seconds)


def _check_jobs(settings: Settings) -> None:
    """Every ``[scheduler.cron]`` entry names a job and is a crontab expression the
    scheduler accepts, checked on every command (``run`` and ``status`` included), not
    only when ``schedule`` starts. The cron parser (APScheduler) is imported only when the
    table has entries: the defaults are known to be valid."""
    if not settings.scheduler.cron:
        return
    from scheduler import cron as jobs

    ids = jobs.job_ids()
    zone = check_timezone(settings.scheduler.timezone)
    for job_id, expression in settings.scheduler.cron.items():
        if job_id not in ids:
            raise ConfigError(f"config: unknown job 'scheduler.cron.{job_id}'; valid job ids: "
                              f"{', '.join(ids)}")
        if expression.strip().lower() == jobs.OFF:
            continue
        try:
            jobs.parse_crontab(expression, zone)
        except ValueError as error:
            raise ConfigError(f"config: 'scheduler.cron.{job_id}' = {expression!r} is not "
                              f"a valid crontab expression ({error}); {jobs._CRON_FORM}") from None


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)
