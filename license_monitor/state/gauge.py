"""The presence gauge's rows: one per user in `SHARDS` partitions, each with an exact counter.

Why Table Storage and not Durable Entities: see license_monitor/gauge.py. Layout (org key K):

| PartitionKey  | RowKey        | what                                                      |
|---------------|---------------|-----------------------------------------------------------|
| K|gauge|<s>   | <user id>     | online, at (event time, epoch ms), role (agent/admin)     |
| K|gauge|<s>   | ~count        | agents, admins online in the shard; as_of (last check)    |
| K             | gauge-trigger | last_started: when an event last started the exact check  |

A user row and its shard's counter change in one transaction conditional on both ETags, so the
counter always equals the shard's online rows. A conflict (another worker wrote meanwhile)
rereads and decides again; the decisions are idempotent, so nothing counts twice.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableTransactionError, UpdateMode

from license_monitor.deadline import ContextThreadPoolExecutor
from license_monitor.gauge import (
    KEEP,
    Entry,
    PresenceEvent,
    Role,
    counts,
    epoch_ms,
    from_epoch_ms,
    newest_per_user,
    on_event,
    on_reconcile,
    role_of,
)
from license_monitor.roster import Roster, Split
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable, is_conflict
from license_monitor.times import format_precise

logger = logging.getLogger(__name__)

GAUGE = "gauge"
SHARDS = 4
COUNTER_ROW = "~count"
TRIGGER_ROW = "gauge-trigger"
USERS_PER_QUERY = 14  # a filter holds at most 15 comparisons; one is the counter row
ROWS_PER_BATCH = 99  # a transaction holds at most 100 operations; one is the counter


def shard_of(user_id: str) -> int:
    """The shard of a user: stable across processes and releases."""
    return zlib.crc32(user_id.encode("utf-8")) % SHARDS


# One row's change: user id, row before (None: no row), row after (None: delete), its ETag.
_Change = tuple[str, Entry | None, Entry | None, str | None]


def _int(value: Any) -> int:
    return int(value.value if isinstance(value, EntityProperty) else value)


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


@dataclass
class _Counter:
    agents: int = 0
    admins: int = 0
    as_of_ms: int = 0
    etag: str | None = None

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any] | None) -> _Counter:
        if entity is None:
            return cls()
        return cls(_int(entity.get("agents", 0)), _int(entity.get("admins", 0)),
                   _int(entity.get("as_of", 0)), entity.metadata["etag"])  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GaugeReading:
    """The gauge now: pool users logged in by class, and the last exact check it took."""

    now: Split
    as_of: datetime | None  # the newest reconciliation of any shard, None before the first

    @property
    def total(self) -> int:
        """Pool users logged in, per the gauge."""
        return self.now.total


@dataclass(frozen=True)
class Applied:
    """What one batch of events did."""

    applied: int  # rows written (newer events of pool users)
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

    def to_dict(self) -> dict[str, Any]:
        """The check JSON's `gauge` object."""
        return {"value": self.now.total, "agents": self.now.agents, "admins": self.now.admins,
                "as_of": format_precise(self.as_of), "drift": self.drift}


@dataclass(frozen=True)
class Claim:
    """The right to start one exact check now, won through the trigger row's ETag."""

    etag: str
    previous_ms: int | None


class PresenceGauge:
    """The org's presence gauge over the shared table."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def _partition(self, shard: int) -> str:
        return self._table.partition(GAUGE, str(shard))

    # ------------------------------------------------------------------ reading

    def _counter(self, shard: int) -> _Counter:
        table = self._table
        with table.translate("reading the presence gauge"):
            try:
                return _Counter.from_entity(
                    table.client.get_entity(self._partition(shard), COUNTER_ROW))
            except ResourceNotFoundError:
                return _Counter()

    def _counters(self, shards: Iterable[int] = range(SHARDS)) -> dict[int, _Counter]:
        wanted = list(shards)
        with ContextThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            return dict(zip(wanted, pool.map(self._counter, wanted), strict=True))

    def read(self) -> GaugeReading | None:
        """The gauge (SHARDS point reads in parallel); None when it has never been used."""
        return _reading(self._counters())

    def _rows(self, shard: int, user_ids: Sequence[str] | None
              ) -> tuple[dict[str, tuple[Entry, str]], _Counter]:
        """Rows (entry, etag) of some users of a shard (all when None) and its counter."""
        table = self._table
        parameters: dict[str, Any] = {"pk": self._partition(shard), "counter": COUNTER_ROW}
        query = "PartitionKey eq @pk"
        if user_ids is not None:
            names = [f"u{i}" for i in range(len(user_ids))]
            parameters.update(zip(names, user_ids, strict=True))
            keys = " or ".join(f"RowKey eq @{name}" for name in [*names, "counter"])
            query += f" and ( {keys} )"
        rows: dict[str, tuple[Entry, str]] = {}
        counter = _Counter()
        with table.translate("reading the presence gauge"):
            for entity in table.client.query_entities(query, parameters=parameters):
                key = str(entity["RowKey"])
                if key == COUNTER_ROW:
                    counter = _Counter.from_entity(entity)
                else:
                    role: Role = "agent" if entity.get("role") == "agent" else "admin"
                    rows[key] = (Entry(bool(entity["online"]), _int(entity["at"]), role),
                                 str(entity.metadata["etag"]))
        return rows, counter

    # ------------------------------------------------------------------ writing

    def _commit(self, shard: int, changes: Sequence[_Change], counter: _Counter,
                as_of_ms: int | None) -> _Counter | None:
        """Write row changes (user, old, new, etag) and the counter in one transaction.

        Returns the counter as written (with its new ETag), or None on a conflict.
        """
        partition = self._partition(shard)
        operations: list[Any] = []
        agents, admins = counter.agents, counter.admins
        for user_id, old, new, etag in changes:
            before, after = counts(old), counts(new)
            agents += after[0] - before[0]
            admins += after[1] - before[1]
            guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
            if new is None:
                operations.append(("delete", {"PartitionKey": partition, "RowKey": user_id},
                                   guard))
                continue
            entity = {"PartitionKey": partition, "RowKey": user_id, "online": new.online,
                      "at": _int64(new.at_ms), "role": new.role}
            if etag is None:
                operations.append(("create", entity))
            else:
                operations.append(("update", entity, {"mode": UpdateMode.REPLACE, **guard}))
        as_of = max(counter.as_of_ms, as_of_ms or 0)
        row = {"PartitionKey": partition, "RowKey": COUNTER_ROW, "agents": agents,
               "admins": admins, "as_of": _int64(as_of)}
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
        return _Counter(agents, admins, as_of, etag)

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
        """(rows written, events stale, net change of the count) for one shard's events."""
        written = skipped = delta = 0
        for start in range(0, len(events), USERS_PER_QUERY):
            chunk = events[start:start + USERS_PER_QUERY]
            for _ in range(WRITE_ATTEMPTS):
                rows, counter = self._rows(shard, [event.user_id for event, _ in chunk])
                changes: list[_Change] = []
                for event, role in chunk:
                    held = rows.get(event.user_id)
                    decision = on_event(held[0] if held else None, counter.as_of_ms, event, role)
                    if decision != KEEP:
                        new = decision if isinstance(decision, Entry) else None
                        changes.append((event.user_id, held[0] if held else None, new,
                                        held[1] if held else None))
                if not changes:
                    skipped += len(chunk)
                    break
                if self._commit(shard, changes, counter, None) is not None:
                    written += len(changes)
                    skipped += len(chunk) - len(changes)
                    delta += sum(sum(counts(new)) - sum(counts(old))
                                 for _, old, new, _ in changes)
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
        return Reconciled(now, at, drift)

    def _reconcile_shard(self, shard: int, exact: set[str], roster: Roster, at_ms: int
                         ) -> tuple[int, _Counter]:
        """(gauge minus exact over the rows corrected, the counter after) for one shard."""
        corrected = 0
        for _ in range(WRITE_ATTEMPTS):
            rows, counter = self._rows(shard, None)
            if counter.as_of_ms >= at_ms and counter.etag is not None:
                return corrected, counter  # a newer check already reconciled this shard
            changes: list[_Change] = []
            for user_id in sorted(exact | rows.keys()):
                held = rows.get(user_id)
                current = held[0] if held else None
                decision = on_reconcile(current, user_id in exact,
                                        role_of(user_id, roster), at_ms)
                if decision != KEEP:
                    new = decision if isinstance(decision, Entry) else None
                    changes.append((user_id, current, new, held[1] if held else None))
            done = True
            # Every batch carries the counter (and its as-of time), so each is exact alone.
            for start in range(0, max(len(changes), 1), ROWS_PER_BATCH):
                batch = changes[start:start + ROWS_PER_BATCH]
                written = self._commit(shard, batch, counter, at_ms)
                if written is None:
                    done = False
                    break
                corrected += sum(sum(counts(old)) - sum(counts(new)) for _, old, new, _ in batch)
                counter = written if written.etag else self._counter(shard)
            if done:
                return corrected, counter
        raise self._table.kept_changing("the presence gauge")

    # ------------------------------------------------------------------ starting the check

    def claim_check(self, now: datetime, min_interval: timedelta) -> Claim | None:
        """Win the right to start the exact check: at most one per `min_interval`, all workers."""
        table = self._table
        with table.translate("reading the gauge's check trigger"):
            try:
                current = table.client.get_entity(table.org, TRIGGER_ROW)
            except ResourceNotFoundError:
                current = None
        previous = None if current is None else _int(current["last_started"])
        now_ms = epoch_ms(now)
        if previous is not None and now_ms - previous < min_interval // timedelta(milliseconds=1):
            return None
        entity = {"PartitionKey": table.org, "RowKey": TRIGGER_ROW,
                  "last_started": _int64(now_ms)}
        with table.translate("claiming the gauge's check trigger"):
            try:
                if current is None:
                    result = table.client.create_entity(entity)
                else:
                    result = table.client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError as err:
                if is_conflict(err):
                    return None  # another worker claimed it first
                raise
        return Claim(str(result["etag"]), previous)

    def release_claim(self, claim: Claim) -> None:
        """Give a claim back (the check could not start): the next rising event may try."""
        table = self._table
        with table.translate("releasing the gauge's check trigger"):
            try:
                if claim.previous_ms is None:
                    table.client.delete_entity(
                        table.org, TRIGGER_ROW, etag=claim.etag,
                        match_condition=MatchConditions.IfNotModified)
                else:
                    table.client.update_entity(
                        {"PartitionKey": table.org, "RowKey": TRIGGER_ROW,
                         "last_started": _int64(claim.previous_ms)},
                        mode=UpdateMode.REPLACE, etag=claim.etag,
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError:
                logger.debug("The gauge's check trigger changed meanwhile; left as it is")


def _reading(counters: Mapping[int, _Counter]) -> GaugeReading | None:
    if all(counter.etag is None for counter in counters.values()):
        return None
    agents = sum(counter.agents for counter in counters.values())
    admins = sum(counter.admins for counter in counters.values())
    as_of = max(counter.as_of_ms for counter in counters.values())
    return GaugeReading(Split(agents + admins, agents, admins),
                        from_epoch_ms(as_of) if as_of else None)
