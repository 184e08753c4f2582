"""The simulator's presence events against the official SDK's models (field names) and the
public samples of real EventBridge envelopes (milliseconds in detail.timestamp)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PureCloudPlatformClientV2.models.presence_event_organization_presence import (
    PresenceEventOrganizationPresence,
)
from PureCloudPlatformClientV2.models.presence_event_user_presence import (
    PresenceEventUserPresence,
)
from PureCloudPlatformClientV2.models.user_activity import UserActivity
from PureCloudPlatformClientV2.models.user_activity_adherence_presence import (
    UserActivityAdherencePresence,
)
from PureCloudPlatformClientV2.models.user_activity_presence_definition import (
    UserActivityPresenceDefinition,
)
from PureCloudPlatformClientV2.models.user_activity_routing_status import (
    UserActivityRoutingStatus,
)

from license_monitor.gauge import epoch_ms, parse_events
from simulator.events import PresenceChange, activity_body, deliver, eventbridge_event

AT = datetime(2026, 11, 26, 8, 30, 5, 123_000, tzinfo=UTC)


def field_names(model: type) -> set[str]:
    """The JSON field names an SDK model declares (its attribute_map's values)."""
    return set(model().attribute_map.values())


def test_eventbridge_presence_body_uses_the_sdk_field_names() -> None:
    event = eventbridge_event(PresenceChange("user-00001", AT, "ON_QUEUE"))
    body = event["detail"]["eventBody"]
    assert set(body) <= field_names(PresenceEventUserPresence)
    assert set(body["presenceDefinition"]) <= field_names(PresenceEventOrganizationPresence)
    assert {"source", "presenceDefinition", "primary", "modifiedDate"} <= set(body)


def test_activity_body_uses_the_sdk_field_names() -> None:
    body = activity_body(PresenceChange("user-00001", AT, "ON_QUEUE"))
    assert set(body) <= field_names(UserActivity)
    assert set(body["presence"]) <= field_names(UserActivityAdherencePresence)
    assert set(body["presence"]["presenceDefinition"]) <= field_names(
        UserActivityPresenceDefinition)
    assert set(body["routingStatus"]) <= field_names(UserActivityRoutingStatus)


def test_envelope_carries_milliseconds_in_detail_timestamp_and_whole_seconds_in_time() -> None:
    event = eventbridge_event(PresenceChange("user-00001", AT, "OFFLINE"),
                              with_modified_date=False)
    # As in Genesys's blueprint sample: "time": "...:52Z", "timestamp": "...:52.435Z".
    assert event["time"] == "2026-11-26T08:30:05Z"
    assert event["detail"]["timestamp"] == "2026-11-26T08:30:05.123Z"
    assert set(event["detail"]) == {"topicName", "version", "eventBody", "metadata",
                                    "timestamp"}
    assert "modifiedDate" not in event["detail"]["eventBody"]
    [parsed] = parse_events(json.dumps(event).encode())
    assert parsed.at_ms == epoch_ms(AT)


def test_delivery_mixes_bodies_with_and_without_modified_date() -> None:
    changes = [PresenceChange(f"user-{i:05d}", AT + timedelta(seconds=i), "AVAILABLE")
               for i in range(200)]
    bodies = deliver(changes, seed=3).bodies
    dated = sum("modifiedDate" in body["detail"]["eventBody"] for body in bodies)
    assert 60 < dated < 140
    assert all("timestamp" in body["detail"] for body in bodies)


def _envelope(**detail: Any) -> dict[str, Any]:
    event = eventbridge_event(PresenceChange("user-00001", AT, "AVAILABLE"),
                              with_modified_date=False)
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize(("event", "expected"), [
    pytest.param(eventbridge_event(PresenceChange("user-00001", AT, "AVAILABLE")), AT,
                 id="modifiedDate first"),
    pytest.param(_envelope(), AT, id="then detail.timestamp"),
    pytest.param({k: v for k, v in _envelope().items() if k != "detail"} | {
        "detail": {k: v for k, v in _envelope()["detail"].items() if k != "timestamp"}},
        AT.replace(microsecond=0), id="then time"),
])
def test_an_event_is_placed_by_the_most_precise_time_it_carries(
        event: dict[str, Any], expected: datetime) -> None:
    if "modifiedDate" in event["detail"]["eventBody"]:
        # modifiedDate wins even when the envelope says otherwise.
        event["detail"]["timestamp"] = "2026-11-26T08:31:00.000Z"
    [parsed] = parse_events(json.dumps(event).encode())
    assert parsed.at_ms == epoch_ms(expected)
