"""Settings: every invalid value gets its own line in one ConfigError; secrets never shown."""

from __future__ import annotations

import string
from dataclasses import fields

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
    assert settings.check_timeout_seconds == 120
    assert settings.concurrent_pool == "licenses"
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
        ALERT_WEBHOOK_SECRET="whsec_U0VDUkVUMi1rZXktYnl0ZXM=",
        TEAMS_WEBHOOK_URL="https://teams.example/SECRET-PATH-3",
        SLACK_WEBHOOK_URL="https://slack.example/SECRET-PATH-4",
        PAGERDUTY_ROUTING_KEY="SECRET-KEY-5",
        GRAPH_CLIENT_SECRET="SECRET-6",
        STATE_CONNECTION="AccountName=x;AccountKey=SECRET-7",
    )
    shown = repr(settings) + str(settings)
    for secret in (SECRET, "SECRET-PATH-1", "U0VDUkVUMi1rZXktYnl0ZXM", "SECRET-PATH-3",
                   "SECRET-PATH-4",
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


# Every integer setting and the range the Settings table of docs/settings.md states.
INTEGER_RANGES = {
    "LICENSE_CAPACITY": (1, 1_000_000),
    "WINDOW_MINUTES": (1, 1440),
    "ROSTER_TTL_MINUTES": (0, 1440),
    "REQUEST_BUDGET_PER_MINUTE": (10, 10_000),
    "MANUAL_CHECK_WAIT_SECONDS": (0, 200),
    "BILLING_ANCHOR_DAY": (1, 31),
    "FAILURE_ALERT_AFTER": (1, 100),
    "REMIND_EVERY_MINUTES": (0, 10_080),
    "RETENTION_DAYS": (1, 3650),
    "HISTORY_RETENTION_DAYS": (1, 365),
    "CHECK_TIMEOUT_SECONDS": (10, 600),
    "GAUGE_CHECK_MIN_INTERVAL_SECONDS": (10, 3600),
    "IDLE_AFTER_MINUTES": (1, 1440),
}
URL_SETTINGS = (
    "GENESYS_API_URL", "GENESYS_LOGIN_URL", "STATE_ACCOUNT_URL", "ALERT_LINK_URL",
    "ALERT_WEBHOOK_URL", "TEAMS_WEBHOOK_URL", "SLACK_WEBHOOK_URL", "PAGERDUTY_EVENTS_URL",
    "GRAPH_AUTHORITY_URL", "GRAPH_API_URL",
)
# Where plain http:// would carry a token, a secret or an alert across the network.
HTTPS_SETTINGS = tuple(name for name in URL_SETTINGS if name != "ALERT_LINK_URL")
URL_FIELDS = {"GENESYS_API_URL": "api_url", "GENESYS_LOGIN_URL": "login_url"}


def only_problem_names(**overrides: str) -> list[str]:
    return [named(line) for line in problems(**overrides)]


@pytest.mark.parametrize(
    ("name", "text", "accepted"),
    [
        pytest.param(name, str(value), accepted, id=f"{name}={value}")
        for name, (low, high) in INTEGER_RANGES.items()
        for value, accepted in ((low, True), (high, True), (low - 1, False), (high + 1, False))
    ],
)
def test_every_integer_setting_has_a_range_with_accepted_and_refused_edges(
    name: str, text: str, accepted: bool,
) -> None:
    if accepted:
        assert getattr(parse(**{name: text}), name.lower()) == int(text)
    else:
        assert only_problem_names(**{name: text}) == [name]


def test_the_integer_ranges_cover_every_integer_field() -> None:
    integer_fields = {f.name for f in fields(Settings) if f.type == "int"}
    assert integer_fields == {name.lower() for name in INTEGER_RANGES}


@pytest.mark.parametrize("name", ["ROSTER_TTL_MINUTES", "REMIND_EVERY_MINUTES", "LICENSE_CAPACITY"])
def test_a_30_digit_integer_is_refused_and_shortened_in_the_message(name: str) -> None:
    huge = "123456789" * 3 + "987"
    [line] = problems(**{name: huge})
    assert named(line) == name
    assert huge not in line
    assert repr(huge[:20] + "\u2026") in line


@given(name=st.sampled_from(sorted(INTEGER_RANGES)),
       text=st.from_regex(r"[-+]?[0-9]{1,40}", fullmatch=True))
def test_any_integer_of_up_to_40_digits_parses_in_range_or_is_one_config_error(
    name: str, text: str,
) -> None:
    low, high = INTEGER_RANGES[name]
    if low <= int(text) <= high:
        assert getattr(parse(**{name: text}), name.lower()) == int(text)
    else:
        assert only_problem_names(**{name: text}) == [name]


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        pytest.param("whsec_dGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5", True, id="whsec base64"),
        pytest.param("a-plain-shared-secret", True, id="no prefix: the bytes themselves"),
        pytest.param("whsec_" + "***not-base64-PRIVATE***", False, id="whsec not base64"),
        pytest.param("whsec_" + "QUJDRE", False, id="whsec bad padding"),
        pytest.param("whsec_", False, id="whsec nothing after it"),
    ],
)
def test_a_whsec_webhook_secret_must_be_base64(secret: str, accepted: bool) -> None:
    env = {"ALERT_WEBHOOK_URL": "https://hooks.example/alerts", "ALERT_WEBHOOK_SECRET": secret}
    if accepted:
        assert parse(**env).alert_webhook_secret == secret
        return
    [line] = problems(**env)
    assert named(line) == "ALERT_WEBHOOK_SECRET"
    remainder = secret.removeprefix("whsec_")
    assert not remainder or remainder not in line


@pytest.mark.parametrize("name", URL_SETTINGS)
@pytest.mark.parametrize(
    "url",
    ["https://admin:Pa55-PRIVATE-77@hooks.example/path", "https://tok-PRIVATE-77@hooks.example/",
     "ftp://admin:Pa55-PRIVATE-77@hooks.example/"],
)
def test_no_url_setting_takes_credentials_and_none_is_echoed(name: str, url: str) -> None:
    [line] = problems(**{name: url})
    assert named(line) == name
    assert "PRIVATE" not in line
    assert "admin" not in line


@pytest.mark.parametrize("name", HTTPS_SETTINGS)
@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://hooks.example/alerts", True),
        ("http://127.0.0.1:8080/alerts", True),
        ("http://127.9.9.9/alerts", True),
        ("http://localhost:7071/alerts", True),
        ("http://LocalHost/alerts", True),
        ("http://[::1]:9000/alerts", True),
        ("http://hooks.example/alerts", False),
        ("http://10.0.0.5/alerts", False),
        ("http://128.0.0.1/alerts", False),
        ("http://127.0.0.1.hooks.example/alerts", False),
        ("http://localhost.hooks.example/alerts", False),
    ],
)
def test_plain_http_is_refused_except_on_loopback(name: str, url: str, accepted: bool) -> None:
    if accepted:
        settings = parse(**{name: url})
        assert getattr(settings, URL_FIELDS.get(name, name.lower())) == url
    else:
        [line] = problems(**{name: url})
        assert named(line) == name
        assert "/alerts" not in line  # webhook URLs are secrets: never echoed


def test_the_alert_link_may_be_plain_http() -> None:
    assert parse(ALERT_LINK_URL="http://intranet.example/monitor").alert_link_url == (
        "http://intranet.example/monitor")


@pytest.mark.parametrize("name", URL_SETTINGS)
@pytest.mark.parametrize(
    "url", ["http://[::1", "https://hooks.example:99999/", "https://hooks.example:port/",
            "https://:443/", "https://hooks example/", "hooks.example/alerts"],
)
def test_a_malformed_url_is_one_problem_not_a_crash(name: str, url: str) -> None:
    assert only_problem_names(**{name: url}) == [name]


@pytest.mark.parametrize(
    ("warning", "critical", "margin", "refused"),
    [
        ("90", "90.5", "5", None),
        ("90", "95", "89.9", None),
        ("10", "100", "0", None),
        ("90", "90", "5", "CRITICAL_PERCENT"),
        ("90", "85", "5", "CRITICAL_PERCENT"),
        ("100", "100", "5", "CRITICAL_PERCENT"),
        ("50", "95", "50", "CLEAR_MARGIN_PERCENT"),
        ("50", "95", "60", "CLEAR_MARGIN_PERCENT"),
        ("0", "95", "50", "WARNING_PERCENT"),  # only the bad value, no follow-on problems
        ("90", "lots", "95", "CRITICAL_PERCENT"),
    ],
)
def test_thresholds_must_leave_every_level_reachable_and_clearable(
    warning: str, critical: str, margin: str, refused: str | None,
) -> None:
    env = {"WARNING_PERCENT": warning, "CRITICAL_PERCENT": critical,
           "CLEAR_MARGIN_PERCENT": margin}
    if refused is None:
        settings = parse(**env)
        assert (settings.warning_percent, settings.critical_percent,
                settings.clear_margin_percent) == (float(warning), float(critical), float(margin))
    else:
        refused_names = only_problem_names(**env)
        assert refused in refused_names
        assert len(refused_names) == len(set(refused_names))
        if refused == "WARNING_PERCENT":
            assert refused_names == ["WARNING_PERCENT"]


@pytest.mark.parametrize(
    ("text", "pool"),
    [("licenses", "licenses"), ("all_users", "all_users"), ("ALL_USERS", "all_users"),
     ("everyone", None), ("license", None), ("all users", None)],
)
def test_concurrent_pool_is_licenses_or_all_users(text: str, pool: str | None) -> None:
    if pool is not None:
        assert parse(CONCURRENT_POOL=text).concurrent_pool == pool
        return
    [line] = problems(CONCURRENT_POOL=text)
    assert named(line) == "CONCURRENT_POOL"
    assert "'licenses'" in line
    assert "'all_users'" in line


@pytest.mark.parametrize(
    "overrides",
    [{"CONCURRENT_POOL": "x" * 300}, {"WARNING_PERCENT": "9" * 300},
     {"CHECK_TIMEOUT_SECONDS": "1" * 300}, {"MONITOR_SCHEDULE": "* " * 300},
     {"ALERT_LINK_URL": "ftp://" + "x" * 300}, {"QUIET_HOURS_TIMEZONE": "Z" * 300}],
)
def test_long_values_are_shortened_in_messages(overrides: dict[str, str]) -> None:
    [line] = problems(**overrides)
    assert len(line) < 250
    assert "\u2026" in line


def test_the_forecast_day_is_the_quiet_hours_zone_unless_set() -> None:
    base = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "secret",
            "LICENSE_CAPACITY": "500", "QUIET_HOURS_TIMEZONE": "Europe/Berlin"}
    assert Settings.from_env(base).forecast_timezone == "Europe/Berlin"
    chosen = Settings.from_env({**base, "FORECAST_TIMEZONE": "America/Chicago"})
    assert chosen.forecast_timezone == "America/Chicago"
    with pytest.raises(ConfigError, match="FORECAST_TIMEZONE must be an IANA time zone"):
        Settings.from_env({**base, "FORECAST_TIMEZONE": "Mars/Olympus"})


def test_the_forecast_alert_margin_is_a_percentage_from_0_to_50() -> None:
    base = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "secret",
            "LICENSE_CAPACITY": "500"}
    assert Settings.from_env(base).forecast_alert_margin_percent == 0
    assert Settings.from_env(
        {**base, "FORECAST_ALERT_MARGIN_PERCENT": "2.5"}).forecast_alert_margin_percent == 2.5
    for bad in ("-1", "51", "nan", "two"):
        with pytest.raises(ConfigError, match="FORECAST_ALERT_MARGIN_PERCENT must be a "
                                              "percentage of the capacity from 0 to 50"):
            Settings.from_env({**base, "FORECAST_ALERT_MARGIN_PERCENT": bad})


@pytest.mark.parametrize("schedule", [
    "0 */5 * * * 1-5", "0 0 9 * * Mon", "0 */5 * */2 * *", "0 0 0 1 * *", "0 0 0 * 1-6 *"])
def test_a_schedule_that_skips_days_is_refused_with_one_sentence(schedule: str) -> None:
    [line] = problems(MONITOR_SCHEDULE=schedule)
    assert line.startswith("MONITOR_SCHEDULE must run every day")
    assert "more than 24 hours apart would leave minutes unmeasured" in line


@pytest.mark.parametrize(("schedule", "window"), [
    ("0 */5 * * * *", "5"), ("0 */15 * * * *", "15"), ("0 0 * * * *", "15"),
    ("0 0 9-17 * * *", "60"), ("0 0 0 * * *", "5"), ("0 */5 * * * *", "60")])
def test_every_daily_schedule_and_window_pair_is_accepted(schedule: str, window: str) -> None:
    # The billing ledger is one contiguous span whatever the pair: none can leave a gap.
    settings = parse(MONITOR_SCHEDULE=schedule, WINDOW_MINUTES=window)
    assert settings.monitor_schedule == schedule
