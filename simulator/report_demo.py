"""`python -m simulator.report_demo --out report.html [--screenshot report.png]`: the demo's
organization through two weeks of checks, then the report of its billing period.

The demo's org (400 concurrent-licensed users, 100 licenses) follows a contact centre's week:
a morning ramp, a lunch dip, an afternoon peak, quiet weekends; some afternoons go over the
purchased count. Real checks run (the same orchestration as the demo; hourly on Thursdays,
every 4 hours otherwise), so the billing ledger holds every minute (each check measures the
minutes since the previous one) and the samples hold each check's forecast. docs/report.png is
this page, drawn by headless Chromium.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from license_monitor import runtime
from license_monitor.cli import run_check
from license_monitor.report import load_period_report, render
from simulator.demo import demo_settings, local_world, set_online

START = datetime(2026, 11, 12, 0, 0, tzinfo=UTC)  # a Thursday
END = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
USERS = 400
CAPACITY = 100
# A weekday as (hour, share of the day's peak); linear in between.
KNOTS = ((0, 0.04), (6, 0.05), (7, 0.35), (8.5, 0.8), (11.5, 0.88), (12.25, 0.75),
         (13.25, 0.82), (14.5, 1.0), (15.5, 0.97), (17, 0.6), (19, 0.3), (21, 0.08), (24, 0.04))
WEEKDAY_PEAK = (101, 97, 95, 99, 90, 30, 12)  # Monday .. Sunday, as a usual week


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def online_at(moment: datetime, rng: random.Random, levels: dict[int, float]) -> int:
    """Pool users logged in at `moment` in this simulated fortnight."""
    day = (moment - START).days
    if day not in levels:
        levels[day] = rng.gauss(1.0, 0.04)
    hour = moment.hour + moment.minute / 60
    share = next(v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
                 for (h0, v0), (h1, v1) in itertools.pairwise(KNOTS) if h0 <= hour <= h1)
    return max(0, round(WEEKDAY_PEAK[moment.weekday()] * levels[day] * share
                        + rng.gauss(0, 1)))


def play(out: Path, screenshot: Path | None) -> int:
    """Run the fortnight of checks, write the report, and draw it."""
    os.environ.setdefault("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "0")
    rng = random.Random(7)
    levels: dict[int, float] = {}
    with local_world(USERS, START) as (simulator, connection, receiver):
        settings = demo_settings(simulator, connection, receiver, CAPACITY)
        moment = START
        while moment <= END:
            simulator.org.now = moment
            set_online(simulator.org, online_at(moment, rng, levels), moment)
            moment += timedelta(minutes=15)
            simulator.org.now = moment
            if moment.hour == 0 and moment.minute == 0:
                print(f"{moment:%a %d %b}", flush=True)
            # Hourly on Thursdays (the forecast of the last one needs the earlier ones in
            # most hours), every 4 hours otherwise: each check measures the minutes since the
            # previous one, so the ledger holds every minute either way.
            if moment.minute == 0 and (moment.weekday() == 3 or moment.hour % 4 == 0):
                report = run_check(settings, dry_run=False, clock=_fixed(moment))
                if report.get("events"):
                    print(f"{report['checked_at']}: {', '.join(report['events'])}")
        services = runtime.Services.from_settings(settings)
        assert services.state is not None  # noqa: S101 (the demo has storage)
        page = load_period_report(services.state, settings, END, END.date())
        out.write_text(render(page), encoding="utf-8")
        print(f"{out}: billable peak {page.billing['billable_peak']}, "
              f"{len(receiver.delivered)} alerts delivered")
    if screenshot is not None:
        chromium = shutil.which("chromium")
        if chromium is None:
            print("chromium is not installed: no screenshot", file=sys.stderr)
            return 3
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(  # noqa: S603 (chromium from PATH, fixed arguments)
                [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 f"--user-data-dir={profile}", f"--screenshot={screenshot.resolve()}",
                 "--window-size=1100,2500", out.resolve().as_uri()],
                check=True, capture_output=True, timeout=120)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m simulator.report_demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    return play(args.out, args.screenshot)


if __name__ == "__main__":
    sys.exit(main())
