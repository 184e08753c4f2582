"""Typed records parsed from Genesys Cloud API payloads, shared by the client and the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

OFFLINE = "OFFLINE"

# The platform spells presence three ways: ON_QUEUE (analytics), OnQueue (presence
# definitions) and "On Queue" (users API). Everything is compared in the analytics spelling.
_PRESENCE_ALIASES = {"ONQUEUE": "ON_QUEUE"}


def normalise_presence(value: str) -> str:
    """Return a presence in the analytics spelling: 'On Queue', 'OnQueue' -> 'ON_QUEUE'."""
    upper = value.strip().upper().replace(" ", "_")
    return _PRESENCE_ALIASES.get(upper, upper)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 timestamp from the platform ('2026-11-26T12:00:00.000Z') as aware UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime the way the platform does: '2026-11-26T12:00:00.000Z'."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_interval(start: datetime, end: datetime) -> str:
    """Format an analytics interval 'start/end'."""
    return f"{format_timestamp(start)}/{format_timestamp(end)}"


@dataclass(frozen=True, slots=True)
class PresenceSegment:
    """One primaryPresence record of a user (user details query); end is None while current."""

    user_id: str
    start: datetime
    end: datetime | None
    presence: str  # normalised, e.g. "AVAILABLE", "ON_QUEUE", "OFFLINE"


@dataclass(frozen=True, slots=True)
class RoutingSegment:
    """One routingStatus record of a user (user details query); end is None while current.

    Statuses: OFF_QUEUE, IDLE (on queue, waiting), INTERACTING, COMMUNICATING, NOT_RESPONDING.
    """

    user_id: str
    start: datetime
    end: datetime | None
    status: str  # upper case, e.g. "OFF_QUEUE", "INTERACTING"


@dataclass(frozen=True, slots=True)
class User:
    """One entity of GET /api/v2/users; None for an expand the platform did not return."""

    id: str
    name: str
    state: str
    role_names: tuple[str, ...] | None = None
    group_ids: tuple[str, ...] | None = None
    presence: str | None = None
    division: str = ""  # the division's name ("" when the platform gave none)


@dataclass(frozen=True, slots=True)
class UserLicenses:
    """One entity of GET /api/v2/license/users: a user and the license ids they hold."""

    user_id: str
    licenses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NamedEntity:
    """A queue, group or role: id and display name (and a queue's memberCount, when given)."""

    id: str
    name: str
    member_count: int | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    """GET /api/v2/organizations/me: the org the OAuth client belongs to (id is what state is
    keyed by; the name is only shown)."""

    id: str
    name: str
