"""The request budget holds across processes: a CLI check and a billing rebuild run at once
on the same OAuth client, counted by the simulator that answers them both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simulator import GenesysSimulator, generate_org
from simulator.azurite import Azurite

REPO = Path(__file__).resolve().parents[2]
BUDGET = 20  # per minute: the two runs need about 34 requests together


def most_in_a_minute(times: list[float]) -> int:
    """The most requests answered in any 60 s."""
    times = sorted(times)
    first, most = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_a_check_and_a_rebuild_side_by_side_stay_within_one_budget(
    simulator: Callable[..., GenesysSimulator], azurite: Azurite, table_name: str,
) -> None:
    now = datetime.now(UTC)
    org = generate_org(400, seed=3, now=now + timedelta(minutes=30), history_hours=30)
    org.now = now + timedelta(minutes=30)
    sim = simulator(org, rate_limit_per_minute=None)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "REQUEST_"))}
    env.update({
        "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
        "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
        "LICENSE_CAPACITY": "100000", "REQUEST_BUDGET_PER_MINUTE": str(BUDGET),
        "STATE_CONNECTION": azurite.connection_string, "STATE_TABLE": table_name,
    })
    commands = {
        "check": ["check", "--json"],
        "rebuild": ["billing", "rebuild", "--since", (now - timedelta(days=1)).date().isoformat(),
                    "--json"],
    }
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "license_monitor", *args], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, args in commands.items()
    }
    done = {name: run.communicate(timeout=300) for name, run in runs.items()}

    for name, run in runs.items():
        assert run.returncode == 0, (name, done[name][1][-2000:])
    report = json.loads(done["check"][0])
    assert report["level"] == "ok"
    assert report["concurrent"]["now"]["total"] > 0
    assert json.loads(done["rebuild"][0])["periods"][0]["minutes_measured"] > 0
    api = [request for request in sim.requests if not request.path.startswith("/oauth")]
    times = [request.at for request in api]
    # Together they needed more than one budget: alone, each process would have sent its
    # own BUDGET in the first minute. Shared, no minute holds more than BUDGET.
    most, span = most_in_a_minute(times), max(times) - min(times)
    print(f"{len(api)} requests over {span:.0f} s, at most {most} in any 60 s")
    assert len(api) > BUDGET + 5
    assert most <= BUDGET
    assert span >= 60  # so the second half waited for the window
