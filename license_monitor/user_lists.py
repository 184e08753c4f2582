"""How the CLI shows lists of users (peak-users, idle): text for people, CSV, a progress bar."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm import tqdm

PEAK_USER_COLUMNS = ("id", "name", "division", "license", "class", "seconds_at_peak",
                     "seconds_logged_in", "first_login", "last_logout", "presence", "routing")


@contextmanager
def progress_bar(
    stream: TextIO, *, enabled: bool, mininterval: float = 0.1
) -> Iterator[Callable[[str], None]]:
    """A progress bar of pages read, on `stream` (stderr), shown only to a person: never when
    disabled (machine output) or when the stream is not a terminal."""
    shown = enabled and stream.isatty()
    with tqdm(file=stream, disable=not shown, unit=" pages", desc="user details",
              leave=False, dynamic_ncols=True, mininterval=mininterval) as bar:
        def advance(what: str) -> None:
            bar.set_description_str(f"user details from {what}", refresh=False)
            bar.update(1)

        yield advance


def _times(seconds_by_name: Mapping[str, Any]) -> str:
    """'AVAILABLE=120;ON_QUEUE=3600': one cell for a mapping of seconds."""
    return ";".join(f"{name}={value}" for name, value in seconds_by_name.items())


def peak_users_csv(result: Mapping[str, Any]) -> str:
    """One header row and one row per attributed user."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PEAK_USER_COLUMNS)
    for user in result["users"]:
        writer.writerow([
            _times(user[column]) if column in ("presence", "routing")
            else "" if user[column] is None else user[column]
            for column in PEAK_USER_COLUMNS])
    return buffer.getvalue()


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def peak_users_text(result: Mapping[str, Any]) -> str:
    """A heading that says what was attributed, then one line per user."""
    when = (f"on {result['day']}" if "day" in result
            else f"in the billing period from {result.get('period_start')}")
    level = result["level"]
    if not level:
        return f"No level was held for 30 minutes {when}: nobody to attribute.\n"
    lines = [
        f"Level {level} {when} (held 30 minutes: {result['held_level']}); "
        f"{_duration(result['seconds_at_or_above_level'])} at {level} or more, "
        f"{result['present_at_level']} users logged in at that level; the top {level}:",
    ]
    for rank, user in enumerate(result["users"], start=1):
        lines.append(
            f"{rank:>5}. {user['name'] or user['id']:<28} {user['class']:<5} "
            f"{user['license'] or '-':<10} {user['division'] or '-':<16} "
            f"at peak {_duration(user['seconds_at_peak']):>7}  "
            f"logged in {_duration(user['seconds_logged_in']):>7}  {user['id']}")
    return "\n".join(lines) + "\n"


IDLE_COLUMNS = ("id", "name", "class", "since", "idle_minutes", "presence")


def idle_csv(result: Mapping[str, Any]) -> str:
    """One header row and one row per idle license holder."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(IDLE_COLUMNS)
    for user in result["users"]:
        writer.writerow(["" if user[column] is None else user[column] for column in IDLE_COLUMNS])
    return buffer.getvalue()


def idle_text(result: Mapping[str, Any]) -> str:
    """The count in one sentence, then one line per user, longest idle first."""
    head = (f"{result['count']} of the {result['logged_in']} logged in have not worked for "
            f"{result['after_minutes']}+ minutes ({result['agents']} agents, "
            f"{result['admins']} admins)")
    lines = [head + (":" if result["users"] else ".")]
    for user in result["users"]:
        lines.append(
            f"  {user['name'] or user['id']:<28} {user['class']:<5} "
            f"{user['presence'].replace('_', ' ').lower():<10} since {user['since']} "
            f"({_duration(user['idle_minutes'] * 60)})  {user['id']}")
    return "\n".join(lines) + "\n"
