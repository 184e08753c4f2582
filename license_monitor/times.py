"""Check times and minute keys: formatting, parsing and UTC normalisation, in one place.

Every time the product stores or shows is aware UTC. Check times are written with
milliseconds ('2026-11-26T12:00:00.300Z'), event times with whole seconds
('2026-11-26T12:00:00Z'), minute keys of the billing rows as '2026-11-26T12:00Z'.
"""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE_KEY_FORMAT = "%Y-%m-%dT%H:%MZ"


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused (it is ambiguous)."""
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime is ambiguous here; pass an aware UTC time ({moment})")
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as '2026-11-26T12:00:00Z' (whole seconds, UTC)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_check_time(moment: datetime) -> str:
    """A check's time: '2026-11-26T12:00:00.300Z' (always milliseconds, fixed width, UTC).

    Two checks in the same second are told apart and sort in order as text (row keys).
    """
    moment = utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_precise(moment: datetime) -> str:
    """ISO-8601 UTC with a 'Z' suffix, keeping fractions of a second when there are any."""
    return utc(moment).replace(tzinfo=None).isoformat() + "Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with a zone ('...Z' or '+00:00') as aware UTC."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.astimezone(UTC)


def compact_time(moment: datetime) -> str:
    """'20261126T120000Z': a check time inside an identifier (alert ids)."""
    return utc(moment).strftime("%Y%m%dT%H%M%SZ")


def parse_compact_time(text: str) -> datetime:
    """Inverse of compact_time()."""
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def clock_time(moment: datetime, today: datetime | None = None) -> str:
    """'09:40 UTC': a time as people read it in an alert; '25 Nov 09:40 UTC' when `today` is
    given and falls on another (UTC) day."""
    moment = utc(moment)
    if today is not None and utc(today).date() != moment.date():
        return f"{moment.day} {moment:%b %H:%M} UTC"
    return moment.strftime("%H:%M UTC")


def minute_key(minute: datetime) -> str:
    """The row key of a billing minute: '2026-11-26T12:00Z'."""
    return utc(minute).strftime(MINUTE_KEY_FORMAT)


def parse_minute_key(key: str) -> datetime:
    """Inverse of minute_key()."""
    return datetime.strptime(key, MINUTE_KEY_FORMAT).replace(tzinfo=UTC)
