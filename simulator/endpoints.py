"""The simulated Platform API endpoints: pure functions from (org, request) to a JSON payload."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlencode

from license_monitor.genesys.models import format_interval, format_timestamp, parse_timestamp
from simulator.model import (
    SYSTEM_PRESENCES,
    USERS_API_SPELLING,
    SimOrg,
    SimSegment,
    SimUser,
    organization_presence_id,
)

T = TypeVar("T")
Query = dict[str, list[str]]
Payload = dict[str, Any]

AGGREGATE_METRICS = ("tSystemPresence", "tOrganizationPresence", "tAgentRoutingStatus")
FILTER_OPERATORS = ("matches", "exists", "notExists")
MAX_USER_PREDICATES = 100
MAX_DETAILS_INTERVAL = timedelta(days=7)
MAX_DETAILS_PAGE_SIZE = 100
MAX_BUCKETS = 1000
MAX_USERS_PAGE_SIZE = 500
MAX_LIST_PAGE_SIZE = 500  # queues, groups, roles, license users, role users
MAX_MEMBERS_PAGE_SIZE = 100  # queue members, group members, a user's queues
DEFAULT_PAGE_SIZE = 25
_MILLISECOND = timedelta(milliseconds=1)
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class ApiError(Exception):
    """A request the platform would refuse: becomes an ErrorBody with this status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    """Return the platform's 400 for an invalid request."""
    return ApiError(400, "bad.request", message)


def not_found(message: str = "The requested resource was not found.") -> ApiError:
    """Return the platform's 404."""
    return ApiError(404, "not.found", message)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What an endpoint sees of one request."""

    path: str
    query: Query
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    details_duplicates: bool = False  # reproduce the details query's short pages


# None: the platform answers 204 No Content.
Handler = Callable[[SimOrg, ApiRequest], Payload | None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A method + path pattern, the permission it needs and its handler."""

    method: str
    pattern: re.Pattern[str]
    permission: str
    handler: Handler


def resolve(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """Return the endpoint serving `method path` and its path parameters, or None (404)."""
    for endpoint in ENDPOINTS:
        if endpoint.method != method:
            continue
        match = endpoint.pattern.fullmatch(path)
        if match is not None:
            return endpoint, match.groupdict()
    return None


# --------------------------------------------------------------------------- parameters


def _interval(raw: Any) -> tuple[datetime, datetime]:
    if not isinstance(raw, str) or raw.count("/") != 1:
        raise bad_request(
            f"interval must be an ISO-8601 interval 'start/end', got {raw!r}"
        )
    start_text, end_text = raw.split("/")
    try:
        start, end = parse_timestamp(start_text), parse_timestamp(end_text)
    except ValueError as err:
        raise bad_request(f"interval {raw!r} is not valid: {err}") from err
    if end <= start:
        raise bad_request(f"interval {raw!r} ends before it starts")
    return start, end


def _duration(raw: Any) -> timedelta:
    match = _DURATION.match(raw) if isinstance(raw, str) else None
    if match is None or raw in ("P", "PT"):
        raise bad_request(f"granularity must be an ISO-8601 duration such as PT15M, got {raw!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    period = timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )
    if period <= timedelta(0):
        raise bad_request(f"granularity {raw!r} must be longer than zero")
    return period


def _int_param(query: Query, name: str, default: int) -> int:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    try:
        return int(values[-1])
    except ValueError as err:
        raise bad_request(f"{name} must be an integer, got {values[-1]!r}") from err


def _paging(query: Query, maximum: int) -> tuple[int, int]:
    page_size = _int_param(query, "pageSize", DEFAULT_PAGE_SIZE)
    page_number = _int_param(query, "pageNumber", 1)
    if not 1 <= page_size <= maximum:
        raise bad_request(f"Value [{page_size}] is not valid for field [pageSize]: 1 to {maximum}")
    if page_number < 1:
        raise bad_request(f"Value [{page_number}] is not valid for field [pageNumber]: 1 or more")
    return page_size, page_number


def _uri(path: str, query: Query, page_size: int, page_number: int) -> str:
    pairs = [(k, v) for k, values in query.items() if k not in ("pageSize", "pageNumber")
             for v in values]
    pairs = [("pageSize", str(page_size)), ("pageNumber", str(page_number)), *pairs]
    return f"{path}?{urlencode(pairs, safe=',')}"


def listing(
    request: ApiRequest,
    items: Sequence[T],
    render: Callable[[T], Payload],
    maximum: int,
) -> Payload:
    """Return the platform's paged listing envelope for one page of `items`."""
    page_size, page_number = _paging(request.query, maximum)
    total = len(items)
    page_count = math.ceil(total / page_size)
    first = (page_number - 1) * page_size
    body: Payload = {
        "entities": [render(item) for item in items[first:first + page_size]],
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": _uri(request.path, request.query, page_size, 1),
        "selfUri": _uri(request.path, request.query, page_size, page_number),
        "lastUri": _uri(request.path, request.query, page_size, max(page_count, 1)),
    }
    if page_number < page_count:
        body["nextUri"] = _uri(request.path, request.query, page_size, page_number + 1)
    if page_number > 1:
        body["previousUri"] = _uri(request.path, request.query, page_size, page_number - 1)
    return body


# --------------------------------------------------------------------------- filters


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad_request(f"{what} must be a JSON object")
    return raw


def _list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise bad_request(f"{what} must be a JSON array")
    return raw


def _combine(kind: str, sets: list[frozenset[str] | None]) -> frozenset[str] | None:
    """Combine predicate results; None stands for "everything" (no restriction)."""
    if kind == "or":
        if not sets or any(s is None for s in sets):
            return None
        return frozenset().union(*[s for s in sets if s is not None])
    bounded = [s for s in sets if s is not None]
    if not bounded:
        return None
    return frozenset.intersection(*bounded)


def _compile_filter(
    raw: Any,
    what: str,
    predicate: Callable[[dict[str, Any], str], frozenset[str] | None],
    depth: int = 0,
) -> tuple[frozenset[str] | None, int]:
    """Compile {type, predicates, clauses} to the set of values it admits; also count predicates."""
    spec = _object(raw, what)
    kind = spec.get("type")
    if kind not in ("and", "or"):
        raise bad_request(f"{what}.type must be 'and' or 'or', got {kind!r}")
    parts: list[frozenset[str] | None] = []
    count = 0
    for index, item in enumerate(_list(spec.get("predicates", []), f"{what}.predicates")):
        where = f"{what}.predicates[{index}]"
        parts.append(predicate(_object(item, where), where))
        count += 1
    clauses = _list(spec.get("clauses", []), f"{what}.clauses")
    if clauses and depth >= 1:
        raise bad_request(f"{what}: filters allow at most two levels of nesting")
    for index, clause in enumerate(clauses):
        admitted, inner = _compile_filter(clause, f"{what}.clauses[{index}]", predicate, depth + 1)
        parts.append(admitted)
        count += inner
    return _combine(kind, parts), count


def _operator(pred: dict[str, Any], where: str) -> str:
    operator = pred.get("operator", "matches")
    if operator not in FILTER_OPERATORS:
        raise bad_request(
            f"{where}.operator {operator!r} is not valid; use one of {', '.join(FILTER_OPERATORS)}"
        )
    if pred.get("type", "dimension") != "dimension":
        raise bad_request(f"{where}.type must be 'dimension', got {pred.get('type')!r}")
    if operator == "matches" and not isinstance(pred.get("value"), str):
        raise bad_request(f"{where}: operator 'matches' needs a string value")
    if operator != "matches" and "value" in pred:
        raise bad_request(f"{where}: operator {operator!r} takes no value")
    return str(operator)


def _user_id_predicate(pred: dict[str, Any], where: str) -> frozenset[str] | None:
    dimension = pred.get("dimension")
    if dimension != "userId":
        raise bad_request(
            f"{where}.dimension {dimension!r} is not valid: the only dimension allowed in a "
            "user filter is userId (presence cannot be filtered here)"
        )
    operator = _operator(pred, where)
    if operator == "matches":
        return frozenset([pred["value"]])
    return None if operator == "exists" else frozenset()


_ORG_PRESENCE = {organization_presence_id(p): p for p in SYSTEM_PRESENCES}


def _presence_predicate(pred: dict[str, Any], where: str) -> frozenset[str] | None:
    dimension = pred.get("dimension")
    if dimension not in ("systemPresence", "organizationPresenceId"):
        raise bad_request(
            f"{where}.dimension {dimension!r} is not valid: use systemPresence or "
            "organizationPresenceId"
        )
    operator = _operator(pred, where)
    if operator != "matches":
        return None if operator == "exists" else frozenset()
    value = pred["value"]
    if dimension == "organizationPresenceId":
        return frozenset([_ORG_PRESENCE[value]]) if value in _ORG_PRESENCE else frozenset()
    if value not in SYSTEM_PRESENCES:
        raise bad_request(
            f"{where}.value {value!r} is not a system presence; use one of "
            f"{', '.join(SYSTEM_PRESENCES)}"
        )
    return frozenset([value])


def _user_filter(raw: Any, what: str) -> frozenset[str] | None:
    admitted, count = _compile_filter(raw, what, _user_id_predicate)
    if count > MAX_USER_PREDICATES:
        raise bad_request(
            f"{what} has {count} userId predicates; a single query may contain no more than "
            f"{MAX_USER_PREDICATES}"
        )
    return admitted


def _candidates(org: SimOrg, user_ids: frozenset[str] | None) -> Iterable[SimUser]:
    """Active users, restricted to `user_ids` when a filter named them."""
    if user_ids is None:
        return org.active_users()
    found = (org.find_user(user_id) for user_id in user_ids)
    return (user for user in found if user is not None and user.state == "active")


def _clipped(segment: SimSegment, start: datetime, end: datetime, now: datetime) -> timedelta:
    seg_end = now if segment.end is None else min(segment.end, now)
    return min(seg_end, end) - max(segment.start, start)


# --------------------------------------------------------------------------- analytics


def _routing_status(presence: str) -> str:
    # Routing status is not modelled: on queue counts as IDLE, everything else as OFF_QUEUE.
    return "IDLE" if presence == "ON_QUEUE" else "OFF_QUEUE"


def users_aggregates(org: SimOrg, request: ApiRequest) -> Payload:
    """POST /api/v2/analytics/users/aggregates/query: time per presence per user, in ms."""
    body = _object(request.body, "The request body")
    start, end = _interval(body.get("interval"))
    group_by = _list(body.get("groupBy", []), "groupBy")
    for value in group_by:
        if value != "userId":
            raise bad_request(f"groupBy {value!r} is not valid: the only allowed value is userId")
    metrics = _list(body.get("metrics"), "metrics") if "metrics" in body else []
    if not metrics:
        raise bad_request("metrics must name at least one of " + ", ".join(AGGREGATE_METRICS))
    for metric in metrics:
        if metric not in AGGREGATE_METRICS:
            raise bad_request(
                f"metric {metric!r} is not valid; use one of {', '.join(AGGREGATE_METRICS)}"
            )
    user_ids = _user_filter(body["filter"], "filter") if body.get("filter") is not None else None
    bucket = _duration(body["granularity"]) if body.get("granularity") else end - start
    if (end - start) / bucket > MAX_BUCKETS:
        raise bad_request(f"interval and granularity give more than {MAX_BUCKETS} buckets")

    capped_end = min(end, org.now)
    # Per group: per bucket index, milliseconds per presence.
    by_group: dict[str, dict[int, dict[str, int]]] = {}
    if start < capped_end:
        one_bucket = bucket >= end - start
        for user in _candidates(org, user_ids):
            key = user.id if group_by else ""
            for segment in org.segments_between(user, start, capped_end):
                s = max(segment.start, start)
                e = min(segment.end or org.now, capped_end)
                if one_bucket:  # no granularity: the whole interval is one bucket
                    if e > s:
                        buckets = by_group.get(key)
                        if buckets is None:
                            buckets = by_group[key] = {0: {}}
                        sums = buckets[0]
                        sums[segment.presence] = (
                            sums.get(segment.presence, 0) + (e - s) // _MILLISECOND)
                    continue
                index = (s - start) // bucket
                while s < e:
                    bucket_end = min(start + (index + 1) * bucket, end)
                    piece = min(e, bucket_end) - s
                    if piece > timedelta(0):
                        sums = by_group.setdefault(key, {}).setdefault(index, {})
                        sums[segment.presence] = (
                            sums.get(segment.presence, 0) + piece // _MILLISECOND)
                    s = bucket_end
                    index += 1

    payload: Payload = {
        "systemToOrganizationMappings": {p: [organization_presence_id(p)] for p in SYSTEM_PRESENCES}
    }
    results = []
    intervals: dict[int, str] = {}  # the same few buckets for every user: format each once
    for key in sorted(by_group):
        buckets = by_group[key]
        data = []
        for index in sorted(buckets) if len(buckets) > 1 else buckets:
            interval = intervals.get(index)
            if interval is None:
                bucket_start = start + index * bucket
                interval = intervals[index] = format_interval(
                    bucket_start, min(bucket_start + bucket, end))
            data.append({"interval": interval, "metrics": _metrics(metrics, buckets[index])})
        results.append({"group": {"userId": key} if group_by else {}, "data": data})
    if results:
        payload["results"] = results
    return payload


def _metrics(metrics: list[Any], per_presence: dict[str, int]) -> list[Payload]:
    out: list[Payload] = []
    for metric in metrics:
        if metric == "tAgentRoutingStatus":
            sums: dict[str, int] = {}
            for presence, ms in per_presence.items():
                status = _routing_status(presence)
                sums[status] = sums.get(status, 0) + ms
        elif metric == "tOrganizationPresence":
            sums = {organization_presence_id(p): ms for p, ms in per_presence.items()}
        else:
            sums = per_presence
        items = sums.items() if len(sums) == 1 else sorted(sums.items())
        out.extend(
            {"metric": metric, "qualifier": qualifier, "stats": {"sum": ms}}
            for qualifier, ms in items
            if ms > 0
        )
    return out


def users_details(org: SimOrg, request: ApiRequest) -> Payload:
    """POST /api/v2/analytics/users/details/query: presence records per user, paged by userId."""
    body = _object(request.body, "The request body")
    start, end = _interval(body.get("interval"))
    if end - start > MAX_DETAILS_INTERVAL:
        raise bad_request("interval must not be longer than 7 days")
    user_ids: frozenset[str] | None = None
    for index, raw in enumerate(_list(body.get("userFilters") or [], "userFilters")):
        user_ids = _combine("and", [user_ids, _user_filter(raw, f"userFilters[{index}]")])
    presences: frozenset[str] | None = None
    for index, raw in enumerate(_list(body.get("presenceFilters") or [], "presenceFilters")):
        admitted, _ = _compile_filter(raw, f"presenceFilters[{index}]", _presence_predicate)
        presences = _combine("and", [presences, admitted])
    if body.get("routingStatusFilters"):
        raise bad_request("routingStatusFilters are not supported by the simulator")
    paging = _object(body.get("paging") or {}, "paging")
    page_size = paging.get("pageSize", DEFAULT_PAGE_SIZE)
    page_number = paging.get("pageNumber", 1)
    if not _is_int(page_size) or not 1 <= page_size <= MAX_DETAILS_PAGE_SIZE:
        raise bad_request(
            f"paging.pageSize must be an integer from 1 to {MAX_DETAILS_PAGE_SIZE}, "
            f"got {page_size!r}"
        )
    if not _is_int(page_number) or page_number < 1:
        raise bad_request(f"paging.pageNumber must be an integer of 1 or more, got {page_number!r}")
    order = str(body.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise bad_request(f"order must be 'asc' or 'desc', got {body.get('order')!r}")

    query = {key: value for key, value in body.items() if key != "paging"}
    key = ("details", json.dumps(query, sort_keys=True, default=str), org.now,
           request.details_duplicates)
    matched = org.query_result(
        key,
        lambda: _details_rows(org, start=start, end=end, user_ids=user_ids, presences=presences,
                              order=order, duplicates=request.details_duplicates),
        reuse=page_number > 1,
    )

    payload: Payload = {"totalHits": len(matched)}
    first = (page_number - 1) * page_size
    page = matched[first:first + page_size]
    if request.details_duplicates:
        previous = matched[first - 1][0].id if 0 < first <= len(matched) else None
        page = _drop_repeats(page, previous)
    if page:
        payload["userDetails"] = [
            {
                "userId": user.id,
                "primaryPresence": [_presence_record(s, org.now) for s in segments],
                "routingStatus": [_routing_record(r, org.now)
                                  for r in org.routing_between(user, start, end)],
            }
            for user, segments in page
        ]
    return payload


def _details_rows(
    org: SimOrg,
    *,
    start: datetime,
    end: datetime,
    user_ids: frozenset[str] | None,
    presences: frozenset[str] | None,
    order: str,
    duplicates: bool,
) -> list[tuple[SimUser, list[SimSegment]]]:
    """Every active user with a segment in [start, end) of a wanted presence, ordered by id."""
    matched: list[tuple[SimUser, list[SimSegment]]] = []
    for user in _candidates(org, user_ids):
        segments = org.segments_between(user, start, end)
        if not segments:
            continue
        if presences is not None and not any(s.presence in presences for s in segments):
            continue
        matched.append((user, segments))
    matched.sort(key=lambda pair: pair[0].id, reverse=order == "desc")
    return _with_duplicates(matched, org.now) if duplicates else matched


def _with_duplicates(
    matched: list[tuple[SimUser, list[SimSegment]]], now: datetime
) -> list[tuple[SimUser, list[SimSegment]]]:
    """List users twice when a segment spans midnight, as the platform stores such records."""
    doubled: list[tuple[SimUser, list[SimSegment]]] = []
    for pair in matched:
        doubled.append(pair)
        if any(s.start.date() != (s.end or now).date() for s in pair[1]):
            doubled.append(pair)
    return doubled


def _drop_repeats(
    page: list[tuple[SimUser, list[SimSegment]]], previous: str | None
) -> list[tuple[SimUser, list[SimSegment]]]:
    """De-duplicate a page after slicing, so the page comes out shorter than pageSize."""
    kept: list[tuple[SimUser, list[SimSegment]]] = []
    for pair in page:
        if pair[0].id != previous:
            kept.append(pair)
        previous = pair[0].id
    return kept


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _presence_record(segment: SimSegment, now: datetime) -> Payload:
    record: Payload = {
        "startTime": _stamp(segment.start),
        "systemPresence": segment.presence,
        "organizationPresenceId": organization_presence_id(segment.presence),
    }
    # The platform cannot know when a record in progress will end: no endTime until it has.
    if segment.end is not None and segment.end <= now:
        record["endTime"] = _stamp(segment.end)
    return record


@lru_cache(maxsize=1 << 18)
def _stamp(moment: datetime) -> str:
    """format_timestamp() for the simulator's own (aware UTC) times, twice as fast and cached:
    a month of routing records is hundreds of thousands of them, and each check at 50,000
    users renders tens of thousands, most of them rendered for the check before."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _routing_record(record: SimSegment, now: datetime) -> Payload:
    payload: Payload = {"startTime": _stamp(record.start), "routingStatus": record.presence}
    if record.end is not None and record.end <= now:
        payload["endTime"] = _stamp(record.end)
    return payload


# --------------------------------------------------------------------------- directory


def _user_entity(user: SimUser) -> Payload:
    return {
        "id": user.id,
        "name": user.name,
        "state": user.state,
        "email": f"user.{user.id[:8]}@example.com",
        "division": {"id": division_id(user.division), "name": user.division,
                     "selfUri": f"/api/v2/authorization/divisions/{division_id(user.division)}"},
        "selfUri": f"/api/v2/users/{user.id}",
    }


def division_id(name: str) -> str:
    """A stable id for a division name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"division/{name}"))


def delete_tokens(org: SimOrg, request: ApiRequest) -> None:
    """DELETE /api/v2/tokens/{userId}: end every session of the user (logged out now)."""
    user = org.find_user(request.params["user_id"])
    if user is None:
        raise not_found(f"User {request.params['user_id']} not found")
    if org.current_presence(user) != "OFFLINE":
        org.set_presence(user.id, "OFFLINE", max(org.now, user.segments[-1].start))
    user.lid_closed_at = None
    user.signed_out.append(org.now)


def users(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/users: users by state, with presence/authorization/groups expands."""
    state = (request.query.get("state") or ["active"])[-1] or "active"
    if state not in ("active", "inactive", "deleted", "any"):
        raise bad_request(f"state {state!r} is not valid; use active, inactive, deleted or any")
    expand = {e.strip() for v in request.query.get("expand", []) for e in v.split(",")}
    selected = [u for u in org.users if state in ("any", u.state) and u.listed]
    role_names = {role.id: role.name for role in org.roles}

    def render(user: SimUser) -> Payload:
        entity = _user_entity(user)
        if "presence" in expand:
            current = org.segment_at(user, org.now)
            presence = "OFFLINE" if current is None else current.presence
            entity["presence"] = {
                "source": "PURECLOUD",
                "primary": True,
                "presenceDefinition": {
                    "id": organization_presence_id(presence),
                    "systemPresence": USERS_API_SPELLING[presence],
                },
                "modifiedDate": format_timestamp(current.start if current else org.now),
            }
        if "authorization" in expand:
            entity["authorization"] = {
                "roles": [{"id": r, "name": role_names.get(r, r)} for r in user.role_ids]
            }
        if "groups" in expand:
            entity["groups"] = [{"id": g, "selfUri": f"/api/v2/groups/{g}"} for g in user.group_ids]
        return entity

    return listing(request, selected, render, MAX_USERS_PAGE_SIZE)


def user_presence(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/users/{id}/presences/purecloud: one user's current Genesys Cloud presence."""
    user = org.find_user(request.params["user_id"])
    if user is None:
        raise not_found(f"User {request.params['user_id']} not found")
    current = org.segment_at(user, org.now)
    presence = "OFFLINE" if current is None else current.presence
    return {
        "id": "PURECLOUD",
        "source": "PURECLOUD",
        "primary": True,
        "presenceDefinition": {
            "id": organization_presence_id(presence),
            "systemPresence": USERS_API_SPELLING[presence],
        },
        "message": "",
        "modifiedDate": format_timestamp(current.start if current else org.now),
        "selfUri": f"/api/v2/users/{user.id}/presences/purecloud",
    }


def license_users(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/license/users: license ids per user, for users holding at least one."""
    holders = [u for u in org.users if u.licenses]
    return listing(
        request,
        holders,
        lambda u: {"id": u.id, "licenses": list(u.licenses),
                   "selfUri": f"/api/v2/license/users/{u.id}"},
        MAX_LIST_PAGE_SIZE,
    )


def _members(org: SimOrg, attribute: str, entity_id: str) -> list[SimUser]:
    return org.members(attribute).get(entity_id, [])


def _member_counts(org: SimOrg, attribute: str) -> Counter[str]:
    return Counter({entity_id: len(users) for entity_id, users in org.members(attribute).items()})


def routing_queues(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/routing/queues."""
    counts = _member_counts(org, "queue_ids")
    return listing(
        request,
        org.queues,
        lambda q: {"id": q.id, "name": q.name, "memberCount": counts[q.id],
                   "joinedMemberCount": counts[q.id], "selfUri": f"/api/v2/routing/queues/{q.id}"},
        MAX_LIST_PAGE_SIZE,
    )


def queue_members(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/routing/queues/{id}/members (every member is joined in the model)."""
    queue_id = request.params["queue_id"]
    if not any(q.id == queue_id for q in org.queues):
        raise not_found(f"Queue {queue_id} not found")
    members = _members(org, "queue_ids", queue_id)
    if (request.query.get("joined") or [""])[-1].lower() == "false":
        members = []
    return listing(
        request,
        members,
        lambda u: {"id": u.id, "name": u.name, "ringNumber": 1, "joined": True,
                   "memberBy": "user",
                   "user": {"id": u.id, "name": u.name, "selfUri": f"/api/v2/users/{u.id}"},
                   "selfUri": f"/api/v2/routing/queues/{queue_id}/members/{u.id}"},
        MAX_MEMBERS_PAGE_SIZE,
    )


def user_queues(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/users/{id}/queues (joined=true by default; every membership is joined)."""
    user = org.find_user(request.params["user_id"])
    if user is None:
        raise not_found(f"User {request.params['user_id']} not found")
    names = {q.id: q.name for q in org.queues}
    queues = [q for q in user.queue_ids if q in names]
    return listing(
        request,
        queues,
        lambda q: {"id": q, "name": names[q], "joined": True,
                   "selfUri": f"/api/v2/routing/queues/{q}"},
        MAX_MEMBERS_PAGE_SIZE,
    )


def groups(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/groups."""
    counts = _member_counts(org, "group_ids")
    return listing(
        request,
        org.groups,
        lambda g: {"id": g.id, "name": g.name, "memberCount": counts[g.id], "state": "active",
                   "type": "official", "visibility": "public", "selfUri": f"/api/v2/groups/{g.id}"},
        MAX_LIST_PAGE_SIZE,
    )


def group_members(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/groups/{id}/members: a users listing."""
    group_id = request.params["group_id"]
    if not any(g.id == group_id for g in org.groups):
        raise not_found(f"Group {group_id} not found")
    return listing(
        request, _members(org, "group_ids", group_id), _user_entity, MAX_MEMBERS_PAGE_SIZE
    )


def roles(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/authorization/roles."""
    counts = _member_counts(org, "role_ids")
    return listing(
        request,
        org.roles,
        lambda r: {"id": r.id, "name": r.name, "userCount": counts[r.id], "default": False,
                   "selfUri": f"/api/v2/authorization/roles/{r.id}"},
        MAX_LIST_PAGE_SIZE,
    )


def role_users(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/authorization/roles/{id}/users: a users listing."""
    role_id = request.params["role_id"]
    if not any(r.id == role_id for r in org.roles):
        raise not_found(f"Role {role_id} not found")
    return listing(request, _members(org, "role_ids", role_id), _user_entity, MAX_LIST_PAGE_SIZE)


def organization_me(org: SimOrg, request: ApiRequest) -> Payload:
    """GET /api/v2/organizations/me: the organization of the caller (the OAuth client's org)."""
    short_name = re.sub(r"[^a-z0-9]+", "", org.name.lower()) or "org"
    return {
        "id": org.id,
        "name": org.name,
        "defaultLanguage": "en",
        "defaultCountryCode": "US",
        "thirdPartyOrgName": short_name,
        "domain": short_name,
        "version": 1,
        "state": "active",
        "voicemailEnabled": True,
        "productPlatform": "PureCloud",
        "features": {"purecloud": True, "contactCenter": True},
        "selfUri": f"/api/v2/organizations/{org.id}",
    }


def _endpoint(method: str, pattern: str, permission: str, handler: Handler) -> Endpoint:
    return Endpoint(method, re.compile(pattern), permission, handler)


_ID = r"(?P<{}>[^/]+)"
# The permission each endpoint requires, as the platform's API documentation lists it (the
# "Requires ANY permissions" line of each operation in the official SDKs' docs). Listings the
# documentation marks "Requires no permissions" (users, license users, groups and their
# members, a role's users, one's own organization) need none here either: a client lacking
# every permission still reads them, as on the platform.
ENDPOINTS = (
    _endpoint("POST", r"/api/v2/analytics/users/aggregates/query",
              "analytics:userAggregate:view", users_aggregates),
    _endpoint("POST", r"/api/v2/analytics/users/details/query",
              "analytics:userDetail:view", users_details),
    _endpoint("GET", r"/api/v2/users", "", users),
    _endpoint("GET", r"/api/v2/users/" + _ID.format("user_id") + "/queues",
              "routing:queue:view", user_queues),
    _endpoint("GET", r"/api/v2/users/" + _ID.format("user_id") + "/presences/purecloud",
              "", user_presence),
    _endpoint("GET", r"/api/v2/organizations/me", "", organization_me),
    _endpoint("GET", r"/api/v2/license/users", "", license_users),
    _endpoint("DELETE", r"/api/v2/tokens/" + _ID.format("user_id"), "oauth:token:delete",
              delete_tokens),
    _endpoint("GET", r"/api/v2/routing/queues", "routing:queue:view", routing_queues),
    # The documentation accepts any of routing:queue:view, :edit, :readonly or
    # routing:queueMember:manage here; the monitor's role holds the first.
    _endpoint("GET", r"/api/v2/routing/queues/" + _ID.format("queue_id") + "/members",
              "routing:queue:view", queue_members),
    _endpoint("GET", r"/api/v2/groups", "", groups),
    _endpoint("GET", r"/api/v2/groups/" + _ID.format("group_id") + "/members",
              "", group_members),
    _endpoint("GET", r"/api/v2/authorization/roles", "authorization:role:view", roles),
    _endpoint("GET", r"/api/v2/authorization/roles/" + _ID.format("role_id") + "/users",
              "", role_users),
)
PERMISSIONS = frozenset(endpoint.permission for endpoint in ENDPOINTS if endpoint.permission)
