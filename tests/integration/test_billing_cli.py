"""The billable peak exact to the second, as a user meets it: the CLI against the simulator,
Azurite and a webhook receiver (the checks run at the machine's clock, so the story is laid
out relative to it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulator import GenesysSimulator, SimOrg
from simulator.azurite import Azurite
from simulator.demo import build_story_org, set_online
from tests.fixtures.receivers import HttpReceiver

REPO = Path(__file__).resolve().parents[2]
EXTRA = 10  # pool users beyond the 100 steady ones


@pytest.fixture
def story() -> tuple[SimOrg, datetime]:
    """110 pool users (+20 Communicate-only); 100 logged in for hours; the clock's minute."""
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    org = build_story_org(100 + EXTRA, now=minute - timedelta(hours=3))
    set_online(org, 100, minute - timedelta(hours=3))
    org.now = now + timedelta(minutes=5)  # the checks run within the next minutes
    return org, minute


def extra_users(org: SimOrg) -> list[str]:
    pool = [user.id for user in org.users if user.licenses == ["cloudCX3"]]
    return pool[100:]


def run_check(sim: GenesysSimulator, azurite: Azurite, table: str,
              receiver: HttpReceiver) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "WINDOW_"))}
    env.update({
        "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
        "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
        "LICENSE_CAPACITY": "100", "WINDOW_MINUTES": "60",
        # A period that began days ago whatever today is: the story never straddles its start.
        "BILLING_ANCHOR_DAY": str(min(28, (datetime.now(UTC) - timedelta(days=2)).day)),
        "STATE_CONNECTION": azurite.connection_string, "STATE_TABLE": table,
        "ALERT_WEBHOOK_URL": receiver.url,
    })
    done = subprocess.run([sys.executable, "-m", "license_monitor", "check", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, json.loads(done.stdout)


def test_one_second_hand_overs_peak_at_110_but_bill_100(
    story: tuple[SimOrg, datetime], simulator: Callable[..., GenesysSimulator],
    azurite: Azurite, table_name: str, webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    org, minute = story
    # Three hand-overs of 10 minutes: 10 users arrive at second 20, 10 leave at second 21.
    for first in (50, 35, 20):
        for offset in range(10):
            start = minute - timedelta(minutes=first - offset)
            for user_id in extra_users(org):
                org.set_presence(user_id, "AVAILABLE", start + timedelta(seconds=20))
                org.set_presence(user_id, "OFFLINE", start + timedelta(seconds=21))
    receiver = webhook_receiver()

    code, report = run_check(simulator(org, rate_limit_per_minute=None), azurite, table_name,
                             receiver)

    assert report["concurrent"]["peak"]["total"] == 110  # the instant is real
    assert code == 2  # and the window's level says so (critical)
    billing = report["billing"]
    assert billing["billable_peak"] == 100
    assert billing["billable_peak_upper"] == 110  # what whole-minute sampling would bill
    assert billing["seconds_over_capacity"] == 30
    assert billing["minutes_over_capacity"] == 0
    assert "overage_locked_in" not in report["events"]
    assert [item.body["event"] for item in receiver.delivered] == ["breach"]


def test_thirty_one_minutes_at_105_bill_105_once(
    story: tuple[SimOrg, datetime], simulator: Callable[..., GenesysSimulator],
    azurite: Azurite, table_name: str, webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    org, minute = story
    for user_id in extra_users(org)[:5]:
        org.set_presence(user_id, "AVAILABLE", minute - timedelta(minutes=40))
        org.set_presence(user_id, "OFFLINE", minute - timedelta(minutes=9))
    receiver = webhook_receiver()
    sim = simulator(org, rate_limit_per_minute=None)

    _, report = run_check(sim, azurite, table_name, receiver)
    _, again = run_check(sim, azurite, table_name, receiver)

    assert report["billing"]["billable_peak"] == 105
    assert report["billing"]["seconds_over_capacity"] == 31 * 60
    assert report["events"].count("overage_locked_in") == 1
    assert "overage_locked_in" not in again["events"]
    assert again["billing"]["billable_peak"] == 105  # the same minutes, measured again
    overage = [item.body for item in receiver.delivered
               if item.body["event"] == "overage_locked_in"]
    assert len(overage) == 1
    assert "31 minutes (1860 s) over capacity" in overage[0]["message"]
