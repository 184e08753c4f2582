"""The monitor end to end: real checks against the simulator, Azurite and a webhook receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulator import Fault
from simulator.demo import set_online
from tests.fixtures.azurite import stored_samples
from tests.fixtures.monitor import WEBHOOK_SECRET, World


def events_received(world: World) -> list[str]:
    return [item.body["event"] for item in world.receiver.delivered]


def test_breach_notifies_once_across_three_checks(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(70)
    assert w.check()["level"] == "ok"
    w.at_level(92)
    first = w.check()
    assert first["level"] == "warning"
    assert first["events"] == ["breach"]
    assert first["notifications"] == [{"event": "breach", "channel": "webhook", "delivered": True}]
    for online in (93, 91, 92):
        w.at_level(online)
        later = w.check()
        assert later["level"] == "warning"
        assert later["events"] == []
        assert later["notifications"] == []
    assert events_received(w) == ["breach"]
    body = w.receiver.delivered[0].body
    assert body["concurrent"] == 92
    assert body["capacity"] == 100
    assert body["utilization_percent"] == 92.0
    assert body["agents"] + body["admins"] == 92
    assert body["message"] == "92 of 100 concurrent licenses in use (92.0%), warning threshold 90%"


def test_escalation_and_resolution_each_arrive_once(world: Callable[..., World]) -> None:
    w = world()
    levels = []
    for online in (92, 97, 98, 93, 88, 40, 40):
        w.at_level(online)
        levels.append(w.check()["level"])
    assert levels == ["warning", "critical", "critical", "critical", "warning", "ok", "ok"]
    assert events_received(w) == ["breach", "escalation", "resolved"]
    alert_ids = {item.body["alert_id"] for item in w.receiver.delivered}
    assert len(alert_ids) == 1  # one episode, one id receivers can de-duplicate on


def test_the_check_json_follows_the_cli_contract(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(50)
    report = w.check()
    assert report["window"] == {"start": "2026-11-26T08:05:00.000Z",
                                "end": "2026-11-26T08:20:00.000Z"}
    assert report["capacity"] == 100
    assert report["concurrent"]["now"]["total"] == 50
    assert report["concurrent"]["peak"]["total"] == 50
    for figure in ("now", "peak"):
        split = report["concurrent"][figure]
        assert split["agents"] + split["admins"] == split["total"]
    assert report["window_distinct"] == 50  # Communicate-only users online are not counted
    assert report["utilization_percent"] == 50.0
    assert report["billing"]["period_start"] == "2026-11-01"
    assert report["level"] == "ok"


def test_ten_simultaneous_checks_during_a_breach_notify_once(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(70)
    w.check()
    w.at_level(93)
    reports: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def one_check() -> None:
        try:
            barrier.wait()
            reports.append(w.check())
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=one_check) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(reports) == 10
    assert all(report["level"] == "warning" for report in reports)
    assert sum(report["events"] == ["breach"] for report in reports) == 1
    assert events_received(w) == ["breach"]


def test_a_webhook_down_during_the_breach_gets_it_once_after_recovery(
    world: Callable[..., World],
) -> None:
    w = world()
    w.receiver.set_down(True)
    w.at_level(94)
    first = w.check()
    assert first["events"] == ["breach"]
    assert first["notifications"][0]["delivered"] is False
    assert "127.0.0.1" in first["notifications"][0]["error"]
    assert "s3cr3t-path" not in first["notifications"][0]["error"]
    assert w.receiver.delivered == []
    w.receiver.set_down(False)
    w.at_level(94)
    second = w.check()
    assert second["events"] == []  # nothing new happened...
    assert second["notifications"] == [
        {"event": "breach", "channel": "webhook", "delivered": True}]  # ...but the debt is paid
    w.at_level(94)
    assert w.check()["notifications"] == []
    assert events_received(w) == ["breach"]


def test_the_webhook_is_signed_as_standard_webhooks(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(96)
    w.check()
    item = w.receiver.delivered[0]
    webhook_id = item.headers["webhook-id"]
    timestamp = item.headers["webhook-timestamp"]
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + item.raw, hashlib.sha256).digest())
    assert item.headers["webhook-signature"] == "v1," + expected.decode()
    # Signed at the real time of sending, which receivers check against their own clock, even
    # for a check run at another time (this world's checks run on 26 Nov 2026).
    assert abs(int(timestamp) - time.time()) < 300


def test_a_failed_check_is_unknown_and_leaves_the_breach_open(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(95)
    assert w.check()["level"] == "critical"
    w.simulator.inject(Fault(kind="status", path="/api/v2/analytics", status=503, times=None))
    w.at_level(10)  # usage fell, but the monitor cannot see it
    failed = w.check()
    assert failed["level"] == "unknown"
    assert "503" in failed["error"] or "unavailable" in failed["error"].lower()
    assert "concurrent" not in failed  # never a zero
    assert failed["events"] == []
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().level == "critical"
    assert events_received(w) == ["breach"]


def test_dry_run_measures_but_sends_and_writes_nothing(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(97)
    report = w.check(dry_run=True)
    assert report["level"] == "critical"
    assert report["events"] == ["breach"]  # what would happen
    assert report["notifications"] == []
    assert w.receiver.received == []
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().level == "ok"
    assert w.services.state.roster.load() is None


def test_each_check_stores_one_usage_sample(world: Callable[..., World]) -> None:
    w = world()
    first = w.at_level(60)
    w.check()
    second = w.at_level(80)
    w.check()
    w.check()  # the same check time again: overwrites, never duplicates
    assert w.services.state is not None
    samples = stored_samples(w.services.state, first, second)
    assert [s["concurrent"]["peak"]["total"] for s in samples] == [60, 80]
    assert [s["checked_at"] for s in samples] == [
        "2026-11-26T08:20:00.000Z", "2026-11-26T08:40:00.000Z"]


def test_a_window_across_the_period_start_bills_each_minute_to_its_period(
    world: Callable[..., World],
) -> None:
    # Periods start on the 26th (a past date: a check may not be stamped ahead of storage).
    w = world(BILLING_ANCHOR_DAY="26")
    w.now = datetime(2026, 11, 25, 23, 40, tzinfo=UTC)
    w.at_level(50, minutes_later=25)  # check at 00:05: window 23:50 - 00:05
    report = w.check()
    assert report["billing"]["period_start"] == "2026-11-26"
    assert w.services.state is not None
    october = w.services.state.billing.summary(date(2026, 10, 26))
    november = w.services.state.billing.summary(date(2026, 11, 26))
    assert (october.minutes_recorded, november.minutes_recorded) == (10, 5)


def test_two_checks_300_ms_apart_both_decide_in_order(world: Callable[..., World]) -> None:
    w = world()
    first_at = w.at_level(60)
    w.check()
    # 93 users logged in 100 ms after the first check; the next check follows 200 ms later.
    set_online(w.simulator.org, 93, first_at + timedelta(milliseconds=100))
    w.now = first_at + timedelta(milliseconds=300)
    w.simulator.org.now = w.now
    second = w.check()

    assert second["checked_at"] == "2026-11-26T08:20:00.300Z"
    assert second["events"] == ["breach"]
    assert [item.body["event"] for item in w.receiver.delivered] == ["breach"]
    assert w.services.state is not None
    samples = stored_samples(w.services.state, first_at, w.now)
    assert [(s["checked_at"], s["level"]) for s in samples] == [
        ("2026-11-26T08:20:00.000Z", "ok"), ("2026-11-26T08:20:00.300Z", "warning")]
