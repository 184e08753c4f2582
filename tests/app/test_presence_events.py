"""POST /api/presence-events: the real-time gauge, called as registered, with real parts.

The simulator's presence timelines produce the events; Azurite holds the gauge; the exact
checks run the license_check orchestration through the replay host (event-started ones through
the local Durable extension stand-in); the webhook receiver records what would page someone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from function_app import app
from license_monitor.gauge import MAX_BODY_BYTES, MAX_EVENTS, epoch_ms
from license_monitor.state.gauge import GaugeReading, PresenceGauge
from orchestrators.replay_host import registry_of
from orchestrators.starters import singleton_id
from simulator.events import (
    PresenceChange,
    activity_body,
    batches,
    deliver,
    eventbridge_event,
    presence_changes,
)
from simulator.model import SimOrg
from tests.fixtures.durable_extension import LocalDurableExtension, run_async
from tests.fixtures.monitor import World


def post(extension: LocalDurableExtension, payload: Any) -> tuple[int, dict[str, Any]]:
    """Call the registered function as the host would: a real HttpRequest, the client binding."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = func.HttpRequest(
        method="POST", url="http://localhost:7071/api/presence-events?code=k",
        params={"code": "k"}, headers={"Content-Type": "application/json"}, body=body)
    function = registry_of(app).functions["presence_events"]
    response = run_async(function(req=request, client=extension.binding()))
    assert isinstance(response, func.HttpResponse)
    return response.status_code, json.loads(response.get_body())


def gauge_of(w: World) -> PresenceGauge:
    assert w.services.state is not None
    return w.services.state.gauge


def reading(w: World) -> GaugeReading:
    found = gauge_of(w).read()
    assert found is not None
    return found


def logged_in_now(org: SimOrg) -> set[str]:
    """The pool users the simulator has logged in at its `now` (the exact answer)."""
    return {user.id for user in org.users if user.licenses == ["cloudCX3"]
            and org.current_presence(user) != "OFFLINE"}


def test_endpoint_is_registered_with_function_auth() -> None:
    trigger = registry_of(app).triggers["presence_events"].get_dict_repr()
    assert trigger["authLevel"] == func.AuthLevel.FUNCTION
    assert trigger["route"] == "presence-events"
    assert [str(getattr(m, "value", m)) for m in trigger["methods"]] == ["POST"]


def shift_change(org: SimOrg, at: datetime, leaving: range, arriving: range,
                 rng: random.Random) -> None:
    """One shift hands over to the next within 5 minutes; every third leaver takes a break
    first (two events for that user, so late delivery can reorder them)."""
    pool = [user for user in org.users if user.licenses == ["cloudCX3"]]
    for index in leaving:
        user = pool[index]
        logout = at + timedelta(seconds=rng.uniform(60, 300))
        if index % 3 == 0:
            org.set_presence(user.id, "BREAK", logout - timedelta(seconds=rng.uniform(5, 50)))
        org.set_presence(user.id, "OFFLINE", logout)
    for index in arriving:
        user = pool[index]
        wanted = "ON_QUEUE" if user.queue_ids else "AVAILABLE"
        org.set_presence(user.id, wanted, at + timedelta(seconds=rng.uniform(0, 300)))


def test_shift_change_replay_reconciles_to_the_exact_sweep(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(pool_users=3000, LICENSE_CAPACITY="5000")
    org = w.simulator.org
    extension = durable_extension(app, w.host())
    start = w.now
    w.at_level(1500)  # shift A (pool users 0..1499) logged in from 08:02; clock 08:20
    first = w.check()
    assert "gauge" not in first  # no event yet: the gauge is not in use
    morning = presence_changes(org, start, w.now)
    assert len(morning) == 1500
    for batch in batches(deliver(morning, shape="mixed").bodies, 100):
        assert post(extension, batch)[0] == 202
    assert reading(w).total == 1500

    w.now += timedelta(minutes=5)  # 08:25: the second check takes the gauge exactly
    org.now = w.now
    second = w.check()
    assert second["gauge"]["value"] == 1500
    assert second["gauge"]["drift"] == 0
    reconciled_at = w.now

    handover = w.now + timedelta(minutes=2)
    shift_change(org, handover, range(0, 1500), range(1500, 3000), random.Random(3))
    w.now = handover + timedelta(minutes=8)
    org.now = w.now
    changes = presence_changes(org, reconciled_at, w.now)
    logins = sum(1 for c in changes if c.presence != "OFFLINE" and c.user_id >= "user-01500")
    logouts = sum(1 for c in changes if c.presence == "OFFLINE")
    assert (logins, logouts) == (1500, 1500)
    delivery = deliver(changes, shape="mixed", duplicate_share=0.10, reorder_share=0.10,
                       drop_share=0.01, delay=timedelta(seconds=2), seed=11)
    assert (delivery.duplicated, delivery.reordered, len(delivery.dropped)) == (
        len(changes) // 10, len(changes) // 10, round(len(changes) / 100))
    for batch in batches(delivery.bodies, 100):
        status, answer = post(extension, batch)
        assert status == 202, answer
        assert answer["check_started"] is False  # far below the warning line

    # What the gauge must say: each user's newest delivered change, else the exact state.
    newest: dict[str, PresenceChange] = {}
    for change in delivery.changes:
        if change.user_id not in newest or change.at > newest[change.user_id].at:
            newest[change.user_id] = change
    exact_before = {f"user-{i:05d}" for i in range(1500)}
    expected = {u for u in exact_before if u not in newest} | {
        u for u, change in newest.items() if change.presence != "OFFLINE"}
    exact = logged_in_now(org)
    assert len(exact) == 1500
    assert reading(w).total == len(expected)
    dropped_effect = len(expected) - len(exact)
    assert dropped_effect != 0  # the dropped events left the gauge wrong

    third = w.check()
    assert third["gauge"]["drift"] == dropped_effect
    assert third["gauge"]["value"] == third["concurrent"]["now"]["total"] == len(exact)
    after = reading(w)
    assert after.now.to_dict() == third["concurrent"]["now"]
    assert after.as_of is not None
    assert epoch_ms(after.as_of) == epoch_ms(w.now)

    # The late and repeated copies arriving now are all older than the check: nothing moves.
    for batch in batches(delivery.bodies[-500:], 100):
        status, answer = post(extension, batch)
        assert (status, answer["applied"]) == (202, 0)
    assert reading(w) == after
    assert extension.start_requests == []


def test_breach_between_ticks_is_announced_seconds_after_the_crossing_event(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()  # 200 pool users, capacity 100, warning at 90
    org = w.simulator.org
    start = w.now
    w.at_level(60)
    assert "gauge" not in w.check()  # a first tick: the roster; no event yet
    for batch in batches(deliver(presence_changes(org, start, w.now)).bodies, 50):
        post_status = post(durable_extension(app, w.host()), batch)[0]
        assert post_status == 202
    w.now += timedelta(minutes=5)
    org.now = w.now
    tick = w.check()  # the timer's check: ok, and the gauge takes its figures
    assert (tick["level"], tick["gauge"]["value"], tick["gauge"]["drift"]) == ("ok", 60, 0)

    # Between two ticks, 35 more users log in, one a second, from 08:22.
    logins_from = w.now + timedelta(minutes=2)
    pool = [user for user in org.users if user.licenses == ["cloudCX3"]]
    for offset, user in enumerate(pool[60:95]):
        org.set_presence(user.id, "AVAILABLE", logins_from + timedelta(seconds=offset))
    crossing_at = logins_from + timedelta(seconds=29)  # the 90th user: 90 % of 100
    # The event-started check measures two seconds after the crossing event.
    w.now = crossing_at + timedelta(seconds=2)
    org.now = w.now
    extension = durable_extension(app, w.host())
    events = [eventbridge_event(change)
              for change in presence_changes(org, logins_from - timedelta(seconds=1),
                                             logins_from + timedelta(seconds=40))]
    assert len(events) == 35
    started = [post(extension, event)[1]["check_started"] for event in events]
    assert started.index(True) == 29
    assert started.count(True) == 1
    extension.wait_all()

    instance = extension.instances[singleton_id(w.settings.client_key)]
    assert instance.runtime_status == "Completed"
    assert instance.output["level"] == "warning"
    assert instance.output["events"] == ["breach"]
    # Every event arrived: nothing to correct; the three logins after its time are kept.
    assert instance.output["gauge"]["drift"] == 0
    assert reading(w).total == 95
    [breach] = [r.body for r in w.receiver.delivered]
    # 60 + the logins before its time (the one at that very second counts next time).
    assert breach["event"] == "breach"
    assert breach["concurrent"] == 91
    occurred = datetime.fromisoformat(breach["occurred_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= occurred - crossing_at <= timedelta(seconds=5)

    # Duplicates and stale events never page: nothing rises, nothing starts.
    for event in events:
        assert post(extension, event)[1]["check_started"] is False
    stale = PresenceChange(pool[150].id, start + timedelta(minutes=1), "AVAILABLE")
    status, answer = post(extension, activity_body(stale))
    assert (status, answer["applied"], answer["stale"]) == (202, 0, 1)
    assert extension.start_requests == [singleton_id(w.settings.client_key)]
    assert len(w.receiver.delivered) == 1


def _valid(user: str = "user-00001") -> dict[str, Any]:
    return activity_body(PresenceChange(user, datetime.fromisoformat(
        "2026-11-26T08:30:00+00:00"), "AVAILABLE"))


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return copy


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{'id': 'user-00001'", "not JSON"),
    "a JSON string": (b'"hello"', "not an event object"),
    "unknown shape": (json.dumps({"userId": "user-00001", "state": "on"}).encode(),
                      "neither an EventBridge event"),
    "no user id": (json.dumps(_without(_valid(), "id")).encode(), "no user id"),
    "no user in the topic": (json.dumps(dict(
        eventbridge_event(PresenceChange("user-00002", datetime.fromisoformat(
            "2026-11-26T08:30:00+00:00"), "OFFLINE")),
        detail={"topicName": "v2.users.presence", "eventBody": {}})).encode(), "names no user"),
    "no presence": (json.dumps(_without(_valid(), "presence")).encode(), "no presence"),
    "no system presence": (json.dumps(_without(
        _valid(), "presence", "presenceDefinition", "systemPresence")).encode(),
        "no presenceDefinition.systemPresence"),
    "too many events": (json.dumps([_valid()] * (MAX_EVENTS + 1)).encode(), "more than the"),
    "over 1 MB": (json.dumps([_valid()]).encode() + b" " * MAX_BODY_BYTES, "over the limit"),
    "a bad event after good ones": (
        json.dumps([_valid("user-00003"), _valid("user-00004"),
                    _without(_valid("user-00005"), "presence")]).encode(),
        "Event 3 of 3 has no presence"),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_a_bad_body_is_refused_whole_with_one_sentence(
    kind: str, world: Callable[..., World],
    durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(pool_users=20)
    w.check()  # the roster, so that valid events would count
    extension = durable_extension(app, w.host())
    assert post(extension, _valid("user-00002"))[1]["applied"] == 1
    before = reading(w)
    body, wording = BAD_BODIES[kind]
    status, answer = post(extension, body)
    assert status == 400
    error = answer["error"]
    assert wording in error
    assert error.endswith(".")
    assert "\n" not in error
    assert ". " not in error.rstrip(".")
    assert reading(w) == before
    assert extension.start_requests == []
    assert post(extension, _valid("user-00003"))[1]["applied"] == 1  # the next one counts


def test_events_of_users_outside_the_pool_are_ignored(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(pool_users=20)
    w.check()
    extension = durable_extension(app, w.host())
    at = datetime.fromisoformat("2026-11-26T08:30:00+00:00")
    named = eventbridge_event(PresenceChange("named-00001", at, "AVAILABLE"))
    stranger = eventbridge_event(PresenceChange("someone-new", at, "ON_QUEUE"))
    status, answer = post(extension, [named, stranger, _valid("user-00001")])
    assert (status, answer["ignored"], answer["applied"]) == (202, 2, 1)
    assert reading(w).total == 1
    # An event from a non-primary presence source says nothing about the login.
    secondary = eventbridge_event(PresenceChange("user-00004", at, "BUSY"))
    secondary["detail"]["eventBody"]["primary"] = False
    assert post(extension, secondary)[1] == {
        "received": 0, "applied": 0, "stale": 0, "ignored": 0, "check_started": False}


def real_presence_envelope(user_id: str, system_presence: str, timestamp: str,
                           *, with_timestamp: bool = True) -> dict[str, Any]:
    """An EventBridge event as Genesys Cloud sends it, written out by hand from public samples:
    the envelope of Genesys's aws-eventbridge-user-presence-update-blueprint
    (events/UserPresenceChange.json: `time` in whole seconds, `detail.timestamp` with
    milliseconds) around the presence body of the developer center's "User Presence with
    Notifications" guide, which has no modifiedDate."""
    event: dict[str, Any] = {
        "version": "0",
        "id": "4cbedb0f-4dfd-4c8e-9e57-0acded092527",
        "detail-type": "v2.users.{id}.presence",
        "source": "aws.partner/genesys.com/cloud/bb14bed0-f8f9-445d-b9d1-10cecb8569d6/monitor",
        "account": "123456789012",
        "time": timestamp[:19] + "Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": f"v2.users.{user_id}.presence",
            "version": "2",
            "eventBody": {
                "source": "PURECLOUD",
                "presenceDefinition": {"id": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
                                       "systemPresence": system_presence},
                "primary": True,
                "message": "",
            },
            "metadata": {"CorrelationId": "290034f4-c3d7-46fd-8342-ee5bc859b7e9"},
            "timestamp": timestamp,
        },
    }
    if not with_timestamp:
        del event["detail"]["timestamp"]
    return event


LOGIN = ("ON_QUEUE", "2026-11-26T08:30:05.100Z")
LOGOUT = ("OFFLINE", "2026-11-26T08:30:05.900Z")


@pytest.mark.parametrize("per_request", [1, 2], ids=["one per request", "one batch"])
def test_a_logout_in_the_same_second_as_the_login_is_not_lost(
    per_request: int, world: Callable[..., World],
    durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(pool_users=20)
    w.check()  # the roster
    extension = durable_extension(app, w.host())

    def send(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = []
        for start in range(0, len(events), per_request):
            chunk = events[start:start + per_request]
            status, answer = post(extension, chunk[0] if per_request == 1 else chunk)
            assert status == 202, answer
            answers.append(answer)
        return answers

    # In order: the logout (.900) follows the login (.100) of the same second.
    answers = send([real_presence_envelope("user-00001", *LOGIN),
                    real_presence_envelope("user-00001", *LOGOUT)])
    assert reading(w).total == 0
    assert sum(answer["stale"] for answer in answers) == (0 if per_request == 1 else 1)
    # Out of order: the login arrives after the logout; it is older, so it changes nothing.
    answers = send([real_presence_envelope("user-00002", *LOGOUT),
                    real_presence_envelope("user-00002", *LOGIN)])
    assert reading(w).total == 0
    assert sum(answer["stale"] for answer in answers) == 1
    # Envelopes without detail.timestamp (whole seconds only): the later to arrive wins.
    send([real_presence_envelope("user-00003", *LOGIN, with_timestamp=False),
          real_presence_envelope("user-00003", *LOGOUT, with_timestamp=False)])
    assert reading(w).total == 0
    # And a login after a logout in the same second counts.
    send([real_presence_envelope("user-00004", "OFFLINE", "2026-11-26T08:30:06.100Z"),
          real_presence_envelope("user-00004", "AVAILABLE", "2026-11-26T08:30:06.900Z")])
    assert reading(w).total == 1
    assert extension.start_requests == []


def test_the_gauge_says_which_classes_its_events_cover(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(pool_users=20)  # users 0, 7 and 14 are admins (in no queue), the others agents
    org = w.simulator.org
    start = w.now
    w.check()
    extension = durable_extension(app, w.host())
    org.set_presence("user-00001", "ON_QUEUE", start + timedelta(minutes=1))
    org.set_presence("user-00002", "ON_QUEUE", start + timedelta(minutes=1))
    for event in presence_changes(org, start, start + timedelta(minutes=2)):
        status, answer = post(extension, eventbridge_event(event))
        assert status == 202
    assert answer["gauge"]["covers"] == ["agents"]
    w.now = start + timedelta(minutes=5)
    org.now = w.now
    tick = w.check()
    # No admin has sent an event: between checks, admins' logins are not seen.
    assert tick["gauge"]["covers"] == ["agents"]
    assert tick["gauge"]["value"] == 2

    org.set_presence("user-00007", "AVAILABLE", w.now + timedelta(minutes=1))
    for event in presence_changes(org, w.now, w.now + timedelta(minutes=2)):
        assert post(extension, eventbridge_event(event))[0] == 202
    w.now += timedelta(minutes=5)
    org.now = w.now
    later = w.check()
    assert later["gauge"]["covers"] == ["agents", "admins"]
    assert (later["gauge"]["agents"], later["gauge"]["admins"]) == (2, 1)
