"""Every check ends by its deadline: through the real orchestration, against slow services.

Each check is the license_check orchestration run by the replay host against the Genesys
simulator, Azurite behind a proxy that can swallow every request, and a webhook receiver that
can answer slowly. The deadline is injected at the services level (3 s) so the tests stay
fast; wall time is measured around each check.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from license_monitor.deadline import RECORD_GRACE_SECONDS
from license_monitor.notify import DeliveryError
from license_monitor.notify.http import post_json
from license_monitor.state import StateStore
from license_monitor.state.alerts import DEFAULT_LEASE
from orchestrators.replay_host import ReplayHost
from orchestrators.starters import singleton_id
from simulator import Fault
from simulator.azurite import connection_string
from tests.fixtures.monitor import World
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.storage_proxy import StorageProxy

DEADLINE = 3.0
MARGIN = 2.0  # scheduling, Azurite, the replay host: what a check may add to its deadline


def deadline_world(world: Callable[..., World], **settings: str) -> World:
    w = world(**settings)
    w.services.check_timeout_seconds = DEADLINE
    return w


def timed_check(w: World, host: ReplayHost | None = None) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    report = w.check(host=host)
    return report, time.monotonic() - started


def webhook_events(w: World) -> list[str]:
    return [item.body["event"] for item in w.receiver.delivered]


def test_genesys_slower_than_the_deadline_fails_the_check_at_its_deadline(
    world: Callable[..., World],
) -> None:
    w = deadline_world(world, FAILURE_ALERT_AFTER="2")
    w.at_level(60)
    assert w.check()["level"] == "ok"
    w.simulator.inject(Fault("slow", delay_seconds=8, times=None))  # every API call

    slow = []
    for _ in range(2):
        w.at_level(60)
        slow.append(timed_check(w))

    for report, elapsed in slow:
        assert report["level"] == "unknown"
        assert report["error"] == (
            "the check passed its 3 s deadline while measuring usage (Genesys Cloud)")
        assert elapsed < DEADLINE + MARGIN
    # Counted as failed checks: the second one raises monitor_failing, naming Genesys Cloud,
    # and delivers it although the measurement used up the deadline.
    assert slow[1][0]["events"] == ["monitor_failing"]
    assert slow[1][0]["notifications"] == [
        {"event": "monitor_failing", "channel": "webhook", "delivered": True}]
    assert webhook_events(w) == ["monitor_failing"]
    assert w.receiver.delivered[0].body["cause"] == "platform_unavailable"


def test_storage_that_swallows_requests_fails_the_check_naming_the_step(
    world: Callable[..., World], storage_proxy: StorageProxy,
) -> None:
    w = deadline_world(world, FAILURE_ALERT_AFTER="1")
    # The SDK's own retries (3) stay on: the deadline must end them too.
    w.services.state = StateStore.from_connection_string(
        connection_string(storage_proxy.port), w.settings.state_table, w.settings.client_key,
        by_client=True)
    w.at_level(60)
    assert w.check()["level"] == "ok"

    def swallow_from_evaluate(name: str, _: Any) -> None:
        if name == "evaluate":
            storage_proxy.swallowing = True

    w.at_level(60)
    report, elapsed = timed_check(w, w.host(activity_hook=swallow_from_evaluate))
    storage_proxy.swallowing = False
    w.at_level(60)
    back = w.check()

    assert report["level"] == "unknown"
    # Its first read (billing minutes or the alert state) is the step that was slow.
    assert re.fullmatch(
        r"the check passed its 3 s deadline while reading the [a-z ]+ \(Table Storage\)",
        report["error"]), report["error"]
    # Past the deadline only recording the outcome may go on, for the grace at most.
    assert elapsed < DEADLINE + RECORD_GRACE_SECONDS + MARGIN
    # The check that could not be recorded is counted once storage answers again.
    assert back["events"] == ["monitor_failing", "monitor_recovered"]
    assert w.receiver.delivered[0].body["cause"] == "storage_unavailable"


def test_a_slow_receiver_gets_at_most_two_copies_in_a_check_and_the_alert_later(
    world: Callable[..., World],
) -> None:
    w = deadline_world(world)
    # Answers come after 2 s; the channel waits 1 s (the real read timeout is 10 s: too slow
    # for a test, the rule is the same).
    w.services.http = ShortReadTimeout(1.0)
    w.receiver.answer_after = 2.0

    w.at_level(92)
    report, elapsed = timed_check(w)
    copies_in_the_check = len(w.receiver.received)
    w.receiver.answer_after = 0.0
    w.at_level(92)
    later = w.check()

    assert report["events"] == ["breach"]
    [delivery] = report["notifications"]
    assert delivery["delivered"] is False
    assert "did not answer in time (ReadTimeout), sent 2 times without an answer" in (
        delivery["error"])
    assert copies_in_the_check == 2
    assert elapsed < DEADLINE + MARGIN
    # Still owed: the next check delivers it, once.
    assert later["notifications"] == [
        {"event": "breach", "channel": "webhook", "delivered": True}]
    assert [item.body["event"] for item in w.receiver.received] == ["breach"] * 3


def test_a_claim_left_by_a_crashed_check_is_sent_once_after_its_lease(
    world: Callable[..., World],
) -> None:
    w = deadline_world(world)

    def crash(name: str, _: Any) -> None:
        if name == "notify":
            raise RuntimeError("the worker died mid-delivery")

    w.at_level(92)
    crashed = w.host(activity_hook=crash).run(
        "license_check", {"dry_run": False, "trigger": "test"},
        instance_id=singleton_id(w.settings.client_key))
    claimed_at = w.now
    assert crashed.runtime_status == "Failed"
    [entry] = w.services.state.alerts.outbox()  # type: ignore[union-attr]
    assert entry["status"] == "claimed"

    reports = []
    for seconds in (30, 60, 90, 120):  # lease: 70 s from the claim
        w.now = claimed_at + timedelta(seconds=seconds)
        w.simulator.org.now = w.now
        reports.append(w.check())

    assert timedelta(seconds=70) == DEFAULT_LEASE
    assert [len(report["notifications"]) for report in reports] == [0, 0, 1, 0]
    assert webhook_events(w) == ["breach"]


def test_a_receiver_that_refuses_connections_is_tried_three_times(
    webhook_receiver: Callable[..., HttpReceiver],
) -> None:
    receiver = webhook_receiver()
    receiver.set_down(True, refuse_connections=True)
    waits: list[float] = []

    with requests.Session() as session, pytest.raises(DeliveryError) as caught:
        post_json(receiver.url, {"event": "breach"}, session=session, what="the webhook",
                  notification_id="n1", sleep=waits.append)

    # Never sent: retried like a 5xx, not held to the two sends of an unanswered POST.
    assert "could not be reached (ConnectionError), after 3 attempts" in str(caught.value)
    assert waits == [1.0, 2.0]


class ShortReadTimeout(requests.Session):
    """A channel session that waits at most `read` seconds for an answer."""

    def __init__(self, read: float) -> None:
        super().__init__()
        self.read = read

    def request(self, method: str | bytes, url: str | bytes,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        connect, read = kwargs.get("timeout") or (5.0, 10.0)
        kwargs["timeout"] = (connect, min(read, self.read))
        return super().request(method, url, *args, **kwargs)


def test_a_roster_slower_than_the_deadline_never_delays_a_check(
    world: Callable[..., World],
) -> None:
    # At 50,000 users the roster's classes cost minutes of the request budget: a check reads
    # only who is in the pool and leaves the classes to the background, where they are kept.
    w = deadline_world(world)
    w.at_level(60)
    w.simulator.inject(Fault("slow", path="/api/v2/users", delay_seconds=DEADLINE + 1))
    first = w.check()

    assert first["level"] == "ok"
    assert first["concurrent"]["peak"] == {"total": 60, "agents": None, "admins": None}
    assert first["split"] == "pending"  # not guessed
    assert w.services.roster_refresh.wait(60)
    users_listed = w.simulator.count("/api/v2/users", "GET")
    assert users_listed >= 1

    w.at_level(60)
    second = w.check()
    assert second["level"] == "ok"
    assert "split" not in second
    peak = second["concurrent"]["peak"]
    assert (peak["total"], peak["agents"] + peak["admins"]) == (60, 60)
    assert w.simulator.count("/api/v2/users", "GET") == users_listed  # the roster was kept
