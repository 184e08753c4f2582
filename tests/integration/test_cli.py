"""`python -m license_monitor check` and the demo, run as a user runs them, against real servers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from license_monitor.settings import Settings
from license_monitor.state import StateStore
from simulator import Fault, GenesysSimulator
from simulator.azurite import Azurite
from simulator.demo import build_story_org, run, set_online
from tests.fixtures.monitor import WORLD_START

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def story_simulator(
    simulator: Callable[..., GenesysSimulator],
) -> Callable[[int], GenesysSimulator]:
    """A simulator whose org has `online` of 200 pool users logged in for the last 18 minutes."""

    def make(online: int) -> GenesysSimulator:
        org = build_story_org(200, now=WORLD_START)
        set_online(org, online, WORLD_START - timedelta(minutes=18))
        return simulator(org, rate_limit_per_minute=None)

    return make


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_"))}
    return subprocess.run(
        [sys.executable, "-m", "license_monitor", *args], cwd=REPO, env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False)


def next_second() -> None:
    """Wait for the next wall-clock second: check times are whole seconds, and a second check
    within the same one is taken for a repeat of the first (and decides nothing)."""
    time.sleep(1.01 - time.time() % 1)


def env_for(sim: GenesysSimulator, **extra: str) -> dict[str, str]:
    return {
        "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
        "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
        "LICENSE_CAPACITY": "100", **extra,
    }


@pytest.mark.parametrize(("online", "level", "code"), [(50, "ok", 0), (91, "warning", 1),
                                                       (97, "critical", 2)])
def test_check_json_prints_one_object_and_exits_by_level(
    story_simulator: Callable[[int], GenesysSimulator], online: int, level: str, code: int,
) -> None:
    sim = story_simulator(online)
    done = cli(["check", "--json", "--dry-run"], env_for(sim))
    assert done.returncode == code, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON object, nothing else on stdout
    assert report["level"] == level
    assert report["concurrent"]["peak"]["total"] == online
    assert report["capacity"] == 100
    # No storage: the period's 30-minute figure is unknown, never a made-up zero.
    assert report["billing"]["billable_peak"] is None


def test_a_real_check_writes_state_and_notifies_nothing_without_channels(
    story_simulator: Callable[[int], GenesysSimulator], azurite: Azurite, table_name: str,
) -> None:
    sim = story_simulator(93)
    env = env_for(sim, STATE_CONNECTION=azurite.connection_string, STATE_TABLE=table_name)
    first = cli(["check", "--json"], env)
    second = cli(["check", "--json"], env)
    assert json.loads(first.stdout)["events"] == ["breach"]
    assert json.loads(second.stdout)["events"] == []  # the state remembered the breach
    assert second.returncode == 1


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("empty", "the license listing (GET /api/v2/license/users) returned no licenses for "
                  "220 active users"),
        ("forbidden", "missing the permission authorization:license:view"),
    ],
)
def test_missing_license_data_exits_unknown_and_the_open_breach_stays_open(
    story_simulator: Callable[[int], GenesysSimulator], azurite: Azurite, table_name: str,
    missing: str, named: str,
) -> None:
    sim = story_simulator(93)
    # The roster expires at once, so every check has it read again in the background (and
    # the CLI waits for that before exiting).
    env = env_for(sim, STATE_CONNECTION=azurite.connection_string, STATE_TABLE=table_name,
                  ROSTER_TTL_MINUTES="0")
    first = cli(["check", "--json"], env)
    assert (first.returncode, json.loads(first.stdout)["events"]) == (1, ["breach"])

    held = {user.id: user.licenses for user in sim.org.users}
    if missing == "empty":
        with sim.lock:
            for user in sim.org.users:
                user.licenses = []
    else:
        sim.inject(Fault(kind="forbidden", path="/api/v2/license/users",
                         permission="authorization:license:view", times=None))
    next_second()
    # This check measures with the roster it has (never waiting for the refresh); the refresh
    # it starts fails, and the next check says why.
    stale = cli(["check", "--json"], env)
    assert (stale.returncode, json.loads(stale.stdout)["events"]) == (1, [])
    next_second()
    failed = cli(["check", "--json"], env)

    assert failed.returncode == 3, failed.stderr
    report = json.loads(failed.stdout)
    assert report["level"] == "unknown"
    assert named in report["error"]
    assert report["events"] == []
    assert "concurrent" not in report  # never a pool of zero
    state = StateStore.from_connection_string(
        azurite.connection_string, table_name, Settings.from_env(env).client_key,
        by_client=True).alerts.load_state()
    assert (state.level, state.consecutive_failures) == ("warning", 1)
    assert state.episode_id is not None

    with sim.lock:
        for user in sim.org.users:
            user.licenses = held[user.id]
    sim.clear_faults()
    next_second()
    again = cli(["check", "--json"], env)
    assert again.returncode == 1, again.stderr
    assert json.loads(again.stdout)["events"] == []  # no resolved, no second breach


def test_wrong_credentials_are_unknown_with_a_clear_error_and_no_secret(
    story_simulator: Callable[[int], GenesysSimulator],
) -> None:
    sim = story_simulator(50)
    wrong = "wrong-secret-Zq9"
    done = cli(["check", "--json", "--dry-run"], env_for(sim, GENESYS_CLIENT_SECRET=wrong))
    assert done.returncode == 3
    report = json.loads(done.stdout)
    assert report["level"] == "unknown"
    assert "127.0.0.1" in report["error"]
    assert "concurrent" not in report
    assert wrong not in done.stdout + done.stderr


def test_bad_settings_list_every_problem_and_exit_unknown() -> None:
    done = cli(["check", "--json"],
               {"LICENSE_CAPACITY": "many", "GENESYS_CLIENT_SECRET": "shh-123456"})
    assert done.returncode == 3
    assert "GENESYS_CLIENT_ID is missing" in done.stderr
    assert "LICENSE_CAPACITY must be" in done.stderr
    assert "shh-123456" not in done.stderr + done.stdout
    report = json.loads(done.stdout)  # still exactly one JSON object
    assert report["level"] == "unknown"
    assert "settings are invalid" in report["error"]


@pytest.mark.parametrize("content", [None, "{not json"])
def test_an_unreadable_settings_file_is_unknown_not_a_traceback(
    tmp_path: Path, content: str | None,
) -> None:
    path = tmp_path / "local.settings.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = cli(["check", "--json", "--settings", str(path)], {})
    assert done.returncode == 3
    report = json.loads(done.stdout)
    assert report["level"] == "unknown"
    assert "settings file" in report["error"]
    assert "Traceback" not in done.stderr


def test_human_output_is_one_line_per_check(
    story_simulator: Callable[[int], GenesysSimulator],
) -> None:
    sim = story_simulator(91)
    done = cli(["check", "--dry-run"], env_for(sim))
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "WARNING" in lines[0]
    assert "peak 91/100 (91.0%)" in lines[0]


def test_the_demo_plays_breach_escalation_and_recovery_once_each() -> None:
    out = io.StringIO()
    assert run(out=out, users=400) == 0  # 100 licenses
    text = out.getvalue()
    received = [line.split("'")[1] for line in text.splitlines() if "webhook received" in line]
    assert received == ["breach", "escalation", "resolved"]
    assert "3 alerts delivered in 7 checks" in text
    shift_line = next(line for line in text.splitlines() if "active in window 108" in line)
    assert "OK" in shift_line
    assert "peak 72/100" in shift_line


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('["GENESYS_CLIENT_ID", "x"]', id="a list"),
        pytest.param('"Values"', id="a string"),
        pytest.param("42", id="a number"),
        pytest.param("null", id="null"),
        pytest.param('{"Values": ["GENESYS_CLIENT_ID=x"]}', id="Values a list"),
        pytest.param('{"Values": "GENESYS_CLIENT_ID=x"}', id="Values a string"),
        pytest.param('{"Values": null}', id="Values null"),
        pytest.param('{"Values": {"LICENSE_CAPACITY": {"nested": 1}}}', id="a nested object"),
        pytest.param('{"Values": {"GENESYS_CLIENT_SECRET": ["shh-file-secret-42"]}}',
                     id="a list value"),
        pytest.param('{"Values": {"GENESYS_CLIENT_SECRET": null}}', id="a null value"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested too deep"),
    ],
)
@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "human"])
def test_a_settings_file_of_the_wrong_shape_is_one_sentence_and_exit_3(
    tmp_path: Path, content: str, json_mode: bool,
) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(content, encoding="utf-8")
    done = cli(["check", *(["--json"] if json_mode else []), "--settings", str(path)], {})
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    [sentence] = done.stderr.splitlines()
    assert sentence.startswith(f"cannot read the settings file {path}: ")
    assert "shh-file-secret-42" not in done.stdout + done.stderr
    if json_mode:
        report = json.loads(done.stdout)  # exactly one JSON object
        assert report["level"] == "unknown"
        assert report["error"] == sentence
    else:
        [line] = done.stdout.splitlines()
        assert "UNKNOWN" in line
        assert "settings file" in line


def test_a_well_shaped_settings_file_with_a_setting_that_cannot_work_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "GENESYS_CLIENT_ID": "client-1", "GENESYS_CLIENT_SECRET": "shh-123456",
        "LICENSE_CAPACITY": 100, "ALERT_WEBHOOK_URL": "http://user:pw-PRIVATE@hooks.example/a",
        "REMIND_EVERY_MINUTES": "9" * 30,
    }}), encoding="utf-8")
    done = cli(["check", "--json", "--dry-run", "--settings", str(path)], {})
    assert done.returncode == 3
    assert "ALERT_WEBHOOK_URL must not carry a user name or password" in done.stderr
    assert "REMIND_EVERY_MINUTES must be a whole number from 0 to 10080" in done.stderr
    assert "PRIVATE" not in done.stdout + done.stderr
    assert "shh-123456" not in done.stdout + done.stderr
    assert "settings are invalid" in json.loads(done.stdout)["error"]


def test_a_cli_check_sends_its_metrics_like_the_app(
    story_simulator: Callable[[int], GenesysSimulator], azurite: Azurite, table_name: str,
) -> None:
    from tests.fixtures.app_insights import IngestionEndpoint  # noqa: PLC0415

    sim = story_simulator(93)
    endpoint = IngestionEndpoint()
    try:
        env = env_for(sim, STATE_CONNECTION=azurite.connection_string, STATE_TABLE=table_name,
                      ORG_NAME="Contoso",
                      APPLICATIONINSIGHTS_CONNECTION_STRING=endpoint.connection_string)
        done = cli(["check", "--json"], env)
        assert done.returncode == 1, done.stderr
        received = {envelope["data"]["baseData"]["metrics"][0]["name"]:
                    (envelope["data"]["baseData"]["metrics"][0]["value"],
                     envelope["data"]["baseData"]["properties"])
                    for envelope in endpoint.envelopes}
        assert len(endpoint.envelopes) == len(received)  # one point per metric
        assert received["license.concurrent.peak"] == (93, {"org": "Contoso"})
        assert received["license.check.failed"][0] == 0
        assert received["license.capacity"][0] == 100
        assert cli(["check", "--json", "--dry-run"], env).returncode == 1
        assert len(endpoint.envelopes) == len(received)  # a dry run sends nothing
    finally:
        endpoint.stop()
