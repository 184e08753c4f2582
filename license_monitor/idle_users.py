"""`idle`: who holds a license without working now, and signing out the users an admin names.

The rule is idle.py's; here it is fed the user details of the last IDLE_AFTER_MINUTES (every
record overlapping them, so a stretch of that length is always seen whole), and the users are
named from the directory. Signing out is never automatic: only the users named, each logged
with who asked.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from license_monitor import measure
from license_monitor.genesys.errors import GenesysError
from license_monitor.idle import IdleUser, find_idle
from license_monitor.peak_users import PARALLEL_PAGES, current_roster, read_directory
from license_monitor.runtime import Services
from license_monitor.times import format_time
from license_monitor.usage import measure_concurrency

logger = logging.getLogger(__name__)


def idle_now(services: Services, now: datetime) -> dict[str, Any]:
    """Every idle license holder at `now`, longest idle first (the `idle --json` object)."""
    settings = services.settings
    after = timedelta(minutes=settings.idle_after_minutes)
    requests_before = services.client.request_count
    services.client.ensure_token()
    roster = current_roster(services, now)
    presence, routing = measure.fetch_details(services.client, now - after, now, PARALLEL_PAGES)
    idle = find_idle(presence, routing, now=now, idle_after=after,
                     is_agent=roster.agents.__contains__, in_pool=roster.in_pool)
    logged_in = len(measure_concurrency(presence, now - after, now,
                                        include=roster.in_pool).now_users)
    names = read_directory(services).names if idle else {}
    agents = sum(1 for user in idle if user.is_agent)
    return {
        "checked_at": format_time(now),
        "after_minutes": settings.idle_after_minutes,
        "logged_in": logged_in,
        "count": len(idle),
        "agents": agents,
        "admins": len(idle) - agents,
        "requests": services.client.request_count - requests_before,
        "users": [_row(user, names.get(user.user_id, ""), now) for user in idle],
    }


def _row(user: IdleUser, name: str, now: datetime) -> dict[str, Any]:
    return {**user.to_dict(name), "idle_minutes": int((now - user.since).total_seconds() // 60)}


@dataclass(frozen=True)
class SignOut:
    """What happened to one user named for signing out."""

    user_id: str
    name: str
    error: str | None = None


def who_asks(services: Services) -> str:
    """The person and OAuth client a sign-out is done for, as the audit log names them."""
    try:
        person = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        person = "an unnamed local user"
    return f"{person} (OAuth client {services.settings.client_id})"


def sign_out(services: Services, user_ids: list[str], names: dict[str, str]) -> list[SignOut]:
    """End every session of exactly these users (DELETE /api/v2/tokens/{userId}), one by one;
    each sign-out is logged with who asked. A failure is reported and the others go on."""
    actor = who_asks(services)
    done: list[SignOut] = []
    for user_id in dict.fromkeys(user_ids):
        name = names.get(user_id, "")
        try:
            services.client.sign_out(user_id)
        except GenesysError as err:
            logger.warning("Sign-out of %s (%s) requested by %s failed: %s", user_id,
                           name or "name unknown", actor, err)
            done.append(SignOut(user_id, name, str(err)))
            continue
        logger.warning("Signed out %s (%s) at the request of %s", user_id,
                       name or "name unknown", actor)
        done.append(SignOut(user_id, name))
    return done
