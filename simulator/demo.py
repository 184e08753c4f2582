"""`python -m simulator.demo`: a breach story played through real checks, all local.

The Genesys simulator serves an organization whose logged-in count the story sets; Azurite
holds the alert state; a local webhook receiver prints every alert it gets. Each check is the
real license_check orchestration run in process, on a simulated clock 20 minutes apart, so
each 15-minute window sees one level of the story.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from license_monitor.cli import run_check, summary_line
from license_monitor.settings import Settings
from simulator import (
    GenesysSimulator,
    SimOrg,
    SimQueue,
    SimRole,
    SimSegment,
    SimUser,
)
from simulator.azurite import start_azurite
from simulator.receiver import HttpReceiver

STORY_START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=20)
DEMO_SECRET = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC0xMjM0NTY3ODkw"  # noqa: S105 (demo value)


@dataclass(frozen=True)
class Step:
    """One moment of the story: how many pool users are logged in, and why."""

    online: int
    caption: str
    shift: int = 0  # how many users hand over to as many others inside the window


def build_story_org(pool_users: int, *, now: datetime, named_users: int = 20,
                    admin_share: float = 0.15) -> SimOrg:
    """An org of `pool_users` CX users (agents in queues, admins without) plus named users.

    Everybody starts OFFLINE; set_online() then decides who is logged in.
    """
    queues = [SimQueue("q-sales", "Sales"), SimQueue("q-support", "Support")]
    roles = [SimRole("r-agent", "Agent"), SimRole("r-supervisor", "Supervisor")]
    admins = round(pool_users * admin_share)
    start = now - timedelta(days=1)
    users = []
    for index in range(pool_users):
        is_admin = index % max(1, round(pool_users / max(admins, 1))) == 0 and admins > 0
        users.append(SimUser(
            id=f"user-{index:05d}", name=f"User {index}", licenses=["cloudCX3"],
            queue_ids=[] if is_admin else [queues[index % 2].id],
            role_ids=["r-supervisor" if is_admin else "r-agent"],
            segments=[SimSegment(start, None, "OFFLINE")]))
    for index in range(named_users):
        # Communicate-only users are billed as named users: online, but never counted.
        users.append(SimUser(
            id=f"named-{index:05d}", name=f"Named {index}", licenses=["communicate"],
            segments=[SimSegment(start, None, "AVAILABLE")]))
    return SimOrg(users=users, queues=queues, groups=[], roles=roles, now=now)


def set_online(org: SimOrg, count: int, at: datetime, offset: int = 0) -> None:
    """From `at`, exactly pool users offset .. offset+count-1 are logged in; others OFFLINE."""
    pool = [user for user in org.users if any(lic.startswith("cloudCX") for lic in user.licenses)]
    for index, user in enumerate(pool):
        online = offset <= index < offset + count
        wanted = "ON_QUEUE" if online and user.queue_ids else (
            "AVAILABLE" if online else "OFFLINE")
        if org.current_presence(user) != wanted:
            org.set_presence(user.id, wanted, at)


def story(capacity: int) -> list[Step]:
    """Normal load, breach, no repeat, escalation, recovery."""
    def share(percent: float) -> int:
        return round(capacity * percent / 100)

    return [
        Step(share(72), "normal load"),
        Step(share(72), "a shift change: a naive count of everyone active in 15 minutes "
             "would cross the line", shift=share(36)),
        Step(share(92), "a busy hour: over the 90% warning line"),
        Step(share(93), "still busy: no repeat alert"),
        Step(share(98), "critical: over 95%"),
        Step(share(96), "still critical: no repeat"),
        Step(share(60), "the peak is over"),
    ]


@contextmanager
def local_world(
    pool_users: int, now: datetime
) -> Iterator[tuple[GenesysSimulator, str, HttpReceiver]]:
    """The simulator, Azurite and a webhook receiver, stopped on exit."""
    org = build_story_org(pool_users, now=now)
    with GenesysSimulator(org) as simulator, start_azurite() as azurite:
        receiver = HttpReceiver(path="/alerts")
        try:
            yield simulator, azurite.connection_string, receiver
        finally:
            receiver.stop()


def demo_settings(simulator: GenesysSimulator, connection: str, receiver: HttpReceiver,
                  capacity: int) -> Settings:
    """Settings pointing every endpoint at the local world."""
    return Settings.from_env({
        "GENESYS_CLIENT_ID": simulator.client_id,
        "GENESYS_CLIENT_SECRET": simulator.client_secret,
        "GENESYS_API_URL": simulator.api_url,
        "GENESYS_LOGIN_URL": simulator.login_url,
        "LICENSE_CAPACITY": str(capacity),
        "STATE_CONNECTION": connection,
        "STATE_TABLE": "licensemonitordemo",
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_SECRET": DEMO_SECRET,
        "ORG_NAME": "Demo Contact Center",
    })


def legend(settings: Settings) -> str:
    """How to read a check's line, in plain words, said once before the first check."""
    clear = settings.warning_percent - settings.clear_margin_percent
    return (
        "How to read each check's line:\n"
        "  peak N/C          the most users logged in at the same instant in the last "
        f"{settings.window_minutes} minutes,\n"
        "                    against the C licenses purchased. The alert levels use this "
        "figure.\n"
        "  now               users logged in at the moment of the check.\n"
        "  active in window  everyone logged in at any time in those "
        f"{settings.window_minutes} minutes: what a simple\n"
        "                    script counts. At a shift change it counts both shifts, so it "
        "over-counts.\n"
        "  billable peak     what Genesys bills for the month so far: the highest number of "
        "users\n"
        "                    logged in at once for at least 30 minutes in total (not "
        "necessarily in one\n"
        "                    stretch); shorter peaks are free. It starts at 0 because no "
        "level has been\n"
        "                    held for 30 minutes yet, and while usage climbs it lags the "
        "live peak by\n"
        "                    about 30 minutes.\n"
        f"  clear level       an alert ends only when the peak falls below {clear:g}% (the "
        f"{settings.warning_percent:g}% warning\n"
        f"                    line minus CLEAR_MARGIN_PERCENT {settings.clear_margin_percent:g}"
        "), so usage hovering around the line\n"
        "                    does not alert again and again.\n\n")


NEXT_STEP = (
    "\nNext step, against your own Genesys Cloud org: create an OAuth client (Client "
    "Credentials),\n"
    "set GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET, GENESYS_REGION and LICENSE_CAPACITY, then "
    "run\n"
    "  .venv/bin/python -m license_monitor doctor         # names any permission or setting "
    "to fix\n"
    "  .venv/bin/python -m license_monitor check --dry-run\n"
    "and deploy with `azd up` (README, \"Deploy\").\n")


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def run(out: TextIO, users: int = 400, seed: int = 7) -> int:
    """Play the story and print each check and each alert received."""
    del seed  # the story org is fully determined by its size
    os.environ.setdefault("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "0")
    capacity = max(10, round(users * 0.25))
    out.write(f"Demo: {users} concurrent-licensed users (+20 Communicate-only), "
              f"{capacity} licenses purchased, warning at 90%, critical at 95%.\n")
    with local_world(users, STORY_START) as (simulator, connection, receiver):
        settings = demo_settings(simulator, connection, receiver, capacity)
        out.write(f"Genesys simulator at {simulator.api_url}; webhook receiver at "
                  f"{receiver.url}\n\n")
        out.write(legend(settings))
        seen = 0
        worst = 0
        for number, step in enumerate(story(capacity), start=1):
            at = STORY_START + number * STEP
            set_online(simulator.org, step.online, at - STEP + timedelta(minutes=2))
            if step.shift:
                # One shift logs out 10 minutes before the check, the next logs in 5 later.
                set_online(simulator.org, step.online - step.shift, at - timedelta(minutes=10),
                           offset=step.shift)
                set_online(simulator.org, step.online, at - timedelta(minutes=5),
                           offset=step.shift)
            simulator.org.now = at
            out.write(f"[{number}] {step.caption}: {step.online} users logged in\n")
            report = run_check(settings, dry_run=False, clock=_fixed(at))
            out.write("    " + summary_line(report) + "\n")
            worst = max(worst, {"ok": 0, "warning": 1, "critical": 2}.get(report["level"], 3))
            for alert in receiver.delivered[seen:]:
                body = alert.body
                out.write(f"    webhook received {body['event']!r} "
                          f"(alert_id {body['alert_id']}): {body['message']}\n")
            seen = len(receiver.delivered)
        out.write(f"\n{seen} alerts delivered in {len(story(capacity))} checks; "
                  f"{simulator.count()} Genesys API calls.\n")
        out.write("Last alert payload:\n" + json.dumps(receiver.delivered[-1].body, indent=2)
                  + "\n" if seen else "")
        out.write(NEXT_STEP)
    return 0 if worst < 3 else 3


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m simulator.demo`."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator.demo",
        description="Play a breach story against the Genesys simulator, all local.")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(out=sys.stdout, users=args.users, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
