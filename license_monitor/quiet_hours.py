"""Quiet hours on the wall clock: whether a moment is quiet, and how long a span was not.

The calendar only: what is held during quiet hours and released after them is the alert
policy's (alerting.decide), and how a backlog collapses when delivery resumes is backlog's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

from license_monitor.times import utc


class QuietWindowLike(Protocol):
    """A weekly window (settings.QuietWindow): local days (0=Mon) and minutes of the day."""

    @property
    def days(self) -> frozenset[int]:
        """Days the window starts on."""

    @property
    def start_minute(self) -> int:
        """Local minute of the day the window starts (0-1439)."""

    @property
    def end_minute(self) -> int:
        """Local minute it ends (1-1440); at or before the start: the next day."""


def is_quiet(moment: datetime, windows: Iterable[QuietWindowLike], zone: str | tzinfo) -> bool:
    """Whether `moment` falls in a quiet window, read on the wall clock of `zone`.

    A window belongs to the day it starts on; one ending at or before its start runs overnight
    into the next day; 24:00 is the end of the day. Wall-clock reading means a 22:00-06:00
    window is eight hours in winter and the same wall-clock span across a DST change.
    """
    local = utc(moment).astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone)
    day = local.weekday()
    minute = local.hour * 60 + local.minute
    for window in windows:
        start, end = window.start_minute, window.end_minute
        if start < end:
            if day in window.days and start <= minute < end:
                return True
        elif (day in window.days and minute >= start) or (
                (day - 1) % 7 in window.days and minute < end):
            return True
    return False


def time_outside_quiet_hours(
    start: datetime, end: datetime, windows: Sequence[QuietWindowLike], zone: str | tzinfo,
) -> timedelta:
    """How much of [start, end) falls outside the quiet windows, to the minute.

    Only the last week of a span is looked at; time before it counts in full (this measures
    how long a notification has been owed, and a week is far past giving up on it).
    """
    start, end = utc(start), utc(end)
    if end <= start or not windows:
        return max(end - start, timedelta(0))
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    moment, total = max(start, end - timedelta(days=7)), end - start
    while moment < end:
        step = min(end, moment.replace(second=0, microsecond=0) + timedelta(minutes=1))
        if is_quiet(moment, windows, zone):
            total -= step - moment
        moment = step
    return total
