"""`peak-users` against the simulator: the CLI, the HTTP route and the ledger agree with an
independent sweep over the simulator's own model."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest

from function_app import app
from license_monitor import peak_users, runtime
from license_monitor.billing import Histogram
from license_monitor.genesys.models import OFFLINE
from license_monitor.rebuild import rebuild_billing
from license_monitor.settings import Settings
from orchestrators.replay_host import registry_of
from simulator import GenesysSimulator, SimOrg, SimQueue, SimSegment, SimUser, generate_org
from simulator.azurite import Azurite
from tests.fixtures.durable_extension import run_async

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 25)
MIDNIGHT = datetime(2026, 11, 25, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def hm(hours: int, minutes: int = 0) -> datetime:
    return MIDNIGHT + timedelta(hours=hours, minutes=minutes)


def logins(*spans: tuple[datetime, datetime], presence: str = "AVAILABLE") -> list[SimSegment]:
    segments = [SimSegment(MIDNIGHT - timedelta(days=1), spans[0][0], OFFLINE)]
    for index, (start, end) in enumerate(spans):
        segments.append(SimSegment(start, end, presence))
        following = spans[index + 1][0] if index + 1 < len(spans) else None
        segments.append(SimSegment(end, following, OFFLINE))
    return segments


def tied_day_org() -> SimOrg:
    """Level 6 held 54 minutes on DAY (in four blocks), 7 and 8 only 4 minutes.

    p01-p04 work 08:00-17:00; p05+p06 join 10:00-10:20, p07+p08 14:00-14:20, p05+p09
    15:00-15:10, p05+p09+p10+p11 16:00-16:04 (level 8). Eleven distinct users are logged in
    at level 6 or more. p06, p07 and p08 tie at 20 minutes at the peak: p07 also logs in
    18:00-18:30 (longer that day) and takes the sixth place; p06 and p08 tie on everything.
    A Communicate user logged in all day is never counted.
    """
    queue = SimQueue("q-1", "Sales")

    def user(number: int, *spans: tuple[datetime, datetime], license_id: str = "cloudCX3",
             agent: bool = True) -> SimUser:
        return SimUser(f"p{number:02d}", f"Person {number:02d}", licenses=[license_id],
                       queue_ids=[queue.id] if agent else [],
                       division="Paris" if number % 2 else "Lyon",
                       segments=logins(*spans, presence="ON_QUEUE" if agent else "AVAILABLE"))

    users = [user(n, (hm(8), hm(17))) for n in (1, 2, 3, 4)]
    users[0].licenses = ["cloudCX1", "cloudCX4", "communicate"]
    users[3] = user(4, (hm(8), hm(17)), agent=False)
    users += [
        user(5, (hm(10), hm(10, 20)), (hm(15), hm(15, 10)), (hm(16), hm(16, 4))),
        user(6, (hm(10), hm(10, 20))),
        user(7, (hm(14), hm(14, 20)), (hm(18), hm(18, 30))),
        user(8, (hm(14), hm(14, 20))),
        user(9, (hm(15), hm(15, 10)), (hm(16), hm(16, 4))),
        user(10, (hm(16), hm(16, 4))),
        user(11, (hm(16), hm(16, 4)), license_id="cloudCX2", agent=False),
        SimUser("named-1", "Named One", licenses=["communicate"],
                segments=logins((hm(0), hm(23, 59)))),
    ]
    return SimOrg(users=users, queues=[queue], now=NOW)


def sweep_of_model(
    org: SimOrg, start: datetime, end: datetime
) -> tuple[int, list[tuple[str, int, int]]]:
    """Independent of the product: every elementary interval between two presence changes,
    who of the pool is logged in there, the 30-minute level, and each user's time at it."""
    pool = [u for u in org.users
            if u.state == "active" and any(lic.lower().startswith("cloudcx") for lic in u.licenses)]
    spans = {u.id: [(max(s.start, start), min(s.end or end, end)) for s in u.segments
                    if s.presence != OFFLINE and s.start < end and (s.end is None or s.end > start)]
             for u in pool}
    cuts = sorted({start, end} | {t for user_spans in spans.values() for span in user_spans
                                  for t in span})
    pieces = []
    for low, high in itertools.pairwise(cuts):
        present = {uid for uid, user_spans in spans.items()
                   if any(a <= low and high <= b for a, b in user_spans)}
        pieces.append((int((high - low).total_seconds()), present))
    level = max((n for n in range(1, len(pool) + 1)
                 if sum(sec for sec, present in pieces if len(present) >= n) >= 1800), default=0)
    rows = []
    for uid in spans:
        at = sum(sec for sec, present in pieces if len(present) >= level and uid in present)
        total = sum(sec for sec, present in pieces if uid in present)
        if at and level:
            rows.append((uid, at, total))
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    return level, rows[:level]


def settings_for(sim: GenesysSimulator, **extra: str) -> dict[str, str]:
    return {
        "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
        "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
        "LICENSE_CAPACITY": "100", **extra,
    }


def run_cli(sim: GenesysSimulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "AzureWebJobs"))}
    env.update(settings_for(sim))
    return subprocess.run([sys.executable, "-m", "license_monitor", "peak-users", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def tied_sim() -> Iterator[GenesysSimulator]:
    with GenesysSimulator(tied_day_org(), rate_limit_per_minute=None) as sim:
        yield sim


def test_cli_attributes_the_day_like_an_independent_sweep_ties_included(
    tied_sim: GenesysSimulator,
) -> None:
    done = run_cli(tied_sim, "--day", DAY.isoformat(), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    level, expected = sweep_of_model(tied_sim.org, MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert (level, len(expected)) == (6, 6)
    assert result["level"] == result["held_level"] == level
    assert result["day"] == DAY.isoformat()
    assert result["present_at_level"] == 11  # more distinct users than P
    assert [(u["id"], u["seconds_at_peak"], u["seconds_logged_in"])
            for u in result["users"]] == expected
    assert [u["id"] for u in result["users"]] == ["p01", "p02", "p03", "p04", "p05", "p07"]
    first = result["users"][0]
    assert (first["name"], first["division"], first["license"], first["class"]) == (
        "Person 01", "Paris", "cloudCX4", "agent")
    assert result["users"][3]["class"] == "admin"
    assert (first["first_login"], first["last_logout"]) == (
        "2026-11-25T08:00:00Z", "2026-11-25T17:00:00Z")
    assert first["presence"] == {"ON_QUEUE": 9 * 3600}
    assert set(first["routing"]) <= {"IDLE", "INTERACTING"}
    assert sum(first["routing"].values()) == 9 * 3600
    assert "user details" not in done.stderr  # no progress bar when not on a terminal

    as_csv = run_cli(tied_sim, "--day", DAY.isoformat(), "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["id"], int(r["seconds_at_peak"])) for r in rows] == [
        (uid, at) for uid, at, _ in expected]
    text = run_cli(tied_sim, "--day", DAY.isoformat())
    assert "Level 6 on 2026-11-25" in text.stdout
    assert "11 users logged in at that level" in text.stdout


def test_a_chosen_level_and_bad_input(tied_sim: GenesysSimulator) -> None:
    done = run_cli(tied_sim, "--day", DAY.isoformat(), "--level", "8", "--json")
    result = json.loads(done.stdout)
    assert (result["level"], result["held_level"]) == (8, 6)
    assert {u["id"] for u in result["users"]} == {
        "p01", "p02", "p03", "p04", "p05", "p09", "p10", "p11"}
    assert all(u["seconds_at_peak"] == 240 for u in result["users"])

    wrong = run_cli(tied_sim, "--day", "2026-13-01", "--json")
    assert (wrong.returncode, wrong.stdout) == (3, "")
    # Refused before any setting is read, with the format (a usage error: exit 3, never 2).
    assert ("argument --day: '2026-13-01' is not a day: write it as YYYY-MM-DD, e.g. 2026-11-01"
            in wrong.stderr)
    future = run_cli(tied_sim, "--day", "2999-01-01")
    assert "2999-01-01 has not begun yet" in future.stderr
    zero = run_cli(tied_sim, "--day", DAY.isoformat(), "--level", "0")
    assert zero.returncode == 3  # a usage error is "unknown" (monitoring reads 2 as critical)
    assert "0 is not at least 1" in zero.stderr


def test_http_route_answers_the_same_json(tied_sim: GenesysSimulator) -> None:
    settings = Settings.from_env(settings_for(tied_sim))
    runtime.install(runtime.Services.from_settings(settings, require_state=False))
    try:
        route = registry_of(app).functions["peak_users_of_day"]

        def get(**params: str) -> func.HttpResponse:
            request = func.HttpRequest(method="GET", url="http://localhost/api/peak-users",
                                       params={"code": "key", **params}, body=b"")
            response = run_async(route(req=request))
            assert isinstance(response, func.HttpResponse)
            return response

        answer = get(day=DAY.isoformat())
        assert answer.status_code == 200
        body = json.loads(answer.get_body())
        cli = json.loads(run_cli(tied_sim, "--day", DAY.isoformat(), "--json").stdout)
        assert {k: v for k, v in body.items() if k != "requests"} == {
            k: v for k, v in cli.items() if k != "requests"}
        bad = get(day="yesterday")
        assert bad.status_code == 400
        assert json.loads(bad.get_body()) == {
            "error": "day 'yesterday' is not a date (YYYY-MM-DD)"}
        assert get(day=DAY.isoformat(), level="x").status_code == 400
    finally:
        runtime.install(None)
    trigger = registry_of(app).triggers["peak_users_of_day"].get_dict_repr()
    assert trigger["authLevel"] == func.AuthLevel.FUNCTION
    assert trigger["route"] == "peak-users"


def test_the_level_equals_the_ledgers_for_the_day_in_a_generated_org(
    azurite: Azurite, table_name: str,
) -> None:
    org = generate_org(400, seed=11, now=NOW, history_hours=40)
    with GenesysSimulator(org, rate_limit_per_minute=None) as sim:
        env = settings_for(sim, STATE_CONNECTION=azurite.connection_string,
                           STATE_TABLE=table_name)
        services = runtime.Services.from_settings(Settings.from_env(env))
        # The ledger measures the day's minutes the way checks do.
        rebuild_billing(services, DAY, NOW, until=DAY + timedelta(days=1))
        records = services.state.billing.records(date(2026, 11, 1)) if services.state else {}
        ledger = Histogram()
        for minute, record in records.items():
            if minute.date() == DAY:
                ledger = ledger.plus(Histogram.of_minute(record.profile))
        span = peak_users.day_span(DAY, NOW)
        result = peak_users.peak_users(services, span, now=NOW)
    level, expected = sweep_of_model(org, MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert result["level"] == ledger.billable_peak == level > 0
    assert result["present_at_level"] >= level
    assert [(u["id"], u["seconds_at_peak"], u["seconds_logged_in"])
            for u in result["users"]] == expected
    agents = {u.id for u in org.users if u.queue_ids}
    assert all(u["class"] == ("agent" if u["id"] in agents else "admin")
               for u in result["users"])
