"""Soak: the month simulation (tests/fixtures/month.py) over many seeds, against ground truth.

    python -m benchmarks.month_soak --seeds 200 [--first 0]

Prints per seed the seconds compared, the mismatches and the faults injected, then a total.
Starts its own Azurite (npm ci first) on a free port.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from simulator.azurite import start_azurite
from tests.fixtures.month import build, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args(argv)
    seconds = mismatched = checks = 0
    started = time.monotonic()
    with start_azurite() as azurite:
        for seed in range(args.first, args.first + args.seeds):
            scenario = build(seed)
            outcome = run(scenario, azurite_port=azurite.port,
                          table=f"soak{uuid.uuid4().hex[:12]}")
            seconds += outcome.seconds_compared
            checks += outcome.checks
            mismatched += len(outcome.mismatches)
            print(f"seed {seed}: {outcome.seconds_compared} s compared, "
                  f"{len(outcome.mismatches)} mismatches, {outcome.checks} checks "
                  f"(every {scenario.interval} min, {scenario.window}-minute window); "
                  f"faults: {', '.join(outcome.faults)}", flush=True)
            for line in outcome.mismatches:
                print(f"    {line}", flush=True)
    print(f"total: {args.seeds} seeds, {seconds} s compared, {mismatched} mismatches, "
          f"{checks} checks, {time.monotonic() - started:.0f} s")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
