"""Settings: every invalid value gets its own line in one ConfigError; secrets never shown."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from license_monitor.settings import ConfigError, Settings

SECRET = "s3cr3t-Value-never-shown"
VALID = {
    "GENESYS_CLIENT_ID": "client-123",
    "GENESYS_CLIENT_SECRET": SECRET,
    "LICENSE_CAPACITY": "500",
}


def parse(**overrides: str) -> Settings:
    return Settings.from_env({**VALID, **overrides})


def named(line: str) -> str:
    """The setting a problem line is about: its first word."""
    return line.split(maxsplit=1)[0].rstrip(":")


def problems(**overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(**overrides)
    return caught.value.problems


def test_defaults_follow_the_design_table() -> None:
    settings = parse()
    assert settings.login_url == "https://login.mypurecloud.com"
    assert settings.api_url == "https://api.mypurecloud.com"
    assert (settings.warning_percent, settings.critical_percent) == (90, 95)
    assert settings.clear_margin_percent == 5
    assert settings.window_minutes == 15
    assert settings.agent_rule.kind == "queue"
    assert settings.concurrent_license_pattern.match("cloudCX3")
    assert not settings.concurrent_license_pattern.match("communicate")
    assert settings.roster_ttl_minutes == 60
    assert settings.request_budget_per_minute == 300
    assert settings.monitor_schedule == "0 */5 * * * *"
    assert settings.billing_anchor_day == 1
    assert settings.failure_alert_after == 3
    assert settings.remind_every_minutes == 0
    assert settings.channels == ()


def test_region_sets_both_hosts_and_overrides_win() -> None:
    settings = parse(GENESYS_REGION="mypurecloud.de")
    assert settings.login_url == "https://login.mypurecloud.de"
    assert settings.api_url == "https://api.mypurecloud.de"
    local = parse(GENESYS_API_URL="http://127.0.0.1:9000/", GENESYS_LOGIN_URL="http://127.0.0.1:9001")
    assert local.api_url == "http://127.0.0.1:9000"
    assert local.login_url == "http://127.0.0.1:9001"


def test_every_problem_is_listed_on_its_own_line_in_one_error() -> None:
    env = {
        "GENESYS_CLIENT_SECRET": SECRET,
        "LICENSE_CAPACITY": "-4",
        "WARNING_PERCENT": "96",
        "CRITICAL_PERCENT": "90",
        "GENESYS_REGION": "mars.pure.cloud",
        "GENESYS_API_URL": "ftp://example",
        "AGENT_RULE": "badge:Blue",
        "WINDOW_MINUTES": "ten",
        "QUIET_HOURS": "Funday 25:00-26:00",
        "QUIET_HOURS_TIMEZONE": "Mars/Olympus",
        "MONITOR_SCHEDULE": "*/5 * * * *",
        "CONCURRENT_LICENSE_PATTERN": "([",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    found = caught.value.problems
    expected_names = [
        "GENESYS_CLIENT_ID", "LICENSE_CAPACITY", "CRITICAL_PERCENT", "GENESYS_REGION",
        "GENESYS_API_URL", "AGENT_RULE", "WINDOW_MINUTES", "QUIET_HOURS",
        "QUIET_HOURS_TIMEZONE", "MONITOR_SCHEDULE", "CONCURRENT_LICENSE_PATTERN",
    ]
    for name in expected_names:
        assert sum(1 for line in found if named(line) == name) == 1, (name, found)
    message = str(caught.value)
    assert message.count("\n  - ") == len(found)
    assert SECRET not in message


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"LICENSE_CAPACITY": "0"}, "LICENSE_CAPACITY"),
        ({"LICENSE_CAPACITY": "12.5"}, "LICENSE_CAPACITY"),
        ({"WARNING_PERCENT": "0"}, "WARNING_PERCENT"),
        ({"CRITICAL_PERCENT": "101"}, "CRITICAL_PERCENT"),
        ({"CLEAR_MARGIN_PERCENT": "-1"}, "CLEAR_MARGIN_PERCENT"),
        ({"BILLING_ANCHOR_DAY": "32"}, "BILLING_ANCHOR_DAY"),
        ({"ROSTER_TTL_MINUTES": "-5"}, "ROSTER_TTL_MINUTES"),
        ({"REQUEST_BUDGET_PER_MINUTE": "0"}, "REQUEST_BUDGET_PER_MINUTE"),
        ({"FAILURE_ALERT_AFTER": "0"}, "FAILURE_ALERT_AFTER"),
        ({"ALERT_LINK_URL": "not a url"}, "ALERT_LINK_URL"),
        ({"ALERT_EMAIL_TO": "it@example.com"}, "ALERT_EMAIL_FROM"),
        ({"STATE_TABLE": "1bad"}, "STATE_TABLE"),
        ({"AGENT_RULE": "role:"}, "AGENT_RULE"),
    ],
)
def test_each_invalid_value_names_its_setting(overrides: dict[str, str], name: str) -> None:
    assert any(named(line) == name for line in problems(**overrides))


def test_missing_required_settings_say_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    text = str(caught.value)
    assert "GENESYS_CLIENT_ID is missing" in text
    assert "GENESYS_CLIENT_SECRET is missing" in text
    assert "LICENSE_CAPACITY is missing" in text


def test_secret_webhook_url_is_not_echoed_when_malformed() -> None:
    bad = "hooks.example/services/T000/B000/SECRETPATH"
    found = problems(SLACK_WEBHOOK_URL=bad)
    assert any(named(line) == "SLACK_WEBHOOK_URL" for line in found)
    assert "SECRETPATH" not in "\n".join(found)


def test_repr_masks_every_secret() -> None:
    settings = parse(
        ALERT_WEBHOOK_URL="https://hooks.example/p/SECRET-PATH-1",
        ALERT_WEBHOOK_SECRET="whsec_SECRET2",
        TEAMS_WEBHOOK_URL="https://teams.example/SECRET-PATH-3",
        SLACK_WEBHOOK_URL="https://slack.example/SECRET-PATH-4",
        PAGERDUTY_ROUTING_KEY="SECRET-KEY-5",
        GRAPH_CLIENT_SECRET="SECRET-6",
        STATE_CONNECTION="AccountName=x;AccountKey=SECRET-7",
    )
    shown = repr(settings) + str(settings)
    for secret in (SECRET, "SECRET-PATH-1", "SECRET2", "SECRET-PATH-3", "SECRET-PATH-4",
                   "SECRET-KEY-5", "SECRET-6", "SECRET-7"):
        assert secret not in shown
    assert "client-123" in shown
    assert settings.channels == ("webhook", "teams", "slack", "pagerduty")


def test_quiet_hours_parse_days_and_overnight_ranges() -> None:
    settings = parse(QUIET_HOURS="Sat-Sun 00:00-24:00; Mon-Fri 22:00-06:00",
                     QUIET_HOURS_TIMEZONE="Europe/Berlin")
    weekend, nights = settings.quiet_hours
    assert weekend.days == frozenset({5, 6})
    assert (weekend.start_minute, weekend.end_minute) == (0, 1440)
    assert nights.days == frozenset({0, 1, 2, 3, 4})
    assert (nights.start_minute, nights.end_minute) == (1320, 360)


def test_agent_rule_by_role_names() -> None:
    rule = parse(AGENT_RULE="role:Agent, Senior Agent").agent_rule
    assert rule.kind == "role"
    assert rule.names == ("Agent", "Senior Agent")


def test_settings_are_frozen() -> None:
    settings = parse()
    with pytest.raises(AttributeError):
        settings.license_capacity = 1  # type: ignore[misc]


@given(st.text(alphabet=string.ascii_letters + string.digits + "!#$%&*+/=?", min_size=12,
               max_size=40))
def test_no_secret_in_errors_or_repr_whatever_it_is(secret: str) -> None:
    # A "secret" that is a piece of an ordinary value (e.g. the default table name) would be
    # found for the wrong reason.
    assume(secret not in repr(Settings.from_env(VALID)))
    assume(secret not in str(ConfigError(["LICENSE_CAPACITY must be an integer >= 1, got 'x'."])))
    env = {**VALID, "GENESYS_CLIENT_SECRET": secret, "LICENSE_CAPACITY": "x",
           "ALERT_WEBHOOK_SECRET": secret, "GRAPH_CLIENT_SECRET": secret}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert secret not in str(caught.value)
    ok = Settings.from_env({**VALID, "GENESYS_CLIENT_SECRET": secret,
                            "ALERT_WEBHOOK_SECRET": secret})
    assert secret not in repr(ok)
