"""The one place that builds Genesys request bodies and turns platform JSON into models.py types.

Parsers raise PayloadError (a ValueError) on a wrongly shaped payload; the client turns it into
UnexpectedResponse with the correlation id of the response it came from.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from license_monitor.genesys.models import (
    NamedEntity,
    Organization,
    PresenceSegment,
    RoutingSegment,
    User,
    UserLicenses,
    format_interval,
    normalise_presence,
    parse_timestamp,
)
from license_monitor.usage import logged_in_during

# Every system presence except OFFLINE, in the analytics spelling: "logged in" means any of these.
# The details query has no "not equals" operator, so "not OFFLINE" is an OR of these matches.
NON_OFFLINE_PRESENCES: tuple[str, ...] = (
    "AVAILABLE",
    "AWAY",
    "BUSY",
    "IDLE",
    "ON_QUEUE",
    "MEAL",
    "TRAINING",
    "MEETING",
    "BREAK",
)

# The aggregates query accepts at most 100 userId predicates.
MAX_USER_PREDICATES = 100


class PayloadError(ValueError):
    """A platform payload did not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a paged GET: its entities and the page count the platform reported."""

    entities: list[dict[str, Any]]
    page_count: int | None


@dataclass(frozen=True, slots=True)
class DetailsPage:
    """One page of the user details query: rows on it, their presence records, totalHits."""

    rows: int
    segments: list[PresenceSegment]
    total_hits: int | None
    routing: list[RoutingSegment] = field(default_factory=list)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{what} is not a JSON array")
    return value


def _text(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{what} has no {key!r} string")
    return value


def _optional_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"{what} is not a finite number")
    return int(value)


def _timestamp(obj: dict[str, Any], key: str, what: str) -> datetime:
    try:
        return parse_timestamp(_text(obj, key, what))
    except (ValueError, OverflowError) as err:  # e.g. year 1 with an offset cannot be UTC
        raise PayloadError(f"{what} has an invalid {key!r}: {err}") from err


# --- request bodies -------------------------------------------------------------------------


def aggregates_queries(
    start: datetime, end: datetime, user_ids: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Users aggregates bodies: one unfiltered, or one per 100 user ids.

    Never a presence predicate: the only filterable dimension here is userId and the platform
    rejects anything else.
    """
    base: dict[str, Any] = {
        "interval": format_interval(start, end),
        "groupBy": ["userId"],
        "metrics": ["tSystemPresence"],
    }
    if user_ids is None:
        return [base]
    unique = list(dict.fromkeys(user_ids))
    bodies = []
    for offset in range(0, len(unique), MAX_USER_PREDICATES):
        batch = unique[offset : offset + MAX_USER_PREDICATES]
        predicates = [
            {"type": "dimension", "dimension": "userId", "operator": "matches", "value": user_id}
            for user_id in batch
        ]
        bodies.append({**base, "filter": {"type": "or", "predicates": predicates}})
    return bodies


def details_query(
    start: datetime,
    end: datetime,
    presences: Collection[str],
    page_size: int,
    page_number: int,
) -> dict[str, Any]:
    """A user details query body for one page, filtered to users in any of `presences`."""
    predicates = [
        {
            "type": "dimension",
            "dimension": "systemPresence",
            "operator": "matches",
            "value": presence,
        }
        for presence in presences
    ]
    return {
        "interval": format_interval(start, end),
        "order": "asc",
        "presenceFilters": [{"type": "or", "predicates": predicates}],
        "paging": {"pageSize": page_size, "pageNumber": page_number},
    }


# --- responses ------------------------------------------------------------------------------


def parse_aggregate_result(result: Any) -> tuple[str, dict[str, int]]:
    """One aggregates result -> (userId, {normalised presence: milliseconds over its buckets})."""
    result_obj = _object(result, "aggregates result")
    user_id = _text(_object(result_obj.get("group"), "aggregates group"), "userId", "group")
    per_presence: dict[str, int] = {}
    for bucket in _list(result_obj.get("data", []), "aggregates data"):
        bucket_obj = _object(bucket, "aggregates bucket")
        for metric in _list(bucket_obj.get("metrics", []), "aggregates metrics"):
            metric_obj = _object(metric, "aggregates metric")
            if metric_obj.get("metric") != "tSystemPresence":
                continue
            presence = normalise_presence(_text(metric_obj, "qualifier", "metric"))
            stats = _object(metric_obj.get("stats", {}), "metric stats")
            milliseconds = _optional_int(stats.get("sum"), "stats.sum") or 0
            per_presence[presence] = per_presence.get(presence, 0) + milliseconds
    return user_id, per_presence


@dataclass(frozen=True, slots=True)
class LoggedInRow:
    """An aggregates result reduced while decoding: the user and whether they were logged in."""

    user_id: str
    logged_in: bool


def reduce_aggregate_result(obj: dict[str, Any]) -> Any:
    """json object_hook: turn each well-formed aggregates result into a LoggedInRow at once.

    An org-wide aggregates answer lists every active user, OFFLINE ones too: at 50,000 users
    that is tens of MB of JSON and several times that as dicts. Reduced while decoding, only a
    small row per user stays alive. Anything not shaped like a result is returned unchanged,
    so parse_logged_in_users() still reports a wrongly shaped payload.
    """
    group = obj.get("group")
    if not isinstance(group, dict) or "data" not in obj:
        return obj
    try:
        user_id, per_presence = parse_aggregate_result(obj)
    except PayloadError:
        return obj
    return LoggedInRow(user_id, logged_in_during(per_presence))


def parse_logged_in_users(body: Any) -> frozenset[str]:
    """Users aggregates response (decoded with reduce_aggregate_result) -> logged-in user ids."""
    response = _object(body, "aggregates response")
    users: set[str] = set()
    for result in _list(response.get("results", []), "aggregates results"):
        if isinstance(result, LoggedInRow):
            user_id, logged_in = result.user_id, result.logged_in
        else:
            user_id, per_presence = parse_aggregate_result(result)
            logged_in = logged_in_during(per_presence)
        if logged_in:
            users.add(user_id)
    return frozenset(users)


def parse_details_page(body: Any) -> DetailsPage:
    """User details response -> every primaryPresence and routingStatus record on the page."""
    response = _object(body, "details response")
    rows = _list(response.get("userDetails") or [], "userDetails")
    segments: list[PresenceSegment] = []
    routing: list[RoutingSegment] = []
    for row in rows:
        row_obj = _object(row, "userDetails row")
        user_id = _text(row_obj, "userId", "userDetails row")
        for record in _list(row_obj.get("primaryPresence") or [], "primaryPresence"):
            record_obj = _object(record, "primaryPresence record")
            # The record a user is still in has no endTime.
            end = (
                _timestamp(record_obj, "endTime", "primaryPresence record")
                if record_obj.get("endTime") is not None
                else None
            )
            segments.append(
                PresenceSegment(
                    user_id=user_id,
                    start=_timestamp(record_obj, "startTime", "primaryPresence record"),
                    end=end,
                    presence=normalise_presence(
                        _text(record_obj, "systemPresence", "primaryPresence record")
                    ),
                )
            )
        for record in _list(row_obj.get("routingStatus") or [], "routingStatus"):
            record_obj = _object(record, "routingStatus record")
            end = (
                _timestamp(record_obj, "endTime", "routingStatus record")
                if record_obj.get("endTime") is not None
                else None
            )
            routing.append(
                RoutingSegment(
                    user_id=user_id,
                    start=_timestamp(record_obj, "startTime", "routingStatus record"),
                    end=end,
                    status=_text(record_obj, "routingStatus", "routingStatus record").upper(),
                )
            )
    return DetailsPage(
        rows=len(rows),
        segments=segments,
        total_hits=_optional_int(response.get("totalHits"), "totalHits"),
        routing=routing,
    )


def parse_listing(body: Any) -> Listing:
    """A paged GET envelope -> its entities and pageCount."""
    response = _object(body, "listing")
    entities = [
        _object(entity, "listing entity")
        for entity in _list(response.get("entities") or [], "entities")
    ]
    return Listing(
        entities=entities, page_count=_optional_int(response.get("pageCount"), "pageCount")
    )


def parse_entity_id(entity: dict[str, Any]) -> str:
    """The id of a listing entity (a user id in member listings)."""
    return _text(entity, "id", "entity")


def parse_named_entity(entity: dict[str, Any]) -> NamedEntity:
    """A queue, group or role entity -> NamedEntity."""
    name = entity.get("name")
    return NamedEntity(id=parse_entity_id(entity), name=name if isinstance(name, str) else "")


def parse_queue(entity: dict[str, Any]) -> NamedEntity:
    """A routing queue entity -> NamedEntity with its memberCount (None when not reported)."""
    queue = parse_named_entity(entity)
    count = entity.get("memberCount")
    # Only a real count may skip a queue's member listing; anything else means "unknown".
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return NamedEntity(id=queue.id, name=queue.name, member_count=count)
    return queue


def parse_user(entity: dict[str, Any], expand: Collection[str]) -> User:
    """A /api/v2/users entity -> User; an expand not asked for or not returned stays None."""
    name = entity.get("name")
    state = entity.get("state")
    presence: str | None = None
    role_names: tuple[str, ...] | None = None
    group_ids: tuple[str, ...] | None = None
    if "presence" in expand and isinstance(entity.get("presence"), dict):
        definition = entity["presence"].get("presenceDefinition")
        if isinstance(definition, dict) and isinstance(definition.get("systemPresence"), str):
            presence = normalise_presence(definition["systemPresence"])
    if "authorization" in expand and isinstance(entity.get("authorization"), dict):
        roles = entity["authorization"].get("roles")
        if roles is not None:
            role_names = tuple(
                _text(_object(role, "role"), "name", "role") for role in _list(roles, "roles")
            )
    if "groups" in expand and entity.get("groups") is not None:
        group_ids = tuple(
            parse_entity_id(_object(group, "group")) for group in _list(entity["groups"], "groups")
        )
    division = entity.get("division")
    division_name = division.get("name") if isinstance(division, dict) else None
    return User(
        id=parse_entity_id(entity),
        name=name if isinstance(name, str) else "",
        state=state if isinstance(state, str) else "unknown",
        role_names=role_names,
        group_ids=group_ids,
        presence=presence,
        division=division_name if isinstance(division_name, str) else "",
    )


def parse_user_licenses(entity: dict[str, Any]) -> UserLicenses:
    """A /api/v2/license/users entity -> UserLicenses."""
    licenses = _list(entity.get("licenses") or [], "licenses")
    if not all(isinstance(license_id, str) for license_id in licenses):
        raise PayloadError("licenses holds a value that is not a string")
    return UserLicenses(user_id=parse_entity_id(entity), licenses=tuple(licenses))


def parse_organization(body: Any) -> Organization:
    """GET /api/v2/organizations/me -> Organization (id required, name shown when present)."""
    organization = _object(body, "organization")
    name = organization.get("name")
    return Organization(id=_text(organization, "id", "organization"),
                        name=name if isinstance(name, str) else "")
