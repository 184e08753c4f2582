"""One OAuth client's request budget, split between the processes using it at the same time.

The Function App (its checks, roster refreshes and `GET /api/peak-users`), a second instance
of it, and a CLI `check`, `peak-users` or `billing rebuild` run beside it each keep their own
rolling window (genesys/budget.py). So that together they never send more than the budget in
any 60 s, each takes a share of it in one row of Table Storage, keyed by the OAuth client:

- a process may send only as many requests in its rolling window as its share, and takes
  what the others leave free (all of it when alone);
- a process that gets less than an equal part says so (`wants`), and the others give back
  down to an equal part at their next renewal, never below what their window already holds
  (a share lowered to at least the window's count is safe at once: every later window of
  that process counts those requests too);
- an active process renews every RENEW_SECONDS and sends nothing more than
  SEND_SECONDS after a renewal began; an idle one, or one that ends, gives back what its
  window no longer holds ("resting": it sends nothing more without renewing). An entry not
  renewed for DEAD_SECONDS (RESTING_DEAD_SECONDS when resting: its process stopped, and all
  its requests have left the window) is dropped by the next process that renews.

Every write is conditional on the row's ETag, so the shares in the row never add up to more
than the budget. Ages are measured on the storage service's clock (the Date header of the
read), so a process whose clock is wrong neither keeps a dead entry alive nor drops a live one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from license_monitor.genesys.budget import RENEW_SECONDS
from license_monitor.state.table import (
    WRITE_ATTEMPTS,
    StateTable,
    StorageUnavailable,
    check_key,
    is_conflict,
)

logger = logging.getLogger(__name__)

SHARES_ROW = "budget-shares"
# An active process renews its share every RENEW_SECONDS (genesys/budget.py), so it sends
# nothing later than this after a renewal began.
SEND_SECONDS = 2 * RENEW_SECONDS
# An entry this old (storage time) belongs to a process that has stopped: its last request
# was sent SEND_SECONDS after its renewal at the latest, left every window 60 s later, and
# 30 s more cover a request still on its way and the Date header's whole seconds.
DEAD_SECONDS = SEND_SECONDS + 60.0 + 30.0
# A resting entry counts only requests already answered before it was written: they have
# left the window 60 s later (5 s more for the Date header's whole seconds).
RESTING_DEAD_SECONDS = 60.0 + 5.0


@dataclass(frozen=True)
class Share:
    """What one renewal gave this process."""

    limit: int  # requests this process may hold in its rolling window
    processes: int  # processes sharing the budget, this one included


class BudgetShares:
    """This process's entry in its OAuth client's budget row (see the module docstring)."""

    def __init__(
        self,
        table: StateTable,
        client_key: str,
        budget: int,
        *,
        process: str | None = None,
        service_clock: Callable[[], float] | None = None,
    ) -> None:
        self._table = table
        self._partition = f"{check_key(client_key)}|budget"
        self.budget = budget
        self.process = process or uuid.uuid4().hex[:16]
        # Tests move time on; otherwise the service's Date header, else this machine's clock.
        self._service_clock = service_clock
        self.share = Share(0, 1)
        self._uncoordinated = False

    def renew(self, in_window: int, *, resting: bool = False) -> Share:
        """Take this process's share again; `in_window`: requests its window holds now.

        `resting`: the process has nothing to send, so its share shrinks to `in_window` (and
        its entry goes when that is 0). Raises StorageUnavailable when storage fails.
        """
        table = self._table
        for _ in range(WRITE_ATTEMPTS):
            row, etag, now = self._read()
            live = {process: entry for process, entry in row.items()
                    if process == self.process or now - entry["at"] < (
                        RESTING_DEAD_SECONDS if entry["resting"] else DEAD_SECONDS)}
            others = {process: entry for process, entry in live.items()
                      if process != self.process}
            free = self.budget - sum(entry["limit"] for entry in others.values())
            equal = self.budget // (len(others) + 1)
            if resting:
                limit = in_window
            elif any(entry.get("wants") for entry in others.values()):
                limit = min(free, equal)
            else:
                limit = free
            # Never below what the window already holds (safe: see the module docstring).
            limit = max(limit, in_window)
            wants = not resting and limit < equal
            if resting and limit == 0:
                live.pop(self.process, None)
            else:
                live[self.process] = {"limit": limit, "at": now, "wants": wants,
                                      "resting": resting}
            if self._write(live, etag):
                self.share = Share(limit, len(others) + 1)
                return self.share
        raise table.kept_changing("The request budget's shares")

    def allowance(self, in_window: int, *, resting: bool = False) -> int:
        """renew()'s limit; when storage fails, an equal part of the budget among the
        processes last seen (they cannot renew either), with one warning per outage."""
        try:
            limit = self.renew(in_window, resting=resting).limit
        except StorageUnavailable as err:
            if not self._uncoordinated:
                logger.warning("The request budget is not shared while storage fails (%s): "
                               "this process keeps to %d of %d a minute", err,
                               self.budget // self.share.processes, self.budget)
            self._uncoordinated = True
            return max(in_window, self.budget // self.share.processes)
        if self._uncoordinated:
            logger.warning("The request budget is shared again through storage")
            self._uncoordinated = False
        return limit

    def _read(self) -> tuple[dict[str, dict[str, Any]], str | None, float]:
        table = self._table
        dates: list[str] = []

        def keep_date(response: Any) -> None:
            dates.append(str(response.http_response.headers.get("Date") or ""))

        with table.translate("reading the request budget's shares"):
            try:
                entity = table.client.get_entity(
                    self._partition, SHARES_ROW, raw_response_hook=keep_date)
            except ResourceNotFoundError:
                entity = None
        now = self._now(dates)
        if entity is None:
            return {}, None, now
        return _entries(entity.get("shares")), str(entity.metadata["etag"]), now

    def _now(self, dates: list[str]) -> float:
        if self._service_clock is not None:
            return self._service_clock()
        try:
            return parsedate_to_datetime(dates[-1]).timestamp()
        except (IndexError, TypeError, ValueError):
            return time.time()

    def _write(self, entries: dict[str, dict[str, Any]], etag: str | None) -> bool:
        """Replace the row if nobody changed it since it was read; False if somebody did."""
        table = self._table
        entity = {"PartitionKey": self._partition, "RowKey": SHARES_ROW,
                  "shares": json.dumps(entries, sort_keys=True)}
        with table.translate("writing the request budget's shares"):
            try:
                if etag is None:
                    table.client.create_entity(entity)
                else:
                    table.client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=etag,
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError as err:
                if is_conflict(err):
                    return False
                raise
        return True


def _entries(raw: Any) -> dict[str, dict[str, Any]]:
    """The row's entries; a damaged row counts as empty (logged), so no process is stuck."""
    try:
        parsed = json.loads(raw)
        entries = {
            str(process): {"limit": int(entry["limit"]), "at": float(entry["at"]),
                           "wants": bool(entry.get("wants")),
                           "resting": bool(entry.get("resting"))}
            for process, entry in parsed.items()
        }
    except (TypeError, ValueError, KeyError, AttributeError):
        logger.warning("The request budget's shares row is damaged; it is written again")
        return {}
    return {process: entry for process, entry in entries.items() if entry["limit"] >= 0}
