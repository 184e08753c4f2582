"""The presence gauge's rows: users packed into bucket rows in `SHARDS` partitions, each with an
exact counter.

Why Table Storage and not Durable Entities: see license_monitor/gauge.py. Layout (org key K):

| PartitionKey  | RowKey        | what                                                        |
|---------------|---------------|-------------------------------------------------------------|
| K|gauge|<s>   | bucket|<nnn>  | users: zlib JSON {user id: [online, at (event ms), agent]} |
| K|gauge|<s>   | ~count        | agents, admins online in the shard; as_of (last check);     |
|               |               | seen_agents, seen_admins (an event of that class arrived)   |
| K             | gauge-trigger | last_started: when an event last started the exact check    |

A user lives in one of `BUCKETS` bucket rows of its shard (both chosen by a hash of its id).
Bucket rows and their shard's counter change in one transaction conditional on every ETag, so
the counter always equals the shard's online users. A conflict (another worker wrote meanwhile)
rereads and decides again; the decisions are idempotent, so nothing counts twice.

Why buckets and not one row per user: a reconciliation writes every logged-in user the gauge
does not hold yet, and a batch operation costs about a millisecond of the client's CPU
(azure-core builds and parses each one as a multipart part) plus the service's time: at 10,000
logged in, one row per user took 6 to 10 s of the check. With buckets it writes at most
`BUCKETS` rows per shard, in one transaction. The row formats are in state/gauge_rows.py, the
trigger row in state/gauge_trigger.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from license_monitor.deadline import ContextThreadPoolExecutor
from license_monitor.gauge import (
    KEEP,
    Entry,
    PresenceEvent,
    Role,
    counts,
    covers_list,
    epoch_ms,
    from_epoch_ms,
    newest_per_user,
    on_event,
    on_reconcile,
    role_of,
)
from license_monitor.roster import Roster, Split
from license_monitor.state.gauge_rows import (
    BUCKET_PREFIX,
    BUCKETS_PER_QUERY,
    COUNTER_ROW,
    GAUGE,
    ROWS_PER_BATCH,
    SHARDS,
    Bucket,
    ShardCounter,
    bucket_key,
    bucket_of,
    decode_users,
    encode_users,
    int64,
    shard_of,
)
from license_monitor.state.gauge_trigger import GaugeTrigger
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable, is_conflict
from license_monitor.times import format_precise

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class GaugeReading:
    """The gauge now: pool users logged in by class, and the last exact check it took."""

    now: Split
    as_of: datetime | None  # the newest reconciliation of any shard, None before the first
    # The classes whose users have sent an event so far: the gauge follows only their changes
    # between checks (an org whose admins are in no queue may send no admin events at all).
    covers: frozenset[Role] = frozenset()

    @property
    def total(self) -> int:
        """Pool users logged in, per the gauge."""
        return self.now.total


@dataclass(frozen=True)
class Applied:
    """What one batch of events did."""

    applied: int  # users whose entry was written (newer events of pool users)
    stale: int  # duplicates and events older than what the gauge knows
    ignored: int  # users outside the pool (or no roster yet)
    rose: bool  # the count of logged-in pool users went up
    reading: GaugeReading | None  # read after the batch when it rose


@dataclass(frozen=True)
class Reconciled:
    """One exact check applied to the gauge: its value after, and the drift it corrected."""

    now: Split
    as_of: datetime
    drift: int  # gauge minus exact for the state at `as_of`: what the events missed
    covers: frozenset[Role] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The check JSON's `gauge` object."""
        return {"value": self.now.total, "agents": self.now.agents, "admins": self.now.admins,
                "as_of": format_precise(self.as_of), "drift": self.drift,
                "covers": covers_list(self.covers)}


# One bucket's change: bucket number, its entries after, its ETag (None: a new row).
_BucketWrite = tuple[int, dict[str, Entry], str | None]


class PresenceGauge(GaugeTrigger):
    """The org's presence gauge over the shared table (the check trigger: gauge_trigger.py)."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def _partition(self, shard: int) -> str:
        return self._table.partition(GAUGE, str(shard))

    # ------------------------------------------------------------------ reading

    def _counter(self, shard: int) -> ShardCounter:
        table = self._table
        with table.translate("reading the presence gauge"):
            try:
                return ShardCounter.from_entity(
                    table.client.get_entity(self._partition(shard), COUNTER_ROW))
            except ResourceNotFoundError:
                return ShardCounter()

    def _counters(self, shards: Iterable[int] = range(SHARDS)) -> dict[int, ShardCounter]:
        wanted = list(shards)
        with ContextThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            return dict(zip(wanted, pool.map(self._counter, wanted), strict=True))

    def read(self) -> GaugeReading | None:
        """The gauge (SHARDS point reads in parallel); None when it has never been used."""
        return _reading(self._counters())

    def _rows(self, shard: int, buckets: Sequence[int] | None
              ) -> tuple[dict[int, Bucket], ShardCounter]:
        """Some bucket rows of a shard (all when None) and its counter."""
        table = self._table
        parameters: dict[str, Any] = {"pk": self._partition(shard), "counter": COUNTER_ROW}
        query = "PartitionKey eq @pk"
        if buckets is None:
            parameters.update(low=BUCKET_PREFIX, high="bucket}")  # '}' sorts right after '|'
            query += " and ( ( RowKey ge @low and RowKey lt @high ) or RowKey eq @counter )"
        else:
            names = [f"b{i}" for i in range(len(buckets))]
            parameters.update(zip(names, map(bucket_key, buckets), strict=True))
            keys = " or ".join(f"RowKey eq @{name}" for name in [*names, "counter"])
            query += f" and ( {keys} )"
        rows: dict[int, Bucket] = {}
        counter = ShardCounter()
        with table.translate("reading the presence gauge"):
            for entity in table.client.query_entities(query, parameters=parameters):
                key = str(entity["RowKey"])
                if key == COUNTER_ROW:
                    counter = ShardCounter.from_entity(entity)
                elif key.startswith(BUCKET_PREFIX):
                    rows[int(key[len(BUCKET_PREFIX):])] = Bucket(
                        decode_users(bytes(entity.get("users") or b"")),
                        str(entity.metadata["etag"]))
        return rows, counter

    # ------------------------------------------------------------------ writing

    def _commit(self, shard: int, writes: Sequence[_BucketWrite], counter: ShardCounter,
                written: ShardCounter) -> ShardCounter | None:
        """Write bucket rows and the counter (`written`) in one transaction, each conditional
        on the ETag read (`counter` is the row as read). The counter as written, or None on
        a conflict."""
        partition = self._partition(shard)
        operations: list[Any] = []
        for bucket, users, etag in writes:
            entity = {"PartitionKey": partition, "RowKey": bucket_key(bucket),
                      "users": encode_users(users)}
            if etag is None:
                operations.append(("create", entity))
            else:
                operations.append(("update", entity, {
                    "mode": UpdateMode.REPLACE, "etag": etag,
                    "match_condition": MatchConditions.IfNotModified}))
        row = {"PartitionKey": partition, "RowKey": COUNTER_ROW, "agents": written.agents,
               "admins": written.admins, "as_of": int64(written.as_of_ms),
               "seen_agents": "agent" in written.seen, "seen_admins": "admin" in written.seen}
        if counter.etag is None:
            operations.append(("create", row))
        else:
            operations.append(("update", row, {
                "mode": UpdateMode.REPLACE, "etag": counter.etag,
                "match_condition": MatchConditions.IfNotModified}))
        table = self._table
        with table.translate("updating the presence gauge"):
            try:
                results = table.client.submit_transaction(operations)
            except TableTransactionError as err:
                if is_conflict(err):
                    return None
                raise
        etag = results[-1].get("etag") if results else None
        return ShardCounter(written.agents, written.admins, written.as_of_ms, written.seen,
                        None if etag is None else str(etag))

    def apply(self, events: Sequence[PresenceEvent], roster: Roster | None) -> Applied:
        """Apply a batch: per user the newest event wins; users outside the pool are ignored."""
        newest = newest_per_user(events)
        stale = len(events) - len(newest)
        by_shard: dict[int, list[tuple[PresenceEvent, Role]]] = {}
        ignored = 0
        for event in newest.values():
            role = role_of(event.user_id, roster) if roster is not None else None
            if role is None:
                ignored += 1
                continue
            by_shard.setdefault(shard_of(event.user_id), []).append((event, role))
        if not by_shard:
            return Applied(0, stale, ignored, False, None)
        with ContextThreadPoolExecutor(max_workers=len(by_shard)) as pool:
            done = list(pool.map(lambda item: self._apply_shard(*item), by_shard.items()))
        applied = sum(written for written, _, _ in done)
        stale += sum(skipped for _, skipped, _ in done)
        rose = any(delta > 0 for _, _, delta in done)
        return Applied(applied, stale, ignored, rose, self.read() if rose else None)

    def _apply_shard(self, shard: int, events: list[tuple[PresenceEvent, Role]]
                     ) -> tuple[int, int, int]:
        """(entries written, events stale, net change of the count) for one shard's events."""
        by_bucket: dict[int, list[tuple[PresenceEvent, Role]]] = {}
        for event, role in events:
            by_bucket.setdefault(bucket_of(event.user_id), []).append((event, role))
        order = sorted(by_bucket)
        written = skipped = delta = 0
        for start in range(0, len(order), BUCKETS_PER_QUERY):
            chunk = order[start:start + BUCKETS_PER_QUERY]
            for _ in range(WRITE_ATTEMPTS):
                rows, counter = self._rows(shard, chunk)
                writes: list[_BucketWrite] = []
                agents, admins, seen = counter.agents, counter.admins, set(counter.seen)
                changed = received = change = 0
                for bucket in chunk:
                    held = rows.get(bucket) or Bucket()
                    users = dict(held.users)
                    for event, role in by_bucket[bucket]:
                        received += 1
                        seen.add(role)
                        current = users.get(event.user_id)
                        decision = on_event(current, counter.as_of_ms, event, role)
                        if decision == KEEP:
                            continue
                        new = decision if isinstance(decision, Entry) else None
                        (agents_before, admins_before), (agents_after, admins_after) = (
                            counts(current), counts(new))
                        agents += agents_after - agents_before
                        admins += admins_after - admins_before
                        change += agents_after + admins_after - agents_before - admins_before
                        if new is None:
                            users.pop(event.user_id, None)
                        else:
                            users[event.user_id] = new
                        changed += 1
                    if users != held.users:
                        writes.append((bucket, users, held.etag))
                after = ShardCounter(agents, admins, counter.as_of_ms, frozenset(seen))
                if not writes and after.seen == counter.seen:
                    skipped += received
                    break
                if self._commit(shard, writes, counter, after) is not None:
                    written += changed
                    skipped += received - changed
                    delta += change
                    break
            else:
                raise self._table.kept_changing("the presence gauge")
        return written, skipped, delta

    def reconcile(self, logged_in: Iterable[str], roster: Roster, at: datetime
                  ) -> Reconciled | None:
        """Reset the gauge to the exact logged-in pool users at `at`, keeping newer events.

        None (and nothing written) while the gauge has never received an event. Rereads and
        redoes a shard whose rows changed meanwhile; a check older than a shard's last
        reconciliation leaves that shard alone.
        """
        counters = self._counters()
        if _reading(counters) is None:
            return None
        at_ms = epoch_ms(at)
        exact: dict[int, set[str]] = {shard: set() for shard in range(SHARDS)}
        for user_id in logged_in:
            if roster.in_pool(user_id):
                exact[shard_of(user_id)].add(user_id)
        with ContextThreadPoolExecutor(max_workers=SHARDS) as pool:
            results = list(pool.map(
                lambda shard: self._reconcile_shard(shard, exact[shard], roster, at_ms),
                range(SHARDS)))
        drift = sum(corrected for corrected, _ in results)
        final = [counter for _, counter in results]
        now = Split(sum(c.agents + c.admins for c in final), sum(c.agents for c in final),
                    sum(c.admins for c in final))
        covers = frozenset(role for counter in final for role in counter.seen)
        return Reconciled(now, at, drift, covers)

    def _reconcile_shard(self, shard: int, exact: set[str], roster: Roster, at_ms: int
                         ) -> tuple[int, ShardCounter]:
        """(gauge minus exact over the entries corrected, the counter after) for one shard."""
        exact_by_bucket: dict[int, set[str]] = {}
        for user_id in exact:
            exact_by_bucket.setdefault(bucket_of(user_id), set()).add(user_id)
        corrected_total = 0
        for _ in range(WRITE_ATTEMPTS):
            rows, counter = self._rows(shard, None)
            if counter.as_of_ms >= at_ms and counter.etag is not None:
                return corrected_total, counter  # a newer check already reconciled this shard
            after: dict[int, dict[str, Entry]] = {}
            corrected: dict[int, int] = {}
            for bucket in sorted(rows.keys() | exact_by_bucket.keys()):
                users = dict(rows[bucket].users) if bucket in rows else {}
                wanted = exact_by_bucket.get(bucket, set())
                fixed = 0
                for user_id in sorted(users.keys() | wanted):
                    current = users.get(user_id)
                    decision = on_reconcile(current, user_id in wanted,
                                            role_of(user_id, roster), at_ms)
                    if decision == KEEP:
                        continue
                    new = decision if isinstance(decision, Entry) else None
                    fixed += sum(counts(current)) - sum(counts(new))
                    if new is None:
                        users.pop(user_id, None)
                    else:
                        users[user_id] = new
                if users != (rows[bucket].users if bucket in rows else {}):
                    after[bucket] = users
                    corrected[bucket] = fixed
            # (One transaction holds every bucket of a shard; the loop keeps the rule should
            # BUCKETS grow.) The counter of each transaction counts the buckets as they stand
            # once it is written; only the last one carries the check's time, so a transaction
            # that loses a race leaves the shard to be redone, not marked done.
            standing = {bucket: held.users for bucket, held in rows.items()}
            order = sorted(after)
            batches = [order[i:i + ROWS_PER_BATCH]
                       for i in range(0, len(order), ROWS_PER_BATCH)] or [[]]
            done = True
            for index, batch in enumerate(batches):
                standing.update((bucket, after[bucket]) for bucket in batch)
                agents = sum(counts(entry)[0] for users in standing.values()
                             for entry in users.values())
                admins = sum(counts(entry)[1] for users in standing.values()
                             for entry in users.values())
                last = index == len(batches) - 1
                target = ShardCounter(agents, admins, at_ms if last else counter.as_of_ms,
                                  counter.seen)
                writes = [(bucket, after[bucket], rows[bucket].etag if bucket in rows else None)
                          for bucket in batch]
                result = self._commit(shard, writes, counter, target)
                if result is None:
                    done = False
                    break
                corrected_total += sum(corrected[bucket] for bucket in batch)
                counter = result if result.etag else self._counter(shard)
            if done:
                return corrected_total, counter
        raise self._table.kept_changing("the presence gauge")

def _reading(counters: Mapping[int, ShardCounter]) -> GaugeReading | None:
    if all(counter.etag is None for counter in counters.values()):
        return None
    agents = sum(counter.agents for counter in counters.values())
    admins = sum(counter.admins for counter in counters.values())
    as_of = max(counter.as_of_ms for counter in counters.values())
    covers = frozenset(role for counter in counters.values() for role in counter.seen)
    return GaugeReading(Split(agents + admins, agents, admins),
                        from_epoch_ms(as_of) if as_of else None, covers)
