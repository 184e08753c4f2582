"""`python -m license_monitor billing rebuild`: a wrong stored figure is replaced by what
Genesys's presence history says, never kept as the higher of the two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from license_monitor.usage import MinuteProfile
from simulator.azurite import Azurite
from tests.fixtures.monitor import World, at, check_at, online_from

REPO = Path(__file__).resolve().parents[2]
PERIOD = date(2026, 11, 1)








def rebuild(w: World, azurite: Azurite, table: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_"))}
    sim = w.simulator
    env.update({
        "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
        "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
        "LICENSE_CAPACITY": "100", "STATE_CONNECTION": azurite.connection_string,
        "STATE_TABLE": table,
    })
    return subprocess.run(
        [sys.executable, "-m", "license_monitor", "billing", "rebuild", *args], cwd=REPO,
        env=env, capture_output=True, text=True, timeout=120, check=False)


def test_rebuild_restores_the_true_billable_peak(
    world: Callable[..., World], azurite: Azurite, table_name: str,
) -> None:
    w = world()  # capacity 100
    online_from(w, 50, at(8, 0))
    online_from(w, 105, at(8, 20))
    for minute in (15, 30, 45):
        check_at(w, at(8, minute))
    online_from(w, 50, at(8, 51))  # 31 minutes at 105
    online_from(w, 0, at(9, 10))
    truth = check_at(w, at(9, 15))["billing"]
    assert (truth["billable_peak"], truth["seconds_over_capacity"]) == (105, 31 * 60)

    # A wrong past figure: 40 minutes at 150 that never happened, stored as the newest.
    assert w.services.state is not None
    wrong = w.services.state.billing.record_minutes(
        PERIOD, {at(10, minute): MinuteProfile.flat(150) for minute in range(40)}, at(12, 0))
    assert wrong.billable_peak == 150

    w.simulator.org.now = at(23, 59)
    done = rebuild(w, azurite, table_name, "--since", "2026-11-26", "--until", "2026-11-27",
                   "--json")

    assert done.returncode == 0, done.stderr
    [period] = json.loads(done.stdout)["periods"]
    assert period["period_start"] == "2026-11-01"
    assert period["before"]["billable_peak"] == 150
    assert period["after"]["billable_peak"] == 105
    assert period["after"]["seconds_over_capacity"] == 31 * 60
    stored = w.services.state.billing.summary(PERIOD)
    assert (stored.billable_peak, stored.seconds_over(100)) == (105, 31 * 60)

    text = rebuild(w, azurite, table_name, "--since", "2026-11-26", "--until", "2026-11-27")
    assert text.returncode == 0, text.stderr
    assert "billable peak 105 -> 105" in text.stdout


def test_rebuild_refuses_a_day_in_the_future_with_one_sentence(
    world: Callable[..., World], azurite: Azurite, table_name: str,
) -> None:
    w = world()
    done = rebuild(w, azurite, table_name, "--since", "2999-01-01")
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "billing rebuild failed: --since 2999-01-01 is not before --until or now")
