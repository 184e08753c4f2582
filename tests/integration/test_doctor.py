"""`python -m license_monitor doctor` against the simulator, Azurite and local receivers."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from license_monitor.cli import main
from license_monitor.doctor import run_doctor
from license_monitor.settings import Settings
from simulator import GenesysSimulator
from simulator.azurite import Azurite
from simulator.endpoints import PERMISSIONS
from tests.fixtures.receivers import HttpReceiver


def env_for(sim: GenesysSimulator, **extra: str) -> dict[str, str]:
    return {"GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
            "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
            "LICENSE_CAPACITY": "10", **extra}


def doctor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI in this process with exactly these settings in the environment."""
    for name in ("STATE_CONNECTION", "STATE_ACCOUNT_URL", "AzureWebJobsStorage",
                 "ALERT_WEBHOOK_URL", "TEAMS_WEBHOOK_URL", "SLACK_WEBHOOK_URL",
                 "PAGERDUTY_ROUTING_KEY", "ALERT_EMAIL_TO", "AGENT_RULE", "CONCURRENT_POOL",
                 "CONCURRENT_LICENSE_PATTERN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    code = main(["doctor", *args], out=out, err=err)
    return code, out.getvalue()


def missing(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("MISSING")]


def test_a_well_configured_org_passes_with_one_ok_line_per_requirement(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator()
    code, text = doctor(monkeypatch, env_for(sim))
    assert code == 0, text
    assert missing(text) == []
    for requirement in ("credentials and region", "organization", "users", "licenses",
                        "agent rule", "analytics user aggregates", "analytics user details"):
        assert any(line.startswith("ok") and requirement in line
                   for line in text.splitlines()), (requirement, text)
    # The license ids found, against the pattern: counted tiers and the ones left out.
    licenses = next(line for line in text.splitlines() if "licenses" in line)
    assert "cloudCX3" in licenses
    assert "cloudCX1" in licenses
    assert "not counted: communicate" in licenses
    assert text.rstrip().endswith("ready: a real check will work with these settings")


@pytest.mark.parametrize(("permission", "agent_rule"), [
    ("analytics:userAggregate:view", "queue"),
    ("analytics:userDetail:view", "queue"),
    ("routing:queue:view", "queue"),
    ("authorization:role:view", "role:Agent"),
])
def test_each_permission_removed_gives_one_line_naming_it_and_exit_3(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
    permission: str, agent_rule: str,
) -> None:
    sim = simulator()
    sim.revoke(permission)
    code, text = doctor(monkeypatch, env_for(sim, AGENT_RULE=agent_rule))
    assert code == 3
    (line,) = missing(text)
    assert f"grant the OAuth client's role the permission {permission} " in line
    assert "not ready: 1 requirement(s) missing" in text


def test_every_permission_the_simulator_enforces_is_one_the_doctor_names() -> None:
    # The list above covers what the platform documents for the endpoints a check reads; the
    # only other one guards signing users out (`idle --sign-out`), which no check does.
    assert {"analytics:userAggregate:view", "analytics:userDetail:view",
            "routing:queue:view", "authorization:role:view"} == PERMISSIONS - {"oauth:token:delete"}


def test_wrong_secret_names_the_settings_and_skips_the_rest(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator()
    code, text = doctor(monkeypatch, env_for(sim, GENESYS_CLIENT_SECRET="not-the-secret"))
    assert code == 3
    (line,) = missing(text)
    assert "credentials and region" in line
    assert "GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET" in line
    assert "GENESYS_REGION" in line
    assert "not-the-secret" not in text
    assert sum(1 for row in text.splitlines() if row.startswith("skipped")) == 6


def test_a_pattern_matching_no_license_id_lists_the_ids_found(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator()
    code, text = doctor(monkeypatch, env_for(sim, CONCURRENT_LICENSE_PATTERN="^genesysCX"))
    assert code == 3
    (line,) = missing(text)
    assert "no license id matches CONCURRENT_LICENSE_PATTERN ^genesysCX" in line
    assert "cloudCX3" in line
    assert "communicate" in line


def test_an_agent_rule_naming_an_unknown_role_names_the_setting(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator()
    code, text = doctor(monkeypatch, env_for(sim, AGENT_RULE="role:Agents"))
    assert code == 3
    (line,) = missing(text)
    assert "no role called 'Agents'" in line
    assert "AGENT_RULE" in line


def test_send_test_delivers_one_test_message_to_each_channel(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
    webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    sim = simulator()
    webhook = webhook_receiver()
    slack = webhook_receiver(path="/slack")
    env = env_for(sim, ALERT_WEBHOOK_URL=webhook.url, SLACK_WEBHOOK_URL=slack.url)
    code, text = doctor(monkeypatch, env)
    assert code == 0, text
    assert webhook.delivered == []
    assert slack.delivered == []

    code, text = doctor(monkeypatch, env, "--send-test")
    assert code == 0, text
    assert [body.body["event"] for body in webhook.delivered] == ["test"]
    assert "this channel works" in webhook.delivered[0].body["message"]
    assert len(slack.delivered) == 1
    assert "test message delivered to 127.0.0.1" in text


def test_a_channel_that_refuses_the_test_message_is_missing(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
    webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    sim = simulator()
    gone = webhook_receiver(status=404)
    code, text = doctor(monkeypatch, env_for(sim, ALERT_WEBHOOK_URL=gone.url), "--send-test")
    assert code == 3
    (line,) = missing(text)
    assert "channel webhook" in line
    assert "HTTP 404" in line
    assert "check ALERT_WEBHOOK_URL" in line


def test_storage_is_checked_when_configured(
    simulator: Callable[..., GenesysSimulator], azurite: Azurite, table_name: str,
) -> None:
    sim = simulator()
    settings = Settings.from_env(env_for(sim, STATE_CONNECTION=azurite.connection_string,
                                         STATE_TABLE=table_name))
    report = run_doctor(settings)
    assert report.passed
    (line,) = [line for line in report.lines() if "storage" in line]
    assert line.startswith("ok")
    assert f"table {table_name} readable" in line

    unconfigured = run_doctor(Settings.from_env(env_for(sim)))
    (line,) = [line for line in unconfigured.lines() if "storage" in line]
    assert line.startswith("note")
    assert "not configured" in line


def test_bad_settings_are_listed_one_per_line_before_anything_is_called(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator()
    env = env_for(sim)
    del env["GENESYS_CLIENT_ID"]
    env["LICENSE_CAPACITY"] = "lots"
    monkeypatch.delenv("GENESYS_CLIENT_ID", raising=False)
    code, text = doctor(monkeypatch, env)
    assert code == 3
    lines = missing(text)
    assert len(lines) == 2
    assert any("GENESYS_CLIENT_ID" in line for line in lines)
    assert any("LICENSE_CAPACITY" in line for line in lines)
    assert sim.count() == 0


def test_the_pagerduty_test_incident_is_resolved_at_once(
    simulator: Callable[..., GenesysSimulator], monkeypatch: pytest.MonkeyPatch,
    webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    sim = simulator()
    events = webhook_receiver(path="/v2/enqueue")
    env = env_for(sim, PAGERDUTY_ROUTING_KEY="R0UT1NGKEY", PAGERDUTY_EVENTS_URL=events.url)
    code, text = doctor(monkeypatch, env, "--send-test")
    assert code == 0, text
    trigger, resolve = (received.body for received in events.delivered)
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "info"
    assert resolve == {"routing_key": "R0UT1NGKEY", "event_action": "resolve",
                       "dedup_key": trigger["dedup_key"]}
