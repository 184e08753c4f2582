"""Serve a simulated Genesys Cloud org: python -m simulator --users 500 --seed 1."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from license_monitor.genesys.models import OFFLINE, format_timestamp, parse_timestamp
from simulator.generator import generate_org
from simulator.model import SimOrg
from simulator.scenario import load_scenario, save_scenario
from simulator.server import GenesysSimulator

# A live demo pre-generates this much future so `now` can follow the wall clock for a day.
LIVE_FUTURE_HOURS = 24.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Serve a simulated Genesys Cloud org on 127.0.0.1 for demos and tests.",
    )
    parser.add_argument("--users", type=int, default=500, help="users to generate (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--scenario", help="serve this scenario file instead of generating")
    parser.add_argument("--save-scenario", help="write the served org to this file first")
    parser.add_argument("--now", help="simulated current time (ISO-8601, default: wall clock)")
    parser.add_argument("--frozen", action="store_true",
                        help="keep the simulated time fixed instead of following the wall clock")
    parser.add_argument("--history-hours", type=float, default=24.0)
    parser.add_argument("--rate-limit", type=int, default=300,
                        help="requests per minute per token (0 = unlimited; default 300)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--client-id", default="sim-client-id")
    parser.add_argument("--client-secret", default="sim-client-secret")
    return parser


def suggested_capacity(org: SimOrg) -> int:
    """A purchased count for the simulated org: its concurrent license holders (at least 1)."""
    return max(1, sum(1 for user in org.active_users()
                      if any(lic.lower().startswith("cloudcx") for lic in user.licenses)))


def _follow_wall_clock(simulator: GenesysSimulator, stop: threading.Event) -> None:
    """Move the org's `now` to the wall clock once a second (a live demo)."""
    while not stop.wait(1.0):
        with simulator.lock:
            simulator.org.now = datetime.now(UTC).replace(microsecond=0)


def main(argv: Sequence[str] | None = None) -> int:
    """Build or load the org, serve it until interrupted, and print how to connect."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    live = not args.frozen and args.now is None and args.scenario is None
    org: SimOrg
    if args.scenario:
        org = load_scenario(args.scenario)
    else:
        now = parse_timestamp(args.now) if args.now else datetime.now(UTC)
        org = generate_org(args.users, seed=args.seed, now=now, history_hours=args.history_hours,
                           future_hours=LIVE_FUTURE_HOURS if live else 0)
    if args.save_scenario:
        save_scenario(org, args.save_scenario)
    simulator = GenesysSimulator(
        org,
        client_id=args.client_id,
        client_secret=args.client_secret,
        rate_limit_per_minute=args.rate_limit or None,
        latency_seconds=args.latency,
        host=args.host,
        port=args.port,
    )
    stop = threading.Event()
    with simulator:
        online = sum(1 for u in org.active_users() if org.current_presence(u) != OFFLINE)
        print(f"Genesys Cloud simulator: {len(org.users)} users, {online} logged in at "
              f"{format_timestamp(org.now)}{' (following the wall clock)' if live else ''}")
        print(f"  API URL:        {simulator.api_url}")
        print(f"  Login URL:      {simulator.login_url}  (token: POST /oauth/token)")
        print(f"  Client id:      {simulator.client_id}")
        print(f"  Client secret:  {simulator.client_secret}")
        # Pasted into a shell as it is, this line sets everything a dry-run check needs.
        print(f"  For the monitor: export GENESYS_API_URL={simulator.api_url} "
              f"GENESYS_LOGIN_URL={simulator.login_url} GENESYS_CLIENT_ID={simulator.client_id} "
              f"GENESYS_CLIENT_SECRET={simulator.client_secret} "
              f"LICENSE_CAPACITY={suggested_capacity(org)}")
        print("  Then:            python -m license_monitor check --dry-run   (or: doctor)")
        print("Press Ctrl+C to stop.", flush=True)
        if live:
            threading.Thread(target=_follow_wall_clock, args=(simulator, stop), daemon=True).start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
