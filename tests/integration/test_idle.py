"""Idle license holders against the simulator: the check's JSON, CLI line, metric and alert
line agree; `idle` lists them by name; `idle --sign-out` signs out exactly the users named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from license_monitor import metrics, runtime
from license_monitor.cli import summary_line
from license_monitor.times import clock_time, format_time
from simulator import GenesysSimulator, SimOrg, SimQueue, SimSegment, SimUser
from simulator.azurite import Azurite
from simulator.receiver import HttpReceiver
from tests.fixtures.monitor import World, world_settings

REPO = Path(__file__).resolve().parents[2]


def minutes_ago(now: datetime, minutes: float) -> datetime:
    return now - timedelta(minutes=minutes)


def person(now: datetime, user_id: str, name: str, *changes: tuple[float, str], agent: bool,
           lid_closed: float | None = None) -> SimUser:
    """A pool user OFFLINE since the day before, then in each presence from so many minutes
    before `now` on."""
    first = minutes_ago(now, changes[0][0])
    segments = [SimSegment(now - timedelta(days=1), first, "OFFLINE")]
    for index, (ago, presence) in enumerate(changes):
        end = minutes_ago(now, changes[index + 1][0]) if index + 1 < len(changes) else None
        segments.append(SimSegment(minutes_ago(now, ago), end, presence))
    return SimUser(user_id, name, licenses=["cloudCX3"], queue_ids=["q-1"] if agent else [],
                   segments=segments,
                   lid_closed_at=None if lid_closed is None else minutes_ago(now, lid_closed))


def idle_org(now: datetime) -> SimOrg:
    """Who is idle at `now` (IDLE_AFTER_MINUTES 60), by construction."""
    users = [
        # Agents: off queue for 90 minutes (idle); on queue and taking calls (working); off
        # queue for 59 minutes (just under); On Queue but the lid closed two hours ago: alerts
        # go unanswered (NOT_RESPONDING) since then (idle).
        person(now, "a1", "Ann Offqueue", (240, "ON_QUEUE"), (90, "AVAILABLE"), agent=True),
        person(now, "a2", "Ben Working", (240, "ON_QUEUE"), agent=True),
        person(now, "a3", "Cid Almost", (240, "ON_QUEUE"), (59, "AVAILABLE"), agent=True),
        person(now, "a4", "Dee Ghost", (240, "ON_QUEUE"), agent=True, lid_closed=120),
        # Admins: Away for three hours (idle); Available at the desk (working); on a break for
        # 59.5 minutes (just under); a meal then Away (idle for two hours to `idle`, which
        # reads the whole hour; the check's 15-minute window sees only the last 30 minutes).
        person(now, "d1", "Eve Away", (240, "AVAILABLE"), (180, "AWAY"), agent=False),
        person(now, "d2", "Fay Desk", (240, "AVAILABLE"), agent=False),
        person(now, "d3", "Gus Break", (240, "AVAILABLE"), (59.5, "BREAK"), agent=False),
        person(now, "d4", "Hal Lunch", (240, "AVAILABLE"), (120, "MEAL"), (30, "AWAY"),
               agent=False),
        SimUser("n1", "Named Away", licenses=["communicate"],
                segments=[SimSegment(minutes_ago(now, 300), None, "AWAY")]),
    ]
    return SimOrg(users=users, queues=[SimQueue("q-1", "Sales")], now=now)


@pytest.fixture
def idle_sim() -> Iterator[GenesysSimulator]:
    # The CLI reads the machine's clock: the org is built around it, in whole seconds.
    now = datetime.now(UTC).replace(microsecond=0)
    with GenesysSimulator(idle_org(now), rate_limit_per_minute=None) as sim:
        yield sim


def test_check_json_cli_line_metric_and_alert_agree(
    idle_sim: GenesysSimulator, azurite: Azurite, table_name: str,
) -> None:
    receiver = HttpReceiver(path="/alerts")
    try:
        settings = world_settings(idle_sim, azurite.connection_string, table_name, receiver,
                                  LICENSE_CAPACITY="5")
        services = runtime.Services.from_settings(settings, sleep=lambda _: None)
        runtime.install(services)
        now = idle_sim.org.now
        world = World(idle_sim, receiver, settings, services, now=now)
        report = world.check()
    finally:
        runtime.install(None)
        receiver.stop()

    idle = report["idle"]
    assert (idle["count"], idle["agents"], idle["admins"], idle["after_minutes"]) == (3, 2, 1, 60)
    assert [(u["id"], u["class"], u["since"], u["presence"]) for u in idle["users"]] == [
        ("d1", "admin", format_time(minutes_ago(now, 180)), "AWAY"),
        ("a4", "agent", format_time(minutes_ago(now, 120)), "ON_QUEUE"),
        ("a1", "agent", format_time(minutes_ago(now, 90)), "AVAILABLE"),
    ]
    assert report["concurrent"]["now"]["total"] == 8
    assert "idle 3" in summary_line(report)
    points = {name: value for name, value, _ in metrics.check_points(report, capacity=5)}
    assert points[metrics.IDLE] == 3
    [breach] = [item.body for item in receiver.received]
    assert breach["event"] == "breach"
    assert breach["message"].endswith(
        "; 3 of the 8 logged in have not worked for 60+ minutes (top 3: "
        f"d1 away since {clock_time(minutes_ago(now, 180), now)}, "
        f"a4 on queue since {clock_time(minutes_ago(now, 120), now)}, "
        f"a1 available since {clock_time(minutes_ago(now, 90), now)})")


def run_cli(sim: GenesysSimulator, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "AzureWebJobs"))}
    env.update({"GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
                "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
                "LICENSE_CAPACITY": "5"})
    return subprocess.run([sys.executable, "-m", "license_monitor", "idle", *args], cwd=REPO,
                          env=env, input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)


def test_idle_lists_every_idle_holder_by_name_longest_first(idle_sim: GenesysSimulator) -> None:
    now = idle_sim.org.now
    done = run_cli(idle_sim, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["count"], result["agents"], result["admins"], result["logged_in"]) == (
        4, 2, 2, 8)
    assert [(u["id"], u["name"], u["since"]) for u in result["users"]] == [
        ("d1", "Eve Away", format_time(minutes_ago(now, 180))),
        ("a4", "Dee Ghost", format_time(minutes_ago(now, 120))),
        ("d4", "Hal Lunch", format_time(minutes_ago(now, 120))),
        ("a1", "Ann Offqueue", format_time(minutes_ago(now, 90))),
    ]
    text = run_cli(idle_sim).stdout
    assert text.startswith("4 of the 8 logged in have not worked for 60+ minutes "
                           "(2 agents, 2 admins):")
    rows = run_cli(idle_sim, "--csv").stdout.splitlines()
    assert rows[0] == "id,name,class,since,idle_minutes,presence"
    assert [row.split(",")[0] for row in rows[1:]] == ["d1", "a4", "d4", "a1"]


def test_sign_out_ends_exactly_the_named_sessions_and_says_who_asked(
    idle_sim: GenesysSimulator,
) -> None:
    org = idle_sim.org
    refused = run_cli(idle_sim, "--sign-out", "a1")  # no terminal to confirm on, no --yes
    assert refused.returncode == 3
    assert "refusing to sign anybody out without a confirmation" in refused.stderr
    assert org.user("a1").signed_out == []

    done = run_cli(idle_sim, "--sign-out", "a1", "d1", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["signed out a1 (Ann Offqueue)",
                                        "signed out d1 (Eve Away)"]
    assert "Signed out a1 (Ann Offqueue) at the request of" in done.stderr
    assert f"(OAuth client {idle_sim.client_id})" in done.stderr
    assert [u.id for u in org.users if u.signed_out] == ["a1", "d1"]
    assert org.current_presence(org.user("a1")) == "OFFLINE"
    assert org.current_presence(org.user("a4")) == "ON_QUEUE"  # never automatic

    missing = run_cli(idle_sim, "--sign-out", "nobody", "--yes")
    assert missing.returncode == 3
    assert missing.stdout.startswith("NOT signed out nobody (name unknown): ")
