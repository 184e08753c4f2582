"""The alert-state entity of Table Storage as a row: read what can be read, write it back.

One entity per org: the state (JSON), the notification outbox and the latest decided check
(zlib-compressed JSON split under the property limit), and the channels refusing our
messages. A state this version cannot read is salvaged field by field and kept aside as text.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from license_monitor.alerting import AlertState
from license_monitor.state.outbox import usable_entry
from license_monitor.state.table import dumps, pack, unpack
from license_monitor.times import format_time

STATE_ROW = "alert-state"
UNREADABLE_KEPT_CHARS = 30_000  # under the 32K-character limit of a Table Storage string


@dataclass
class AlertRow:
    """The alert-state entity as read: what evaluate() and the delivery records change."""

    state: AlertState
    outbox: list[dict[str, Any]]
    rejections: dict[str, dict[str, Any]]  # channel -> {"error", "since", "announced"}
    last_check: dict[str, Any] | None  # the latest decided check: its time and decision
    etag: str | None
    stored_state: str | None = None  # the state text as stored (kept while it is unreadable)
    unreadable: str | None = None  # why the stored row could not be read in full
    kept: dict[str, Any] = field(default_factory=dict)  # properties carried over unchanged


def row_of(entity: Mapping[str, Any], etag: str | None) -> AlertRow:
    """The row of a stored entity; what cannot be read is named in `unreadable`."""
    stored = entity.get("state")
    problems: list[str] = []
    try:
        state = AlertState.from_dict(json.loads(str(stored)))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        state = salvage_state(stored)
        problems.append(f"its state ({_error_text(err)})")
    try:
        outbox = list(unpack(entity, "outbox_") or [])
    except (ValueError, TypeError, KeyError, zlib.error) as err:
        outbox = []
        problems.append(f"its outbox ({_error_text(err)})")
    readable = [entry for entry in outbox if usable_entry(entry)]
    if len(readable) < len(outbox):
        problems.append(f"{len(outbox) - len(readable)} outbox entries")
    try:
        rejections = dict(json.loads(str(entity.get("rejected_channels") or "{}")))
        last_check = unpack(entity, "check_")
    except (ValueError, TypeError, zlib.error):
        rejections, last_check = {}, None  # bookkeeping only: losing it costs one notice
    return AlertRow(
        state=state, outbox=readable, rejections=rejections,
        last_check=last_check if isinstance(last_check, dict) else None,
        etag=etag, stored_state=None if stored is None else str(stored),
        unreadable=(
            "the stored alert state could not be read: " + "; ".join(problems)
            if problems else None),
        kept={name: entity[name] for name in ("unreadable_state", "unreadable_at")
              if name in entity},
    )


def entity_of(row: AlertRow, org: str, decided_at: datetime | None) -> dict[str, Any]:
    """The entity storing `row`. A row whose state is unreadable keeps its stored state text
    unless a check decided on it (`decided_at`): that replaces it and keeps the old text aside
    in `unreadable_state`."""
    state_text = dumps(row.state.to_dict())
    kept = dict(row.kept)
    if row.unreadable is not None and row.stored_state is not None:
        if decided_at is not None:
            kept["unreadable_state"] = row.stored_state[:UNREADABLE_KEPT_CHARS]
            kept["unreadable_at"] = format_time(decided_at)
        else:
            state_text = row.stored_state
    entity: dict[str, Any] = {
        "PartitionKey": org,
        "RowKey": STATE_ROW,
        "level": row.state.level,  # readable in Storage Explorer
        "state": state_text,
        **pack("outbox_", row.outbox),
        "rejected_channels": dumps(row.rejections),
        **kept,
    }
    if row.last_check is not None:
        entity.update(pack("check_", row.last_check))
    return entity


def _error_text(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


def salvage_state(stored: Any) -> AlertState:
    """What can still be read of an unreadable state: each field that parses on its own."""
    try:
        data = json.loads(str(stored))
    except ValueError:
        return AlertState()
    if not isinstance(data, dict):
        return AlertState()
    known = {item.name for item in fields(AlertState)}
    kept: dict[str, Any] = {}
    for name, value in data.items():
        if name not in known:
            continue
        try:
            AlertState.from_dict({**kept, name: value})
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        kept[name] = value
    return AlertState.from_dict(kept)
