"""Presence events from the simulated org's timelines, as Genesys Cloud would deliver them.

Two shapes: the Amazon EventBridge event of the Genesys Cloud integration (topic
`v2.users.<id>.presence`, body PresenceEventUserPresence), and the `v2.users.{id}.activity`
body (UserActivity) a Process Automation workflow forwards through a data action. Field names
follow the official SDK's models (tests/integration/test_presence_payloads.py checks them).
As real EventBridge events do, every envelope carries `detail.timestamp` (milliseconds) beside
`time` (whole seconds), and some presence bodies carry no `modifiedDate` (the developer
center's presence notification shows none). Delivery is at least once
and in no particular order (Genesys: "event order is not guaranteed"): on request some events
are delivered twice, some late (after newer ones), some never.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import requests

from license_monitor.genesys.models import format_timestamp
from simulator.model import USERS_API_SPELLING, SimOrg, organization_presence_id

Shape = Literal["eventbridge", "activity", "mixed"]
SIM_ORG_ID = "5f0a4c2e-0d7b-4a51-9c1e-2b7d8e6f9a10"


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A user's system presence from `at` (analytics spelling, e.g. ON_QUEUE)."""

    user_id: str
    at: datetime
    presence: str


def presence_changes(org: SimOrg, start: datetime, end: datetime) -> list[PresenceChange]:
    """Every presence change of the org's users in (start, end], oldest first."""
    changes = [
        PresenceChange(user.id, segment.start, segment.presence)
        for user in org.users
        for segment in user.segments
        if start < segment.start <= end
    ]
    changes.sort(key=lambda change: (change.at, change.user_id))
    return changes


def eventbridge_event(change: PresenceChange, *, org_id: str = SIM_ORG_ID,
                      suffix: str = "license-monitor", event_id: str | None = None,
                      with_modified_date: bool = True) -> dict[str, Any]:
    """The EventBridge event of one change: `time` in whole seconds, as EventBridge writes it,
    `detail.timestamp` with milliseconds (as in Genesys's EventBridge blueprint samples)."""
    body: dict[str, Any] = {
        "source": "PURECLOUD",
        "presenceDefinition": {"id": organization_presence_id(change.presence),
                               "systemPresence": change.presence},
        "primary": True,
        "message": "",
    }
    if with_modified_date:
        body["modifiedDate"] = format_timestamp(change.at)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "v2.users.{id}.presence",
        "source": f"aws.partner/genesys.com/cloud/{org_id}/{suffix}",
        "account": "123456789012",
        "time": change.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": f"v2.users.{change.user_id}.presence",
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": str(uuid.uuid4())},
            "timestamp": format_timestamp(change.at),
        },
    }


def activity_body(change: PresenceChange) -> dict[str, Any]:
    """The `v2.users.{id}.activity` body a workflow's data action forwards."""
    return {
        "id": change.user_id,
        "routingStatus": {"status": "IDLE" if change.presence == "ON_QUEUE" else "OFF_QUEUE",
                          "startTime": format_timestamp(change.at)},
        "presence": {
            "presenceDefinition": {"id": organization_presence_id(change.presence),
                                   "systemPresence": USERS_API_SPELLING[change.presence]},
            "presenceMessage": "",
            "modifiedDate": format_timestamp(change.at),
        },
        "outOfOffice": {"active": False},
        "activeQueueIds": [],
    }


@dataclass
class Delivery:
    """What reaches the endpoint, in delivery order, and what never does."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    changes: list[PresenceChange] = field(default_factory=list)  # the change of each body
    dropped: list[PresenceChange] = field(default_factory=list)
    duplicated: int = 0
    reordered: int = 0


def deliver(
    changes: Sequence[PresenceChange], *, shape: Shape = "eventbridge",
    duplicate_share: float = 0.0, reorder_share: float = 0.0, drop_share: float = 0.0,
    delay: timedelta = timedelta(0), seed: int = 0, modified_date_share: float = 0.5,
) -> Delivery:
    """The bodies of `changes` as delivered: some twice, some late, some never (seeded).

    Of the EventBridge events, a seeded `modified_date_share` carry `modifiedDate`; the others
    are ordered by their envelope's `detail.timestamp` alone, as real ones without it are.

    Every body arrives `delay` after its change; a reordered one arrives 1 to 180 s later still
    (after newer changes of other users and often of its own user), a duplicate up to 60 s
    after the original. Shares are of all changes, taken exactly (rounded).
    """
    rng = random.Random(seed)
    indexes = list(range(len(changes)))
    dropped = set(rng.sample(indexes, round(len(changes) * drop_share)))
    kept = [i for i in indexes if i not in dropped]
    late = set(rng.sample(kept, min(len(kept), round(len(changes) * reorder_share))))
    twice = rng.sample(kept, min(len(kept), round(len(changes) * duplicate_share)))
    timeline: list[tuple[datetime, int, int]] = []  # (arrival, order, change index)
    for i in kept:
        extra = timedelta(seconds=rng.uniform(1, 180)) if i in late else timedelta(0)
        timeline.append((changes[i].at + delay + extra, len(timeline), i))
    for i in twice:
        first = next(arrival for arrival, _, j in timeline if j == i)
        timeline.append((first + timedelta(seconds=rng.uniform(0, 60)), len(timeline), i))
    timeline.sort()
    delivery = Delivery(dropped=[changes[i] for i in sorted(dropped)], duplicated=len(twice),
                        reordered=len(late))
    ids = {i: str(uuid.UUID(int=rng.getrandbits(128))) for i in kept}
    dated = {i for i in kept if rng.random() < modified_date_share}
    for position, (_, _, i) in enumerate(timeline):
        use = shape if shape != "mixed" else ("eventbridge" if position % 2 else "activity")
        body = (eventbridge_event(changes[i], event_id=ids[i], with_modified_date=i in dated)
                if use == "eventbridge" else activity_body(changes[i]))
        delivery.bodies.append(body)
        delivery.changes.append(changes[i])
    return delivery


def batches(bodies: Sequence[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    """The bodies in requests of at most `size` events, in order."""
    for start in range(0, len(bodies), size):
        yield list(bodies[start:start + size])


def post_events(url: str, bodies: Sequence[dict[str, Any]], *, batch_size: int = 1,
                function_key: str | None = None, session: requests.Session | None = None,
                timeout: float = 30) -> list[int]:
    """POST the bodies to the endpoint (one event per request, or arrays); the status codes."""
    http = session or requests.Session()
    headers = {"x-functions-key": function_key} if function_key else {}
    statuses = []
    for batch in batches(bodies, batch_size):
        payload: Any = batch[0] if batch_size == 1 else batch
        response = http.post(url, json=payload, headers=headers, timeout=timeout)
        statuses.append(response.status_code)
    return statuses
