"""The real-time gauge: presence events in, pool users logged in now out, seconds after a change.

The poll stays the source of truth. The gauge only sees a breach coming sooner and starts the
exact check; the exact figures decide every alert, and every exact check resets the gauge to
the exact set of logged-in pool users at its measurement time (`reconcile`), so a lost,
duplicated or invented event can make the gauge wrong until the next check, never page anyone.

Where the gauge lives (state/gauge.py): **Table Storage with conditional writes**, not Durable
Entities. Users are packed into bucket rows (online or not, newest event time, agent or admin)
in one of `SHARDS` partitions chosen by a hash of the user id; each partition holds a counter
row with its agents and admins online. Bucket rows and their partition's counter change in one
entity group transaction conditional on every ETag, so the counter is exactly the number of
online users under any concurrency, duplicates and reordering (the newest event time wins; of
two at the same millisecond, the one that arrives later). Why not entities: a 50,000-user state
is over the ~45 KB that moves an entity's state to a blob on every operation, so it needs
shards, and Python entities cannot signal each other to add the shards up; the local replay
host cannot drive entities either. Table Storage gives the same one-writer guarantee through
ETags, costs a bounded number of requests per event (a query and a transaction per 14 buckets
of a shard, plus `SHARDS` point reads when the count rose), reads the gauge with `SHARDS`
parallel point reads, and runs on Azurite in the tests.

**The order of events.** Each event is placed by the most precise time it carries: the
presence's `modifiedDate`, else the EventBridge envelope's `detail.timestamp` (milliseconds;
the presence notification the developer center documents has no `modifiedDate`), else the
envelope's `time` (whole seconds). A login and a logout in the same second are thus told
apart; two events at the very same millisecond in different states are ordered by arrival.

This module is pure: it parses event bodies and decides row changes; it reads no clock and
does no I/O (RosterMemo takes its clock).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from license_monitor.genesys.models import OFFLINE, normalise_presence, parse_timestamp
from license_monitor.roster import Roster

if TYPE_CHECKING:
    from license_monitor.state.alerts import AlertStore
    from license_monitor.state.gauge import GaugeReading, PresenceGauge
    from license_monitor.state.gauge_trigger import Claim


MAX_EVENTS = 1_000
MAX_BODY_BYTES = 1_048_576  # 1 MB

# The system presences of Genesys Cloud (analytics spelling, after normalise_presence).
SYSTEM_PRESENCES = frozenset({
    "AVAILABLE", "AWAY", "BUSY", "OFFLINE", "IDLE", "ON_QUEUE", "MEAL", "TRAINING",
    "MEETING", "BREAK",
})
# Genesys user ids are GUIDs; the simulator's are like "user-00001". Table Storage row keys
# refuse / \ # ? and control characters, and "~count" must stay our counter's own key.
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_USER_TOPIC = re.compile(r"^v2\.users\.(?P<user>[^.]+)\.(?P<kind>presence|activity)$")

Role = Literal["agent", "admin"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def covers_list(covers: Iterable[Role]) -> list[str]:
    """The JSON form of the classes the events cover: ["agents", "admins"] in that order."""
    held = set(covers)
    return [f"{role}s" for role in ("agent", "admin") if role in held]


class BadEvents(ValueError):  # noqa: N818 - reads as what the caller sent
    """A body the endpoint refuses as a whole: the message is one sentence for the sender."""


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """One user's system presence as of a time (epoch milliseconds)."""

    user_id: str
    at_ms: int
    presence: str  # normalised, e.g. "ON_QUEUE", "OFFLINE"

    @property
    def online(self) -> bool:
        """Logged in: any presence but OFFLINE consumes a concurrent license."""
        return self.presence != OFFLINE


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact, no float rounding)."""
    return (moment - EPOCH) // MILLISECOND


def from_epoch_ms(ms: int) -> datetime:
    """Inverse of epoch_ms."""
    return EPOCH + ms * MILLISECOND


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def parse_events(body: bytes) -> list[PresenceEvent]:
    """Every event of a body (one event or an array), or BadEvents naming the first problem.

    Accepted shapes: an Amazon EventBridge event of the Genesys Cloud integration (topic
    `v2.users.<id>.presence` or `v2.users.<id>.activity` in `detail.topicName`), and the
    `v2.users.{id}.activity` body a Process Automation workflow forwards (`id`, `presence`).
    Events of a non-primary presence source (`primary: false`) are left out: they do not
    change the user's login.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadEvents(
            f"The body is {len(body):,} bytes, over the limit of {MAX_BODY_BYTES:,} bytes (1 MB).")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadEvents("The body is not JSON.") from None
    if isinstance(document, dict):
        items: list[Any] = [document]
    elif isinstance(document, list):
        items = document
    else:
        raise BadEvents(
            f"The body is a JSON {_kind(document)}, not an event object or an array of events.")
    if len(items) > MAX_EVENTS:
        raise BadEvents(
            f"The body holds {len(items):,} events, more than the {MAX_EVENTS:,} allowed "
            "in one request.")
    events = []
    for index, item in enumerate(items, start=1):
        where = f"Event {index} of {len(items)}" if len(items) > 1 else "The event"
        event = _parse_one(item, where)
        if event is not None:
            events.append(event)
    return events


def _parse_one(item: Any, where: str) -> PresenceEvent | None:
    if not isinstance(item, dict):
        raise BadEvents(f"{where} is a JSON {_kind(item)}, not an object.")
    if "detail" in item or "detail-type" in item:
        return _eventbridge(item, where)
    if "presence" in item or "id" in item:
        return _activity(item, item.get("presence"), str(item.get("id") or ""), (), where)
    raise BadEvents(
        f"{where} is neither an EventBridge event (detail-type, detail) nor a user activity "
        "body (id, presence).")


def _eventbridge(item: Mapping[str, Any], where: str) -> PresenceEvent | None:
    detail = item.get("detail")
    if not isinstance(detail, dict):
        raise BadEvents(f"{where} has no detail object.")
    topic = detail.get("topicName")
    match = _USER_TOPIC.match(topic) if isinstance(topic, str) else None
    if match is None:
        raise BadEvents(
            f"{where} has the topic {str(topic)[:80]!r}, not v2.users.<id>.presence or "
            "v2.users.<id>.activity, so it names no user.")
    body = detail.get("eventBody")
    if not isinstance(body, dict):
        raise BadEvents(f"{where} has no detail.eventBody object.")
    # detail.timestamp has milliseconds; the envelope's time only whole seconds.
    fallbacks = (detail.get("timestamp"), item.get("time"))
    if match["kind"] == "activity":
        return _activity(body, body.get("presence"), match["user"], fallbacks, where)
    return _presence(body, match["user"], fallbacks, where)


def _activity(body: Mapping[str, Any], presence: Any, user_id: str,
              fallbacks: Sequence[Any], where: str) -> PresenceEvent | None:
    if not isinstance(presence, dict):
        raise BadEvents(f"{where} has no presence object.")
    return _presence(presence, user_id, fallbacks, where)


def _presence(presence: Mapping[str, Any], user_id: str, fallbacks: Sequence[Any],
              where: str) -> PresenceEvent | None:
    if not user_id:
        raise BadEvents(f"{where} has no user id.")
    if not _USER_ID.match(user_id):
        raise BadEvents(f"{where} has the user id {user_id[:80]!r}, which is not a user id.")
    definition = presence.get("presenceDefinition")
    system = definition.get("systemPresence") if isinstance(definition, dict) else None
    if not isinstance(system, str) or not system.strip():
        raise BadEvents(f"{where} has no presenceDefinition.systemPresence.")
    normalised = normalise_presence(system)
    if normalised not in SYSTEM_PRESENCES:
        raise BadEvents(f"{where} has the system presence {system[:40]!r}, which Genesys "
                        "Cloud does not define.")
    # The most precise time the event carries (module docstring: the order of events).
    stamp = next((value for value in (presence.get("modifiedDate"), *fallbacks) if value), None)
    if not isinstance(stamp, str):
        raise BadEvents(f"{where} has no modifiedDate (nor an EventBridge detail.timestamp or "
                        "time): its order among the user's events cannot be told.")
    try:
        at = parse_timestamp(stamp)
    except ValueError:
        raise BadEvents(f"{where} has the time {stamp[:40]!r}, which is not ISO-8601 with a "
                        "time zone.") from None
    if presence.get("primary") is False:
        return None
    return PresenceEvent(user_id, epoch_ms(at), normalised)


def newest_per_user(events: Iterable[PresenceEvent]) -> dict[str, PresenceEvent]:
    """Each user's newest event of a batch; of two with the same time, the later one."""
    newest: dict[str, PresenceEvent] = {}
    for event in events:
        held = newest.get(event.user_id)
        if held is None or event.at_ms >= held.at_ms:
            newest[event.user_id] = event
    return newest


# ------------------------------------------------------------------ row decisions


@dataclass(frozen=True, slots=True)
class Entry:
    """A user's gauge row: logged in or not, as of an event time, and the user's class."""

    online: bool
    at_ms: int
    role: Role


def role_of(user_id: str, roster: Roster) -> Role | None:
    """'agent' or 'admin' for a pool user, None for anyone else (named users, unknown)."""
    if user_id in roster.agents:
        return "agent"
    if user_id in roster.admins:
        return "admin"
    return None


KEEP: Literal["keep"] = "keep"  # a decision that writes nothing
Decision = Entry | None | Literal["keep"]  # the row to write, None to delete it, or KEEP


def on_event(current: Entry | None, as_of_ms: int, event: PresenceEvent, role: Role) -> Decision:
    """The row after an event: the newest event time wins; an older one changes nothing, and
    of two at the same millisecond the later to arrive wins (a duplicate changes nothing).

    `as_of_ms` is the partition's last reconciliation: an event from before it is stale, since
    the exact check already knew the user's state then. One from that very millisecond is not:
    the check counts a login only once it has begun before its time (usage.measure_concurrency).
    """
    if event.at_ms < as_of_ms:
        return KEEP
    if current is not None and (event.at_ms < current.at_ms or (
            event.at_ms == current.at_ms and event.online == current.online)):
        return KEEP
    # A newer event in the same state is still written: its time rejects older events later.
    return Entry(event.online, event.at_ms, role)


def on_reconcile(current: Entry | None, logged_in: bool, role: Role | None,
                 at_ms: int) -> Decision:
    """The row after an exact check at `at_ms` said whether the user is logged in.

    Rows from the check's time or later are kept (the check has not seen their change); older
    rows take the exact state. Offline users need no row once the as-of time covers them.
    """
    if role is None:
        return KEEP if current is None else None  # not (or no longer) in the pool
    if current is not None and current.at_ms >= at_ms:
        return KEEP if current.role == role else Entry(current.online, current.at_ms, role)
    if logged_in:
        if current is not None and current.online and current.role == role:
            return KEEP
        return Entry(True, at_ms, role)
    return KEEP if current is None else None


def counts(entry: Entry | None) -> tuple[int, int]:
    """(agents, admins) this row adds to its partition's counter."""
    if entry is None or not entry.online:
        return (0, 0)
    return (1, 0) if entry.role == "agent" else (0, 1)


def at_or_over_warning(total: int, capacity: int, warning_percent: float) -> bool:
    """The alert policy's warning line (integers times 100, as alerting.level_for)."""
    return total * 100 >= warning_percent * capacity


class RosterMemo:
    """The cached roster as this process last read it, reread after `ttl_seconds`.

    Each request would otherwise read the roster's rows again (two requests and a decompression
    per event, since EventBridge API destinations send one event per request).
    """

    def __init__(self, ttl_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[Any, tuple[float, Roster]] = {}

    def get(self, key: Any, load: Callable[[], Mapping[str, Any] | None]) -> Roster | None:
        """The roster for `key` (an org's store), loading it when absent or old; None if none."""
        now = self._clock()
        with self._lock:
            held = self._held.get(key)
        if held is not None and now - held[0] < self._ttl:
            return held[1]
        loaded = load()
        if loaded is None:
            return None  # no roster yet: not remembered, the next request looks again
        roster = Roster.from_dict(loaded)
        with self._lock:
            self._held[key] = (now, roster)
        return roster


# ------------------------------------------------------------------ one request


@dataclass(frozen=True)
class Ingested:
    """What one request of events did, and whether it won the right to start the check."""

    received: int
    applied: int
    stale: int
    ignored: int
    reading: GaugeReading | None
    claim: Claim | None

    def to_dict(self) -> dict[str, Any]:
        """The endpoint's answer (without whether the check started)."""
        body: dict[str, Any] = {"received": self.received, "applied": self.applied,
                                "stale": self.stale, "ignored": self.ignored}
        if self.reading is not None:
            body["gauge"] = {"value": self.reading.total, **self.reading.now.to_dict(),
                             "covers": covers_list(self.reading.covers)}
        return body


def ingest(
    gauge: PresenceGauge, alerts: AlertStore, roster: Roster | None,
    events: list[PresenceEvent], *, capacity: int, warning_percent: float, now: datetime,
    min_interval: timedelta,
) -> Ingested:
    """Apply a batch; claim the exact check when it rose to the warning line while level ok.

    Only a batch that raised the count can start a check (duplicates and stale events never
    do); a breach already announced (level warning or critical) needs none; and the claim
    allows one event-started check per `min_interval` across all workers.
    """
    applied = gauge.apply(events, roster)
    claim = None
    reading = applied.reading
    if (applied.rose and reading is not None
            and at_or_over_warning(reading.total, capacity, warning_percent)
            and alerts.load_state().level == "ok"):
        claim = gauge.claim_check(now, min_interval)
    return Ingested(len(events), applied.applied, applied.stale, applied.ignored, reading, claim)
