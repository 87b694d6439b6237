"""The [scheduler] section: zone and cron validation, cron's day-of-week numbering, "off"."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler import cron, jobs
from scheduler.cli import main
from scheduler.config import load_settings
from scrapers.errors import ConfigError
from tests.support.scheduler import only_ca, write_config

TORONTO = ZoneInfo("America/Toronto")
#: Saturday 7 March 2026, noon in Toronto (EST); DST starts the next morning at 02:00.
SATURDAY = datetime(2026, 3, 7, 12, 0, tzinfo=TORONTO)


def settings_with(tmp_path, monkeypatch, **scheduler):
    only_ca(monkeypatch)
    return load_settings(write_config(tmp_path, **scheduler))


def next_fire(expression: str, after: datetime = SATURDAY) -> datetime:
    return cron.parse_crontab(expression, TORONTO).get_next_fire_time(None, after)


@pytest.mark.parametrize(("expression", "day"), [
    ("0 8 * * 0", "Sunday"), ("0 8 * * 7", "Sunday"), ("0 8 * * sun", "Sunday"),
    ("0 8 * * 1", "Monday"), ("0 8 * * MON", "Monday"), ("0 8 * * 6", "Saturday"),
    ("0 8 * * 2-4", "Tuesday"), ("0 8 * * fri-sun", "Sunday"),
])
def test_day_of_week_numbers_follow_cron_not_apscheduler(expression, day):
    # APScheduler's own from_crontab would read "1" as Tuesday and "6" as Sunday.
    fire = next_fire(expression, after=datetime(2026, 3, 7, 9, 0, tzinfo=TORONTO))
    assert fire.strftime("%A") == day
    assert (fire.hour, fire.minute) == (8, 0)


@pytest.mark.parametrize(("field", "expected"), [
    ("*", "*"), ("0-6", "*"), ("0-7", "*"), ("1-5", "mon,tue,wed,thu,fri"),
    ("*/2", "tue,thu,sat,sun"),  # cron: Sunday, Tuesday, Thursday, Saturday
    ("1-5/2", "mon,wed,fri"), ("0,3", "wed,sun"), ("sat,7", "sat,sun"),
])
def test_day_of_week_translation(field, expected):
    assert cron.cron_day_of_week(field) == expected


def test_weekdays_only_skips_the_weekend():
    fires = []
    trigger = cron.parse_crontab("30 6 * * 1-5", TORONTO)
    moment = SATURDAY
    for _ in range(5):
        moment = trigger.get_next_fire_time(None, moment)
        fires.append(moment.strftime("%a"))
        moment = moment.replace(minute=31)
    assert fires == ["Mon", "Tue", "Wed", "Thu", "Fri"]


def test_trigger_keeps_the_crontab_text():
    trigger = cron.parse_crontab("15  6 * *   *", TORONTO)
    assert str(trigger) == "cron[15 6 * * *]"


@pytest.mark.parametrize(("expression", "reason"), [
    ("15 6 * *", "4 fields, not 5"),
    ("61 6 * * *", "minute"),
    ("15 6 * * 8", "out of range"),
    ("0 8 1 * mon", "both day-of-month and day-of-week"),
    ("0 8 * * 1/2", "range with a step"),
    ("0 8 * * 5-1", "runs backwards"),
    ("every day", "fields"),
])
def test_bad_cron_is_one_clear_line(tmp_path, monkeypatch, expression, reason):
    # Refused when the configuration is read, by every command, not only by `schedule`.
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, monkeypatch, cron={"ca": expression})
    message = str(caught.value)
    assert "\n" not in message
    assert "'scheduler.cron.ca'" in message and reason in message
    assert "e.g. \"15 6 * * *\"" in message


def test_bad_timezone(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"'scheduler.timezone' = 'America/Toront' is not a "
                                          r"known IANA time zone; use a name such as"):
        settings_with(tmp_path, monkeypatch, timezone="America/Toront")


def test_unknown_job_id_names_the_valid_ones(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, monkeypatch, cron={"weekly": "0 8 * * 1"})
    assert str(caught.value) == ("config: unknown job 'scheduler.cron.weekly'; valid job ids: "
                                 "ca, weekly_report, outbox")


@pytest.mark.parametrize("key", ["misfire_grace_time", "heartbeat_seconds"])
def test_seconds_must_be_positive(tmp_path, monkeypatch, key):
    with pytest.raises(ConfigError, match=f"'scheduler.{key}' must be at least 1"):
        settings_with(tmp_path, monkeypatch, **{key: 0})


def test_settings_built_in_code_are_still_checked_by_the_scheduler(tmp_path, monkeypatch):
    # Settings made without load_settings (embedding programs, tests) meet the same checks
    # when the jobs are built.
    import dataclasses

    settings = settings_with(tmp_path, monkeypatch)
    bad = dataclasses.replace(settings, scheduler=dataclasses.replace(
        settings.scheduler, cron={"ca": "61 6 * * *"}))
    with pytest.raises(ConfigError, match="'scheduler.cron.ca' = '61 6 \\* \\* \\*'"):
        jobs.job_specs(bad)


def test_defaults_and_off(tmp_path, monkeypatch):
    only_ca(monkeypatch)
    settings = load_settings(write_config(tmp_path, {"ca-cdsa": "http://127.0.0.1:9/C-38.8.xml"},
                                          cron={"outbox": "off"}))
    specs = {spec.id: spec for spec in jobs.job_specs(settings)}
    assert set(specs) == {"ca", "weekly_report"}
    assert str(specs["ca"].trigger) == "cron[0 6 * * *]"
    assert str(specs["weekly_report"].trigger) == "cron[0 8 * * mon]"
    assert specs["ca"].args == (str((tmp_path / "schedwatch.toml").resolve()), "ca")


def test_no_job_for_a_jurisdiction_whose_sources_are_all_disabled(tmp_path, monkeypatch):
    only_ca(monkeypatch)
    # Both Canadian sources disabled (write_config disables a source given no URL), even
    # with a cadence configured for "ca": nothing to fetch, so no job.
    settings = load_settings(write_config(tmp_path, cron={"ca": "15 6 * * *"}))
    assert not any(settings.source(s).enabled for s in ("ca-cdsa", "ca-csr"))
    specs = {spec.id: spec for spec in jobs.job_specs(settings)}
    assert set(specs) == {"weekly_report", "outbox"}
    # One source back on: the jurisdiction is scheduled again.
    settings = load_settings(write_config(tmp_path, {"ca-csr": "http://127.0.0.1:9/csr.xml"},
                                          cron={"ca": "15 6 * * *"}))
    assert [spec.id for spec in jobs.job_specs(settings)] == ["ca", "weekly_report", "outbox"]


def test_a_stored_job_of_a_jurisdiction_now_disabled_is_removed(tmp_path, monkeypatch):
    from scrapers.store import Store

    only_ca(monkeypatch)
    config = write_config(tmp_path, {"ca-cdsa": "http://127.0.0.1:9/C-38.8.xml"})
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    try:
        jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
        settings = load_settings(write_config(tmp_path))  # every "ca" source disabled now
        done = jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
        assert done["removed"] == ["ca"]
        rows, _beat = jobs.list_jobs(settings)
        assert [row["id"] for row in rows] == ["weekly_report", "outbox"]
    finally:
        store.close()


def test_cli_schedule_with_bad_config_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    only_ca(monkeypatch)
    config = write_config(tmp_path, cron={"ca": "15 6 * *"})
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "schedule"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("schedwatch: config: 'scheduler.cron.ca' = '15 6 * *'")
    assert "\n" not in err
    assert not (tmp_path / "data").exists()  # refused before touching the database
