"""Command line: `python -m license_monitor check` and `python -m license_monitor billing rebuild`.

`check` runs the same license_check orchestration as the Function App, in this process, through
the Durable SDK's replay engine; exit codes follow the monitoring-plugin convention.
`billing rebuild --since YYYY-MM-DD` measures the billing minutes since that day again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from license_monitor.roster import ALL_USERS_NOTE, POOL_ALL_USERS
from license_monitor.settings import ConfigError, Settings
from license_monitor.times import format_check_time

EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


def exit_code(level: str) -> int:
    """0 ok, 1 warning, 2 critical, 3 unknown (the check failed)."""
    return EXIT_CODES.get(level, 3)


class SettingsFileError(ValueError):
    """A --settings file that is valid JSON but not shaped like local.settings.json."""


def load_local_settings(path: Path, environ: dict[str, str]) -> None:
    """Add the Values of a local.settings.json to environ (real environment variables win).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON (json.JSONDecodeError) or not shaped like
            {"Values": {"NAME": "value", ...}} (SettingsFileError, one sentence that never
            quotes a value: values hold secrets).
    """
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except RecursionError:
        raise SettingsFileError("it nests JSON too deeply to be a settings file") from None
    if not isinstance(document, dict):
        raise SettingsFileError(
            f'it holds a JSON {_json_kind(document)}, not an object like {{"Values": {{...}}}}')
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsFileError(
            f'its "Values" is a JSON {_json_kind(values)}, not an object of setting names '
            "and values")
    for key, value in values.items():
        # The Functions host reads Values as strings; a nested object cannot be an app setting.
        if value is None or isinstance(value, (dict, list)):
            name = key if len(key) <= 60 else key[:60] + "\u2026"
            raise SettingsFileError(
                f'the setting "{name}" in "Values" is a JSON {_json_kind(value)}, not a string '
                "or number")
    for key, value in values.items():
        environ.setdefault(key, str(value))


def _json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's own words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def summary_line(report: Mapping[str, Any]) -> str:
    """One line a person reads: level, figures, events."""
    level = str(report.get("level", "unknown")).upper()
    if "error" in report:
        return f"{report.get('checked_at')}  {level}  check failed: {report['error']}"
    peak = report["concurrent"]["peak"]
    now = report["concurrent"]["now"]
    billing = report.get("billing") or {}
    parts = [
        f"{report['checked_at']}  {level:<8}",
        f"peak {peak['total']}/{report['capacity']} ({report['utilization_percent']}%)",
        f"agents {peak['agents']} admins {peak['admins']}",
        f"now {now['total']}",
        f"active in window {report['window_distinct']}",
    ]
    if billing.get("billable_peak") is not None:
        parts.append(f"billable peak {billing['billable_peak']}")
    gauge = report.get("gauge")
    if isinstance(gauge, Mapping) and gauge.get("value") is not None:
        parts.append(f"gauge {gauge['value']} (drift {int(gauge.get('drift') or 0):+d})")
    forecast = report.get("forecast")
    if isinstance(forecast, Mapping):
        parts.append(f"forecast {forecast['peak']} ({forecast['low']}-{forecast['high']}) "
                     f"at {str(forecast['at'])[11:16]} UTC")
    elif report.get("no_forecast"):
        parts.append(f"no forecast: {report['no_forecast']}")
    if report.get("pool") == POOL_ALL_USERS:
        parts.append(ALL_USERS_NOTE)
    if report.get("events"):
        parts.append("events: " + ", ".join(report["events"]))
    return "  ".join(parts)


def run_check(
    settings: Settings, *, dry_run: bool, clock: Callable[[], datetime] | None = None
) -> dict[str, Any]:
    """Run one license_check orchestration in process and return its output."""
    # The in-process host lives with the Durable app (it drives the registered orchestrator);
    # importing it here keeps the domain importable without the Functions runtime.
    from function_app import app  # noqa: PLC0415
    from license_monitor import runtime  # noqa: PLC0415
    from orchestrators.replay_host import ReplayHost  # noqa: PLC0415
    from orchestrators.starters import singleton_id  # noqa: PLC0415

    services = runtime.Services.from_settings(settings, require_state=not dry_run)
    if clock is not None:
        # A check at a chosen time: its deadline runs in real time from there.
        services.clock = runtime.clock_from(clock())
    runtime.install(services)
    try:
        result = ReplayHost(app, clock=clock).run(
            "license_check", {"dry_run": dry_run, "trigger": "cli"},
            instance_id=singleton_id(settings.client_key))
    finally:
        runtime.install(None)
    if result.runtime_status != "Completed" or not isinstance(result.output, dict):
        return {"checked_at": format_check_time(datetime.now(UTC)),
                "level": "unknown", "error": result.error or "the check did not complete",
                "events": [], "notifications": []}
    return result.output


def _unknown(error: str) -> dict[str, Any]:
    return {"checked_at": format_check_time(datetime.now(UTC)),
            "level": "unknown", "error": error, "events": [], "notifications": []}


def _billing_rebuild(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from license_monitor import runtime  # noqa: PLC0415 (builds clients: only when asked)
    from license_monitor.rebuild import rebuild_billing  # noqa: PLC0415

    environ = dict(os.environ)
    try:
        if args.settings:
            load_local_settings(Path(args.settings), environ)
        settings = Settings.from_env(environ)
        since = date.fromisoformat(args.since)
        until = date.fromisoformat(args.until) if args.until else None
        rebuilt = rebuild_billing(runtime.Services.from_settings(settings), since,
                                  datetime.now(UTC), until)
    except ConfigError as problem:
        print(problem, file=err)
        return 3
    except Exception as problem:
        print(f"billing rebuild failed: {problem}", file=err)
        return 3
    capacity = settings.license_capacity
    if args.json:
        out.write(json.dumps({"since": since.isoformat(), "periods": [{
            "period_start": item.period_start.isoformat(), "minutes_measured": item.minutes,
            "before": item.before.figures(capacity), "after": item.after.figures(capacity),
        } for item in rebuilt]}) + "\n")
        return 0
    for item in rebuilt:
        out.write(f"billing period from {item.period_start.isoformat()}: billable peak "
                  f"{item.before.billable_peak} -> {item.after.billable_peak} (by whole minutes "
                  f"{item.before.billable_peak_upper} -> {item.after.billable_peak_upper}), "
                  f"{item.minutes} minutes measured again\n")
    return 0


def _report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`report`: the billing period on one self-contained HTML page (docs/report.md)."""
    from license_monitor import report, runtime  # noqa: PLC0415 (pygal only when asked)

    environ = dict(os.environ)
    try:
        if args.settings:
            load_local_settings(Path(args.settings), environ)
        settings = Settings.from_env(environ)
        period = date.fromisoformat(args.period) if args.period else None
        services = runtime.Services.from_settings(settings)
        assert services.state is not None  # noqa: S101 (required above)
        page = report.load_period_report(services.state, settings, datetime.now(UTC), period)
        Path(args.out).write_text(report.render(page), encoding="utf-8")
    except ConfigError as problem:
        print(problem, file=err)
        return 3
    except Exception as problem:
        print(f"report failed: {problem}", file=err)
        return 3
    billing = page.billing
    out.write(f"{args.out}: billing period from {billing['period_start']}, billable peak "
              f"{billing['billable_peak']} (upper bound {billing['billable_peak_upper']}), "
              f"{billing['seconds_over_capacity']} s over capacity, {len(page.days)} days\n")
    return 0


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    environ = dict(os.environ)
    report: dict[str, Any] | None = None
    try:
        if args.settings:
            load_local_settings(Path(args.settings), environ)
        settings = Settings.from_env(environ)
    except ConfigError as problem:
        print(problem, file=err)
        report = _unknown(f"the settings are invalid ({len(problem.problems)} problem(s), "
                          "listed on stderr)")
    except (OSError, ValueError) as problem:  # unreadable or malformed --settings file
        report = _unknown(f"cannot read the settings file {args.settings}: {problem}")
        print(report["error"], file=err)
    if report is None:
        try:
            report = run_check(settings, dry_run=args.dry_run)
        except Exception as problem:
            report = _unknown(str(problem))
    if args.json:
        out.write(json.dumps(report) + "\n")
    else:
        out.write(summary_line(report) + "\n")
        for sent in [one for head in report.get("notifications", [])
                     for one in (head, *head.get("then", ()))]:
            state = "delivered" if sent.get("delivered") else f"NOT delivered ({sent.get('error')})"
            out.write(f"  alert {sent['event']} on {sent['channel']}: {state}\n")
    return exit_code(str(report.get("level", "unknown")))


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Entry point of `python -m license_monitor`."""
    parser = argparse.ArgumentParser(
        prog="python -m license_monitor",
        description="Concurrent License Monitor for Genesys Cloud")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run one license check now")
    check.add_argument("--json", action="store_true", help="print exactly one JSON object")
    check.add_argument("--dry-run", action="store_true",
                       help="measure and decide, but send nothing and write no state")
    check.add_argument("--settings", metavar="FILE",
                       help="read settings from a local.settings.json (environment wins)")
    check.add_argument("-v", "--verbose", action="count", default=0,
                       help="log to stderr (-vv: with debug detail)")
    billing_command = commands.add_parser("billing", help="the billing period's figures")
    billing_actions = billing_command.add_subparsers(dest="action", required=True)
    rebuild = billing_actions.add_parser(
        "rebuild", help="measure the minutes since a day again and replace the stored ones")
    rebuild.add_argument("--since", required=True, metavar="YYYY-MM-DD",
                         help="first day (UTC) to measure again")
    rebuild.add_argument("--until", metavar="YYYY-MM-DD",
                         help="stop at the start of this day (UTC); default: now")
    rebuild.add_argument("--json", action="store_true", help="print exactly one JSON object")
    rebuild.add_argument("--settings", metavar="FILE",
                         help="read settings from a local.settings.json (environment wins)")
    rebuild.add_argument("-v", "--verbose", action="count", default=0,
                         help="log to stderr (-vv: with debug detail)")
    report = commands.add_parser(
        "report", help="the billing period on one self-contained HTML page")
    report.add_argument("--period", metavar="YYYY-MM-DD",
                        help="a day of the billing period to show (UTC); default: the current")
    report.add_argument("--out", required=True, metavar="FILE.html", help="where to write it")
    report.add_argument("--settings", metavar="FILE",
                        help="read settings from a local.settings.json (environment wins)")
    report.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-vv: with debug detail)")
    args = parser.parse_args(argv)
    levels = {0: logging.ERROR, 1: logging.INFO}
    logging.basicConfig(
        level=levels.get(args.verbose, logging.DEBUG), stream=err,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from license_monitor.runtime import quiet_http_logging  # noqa: PLC0415 (see run_check)

    quiet_http_logging()
    if args.command == "billing":
        return _billing_rebuild(args, out, err)
    if args.command == "report":
        return _report(args, out, err)
    return _check(args, out, err)
