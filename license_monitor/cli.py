"""Command line: `python -m license_monitor check`, `doctor`, `billing rebuild`, `peak-users`
and `idle`.

`check` runs the same license_check orchestration as the Function App, in this process, through
the Durable SDK's replay engine; exit codes follow the monitoring-plugin convention.
`doctor [--send-test]` checks, one line per requirement, that a real check would work.
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
from typing import Any, NoReturn, TextIO

from license_monitor import __version__
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
    if "Values" not in document:
        raise SettingsFileError(
            'it has no "Values": a settings file is shaped {"Values": {"NAME": "value", ...}}, '
            "like local.settings.example.json")
    values = document["Values"]
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


def day_argument(text: str) -> date:
    """An argparse type for days: YYYY-MM-DD, or a one-sentence error with the format."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day: write it as YYYY-MM-DD, e.g. 2026-11-01") from None


class _ArgumentParser(argparse.ArgumentParser):
    """Usage errors exit 3 ("unknown"), never 2: monitoring reads 2 as critical."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(3, f"{self.prog}: error: {message}\n")


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
        ("agents/admins split pending (roster building)" if report.get("split") == "pending"
         else f"agents {peak['agents']} admins {peak['admins']}"),
        f"now {now['total']}",
        f"active in window {report['window_distinct']}",
    ]
    if billing.get("billable_peak") is not None:
        parts.append(f"billable peak {billing['billable_peak']}")
    idle = report.get("idle")
    if isinstance(idle, Mapping) and idle.get("count") is not None:
        parts.append(f"idle {idle['count']}")
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
    settings: Settings, *, dry_run: bool, clock: Callable[[], datetime] | None = None,
    then: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one license_check orchestration in process and return its output.

    `then` gets the output at once; a roster refresh the check started in the background is
    then waited for (a process that exits would lose it), saying so on stderr.
    """
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
        output: dict[str, Any] = (
            result.output if result.runtime_status == "Completed"
            and isinstance(result.output, dict) else {
                "checked_at": format_check_time(datetime.now(UTC)), "level": "unknown",
                "error": result.error or "the check did not complete", "events": [],
                "notifications": []})
        if then is not None:
            then(output)
        if services.roster_refresh.running:
            print("Building the roster's agent/admin classes in the background before "
                  "exiting (Ctrl-C leaves them to the next check) ...", file=sys.stderr)
            services.roster_refresh.wait()
    finally:
        runtime.install(None)
        services.client.budget.close()  # a process beside this one may use it all again
    return output


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
        since, until = args.since, args.until
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


def _load_settings(args: argparse.Namespace) -> Settings:
    environ = dict(os.environ)
    if args.settings:
        load_local_settings(Path(args.settings), environ)
    return Settings.from_env(environ)


def _peak_users(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from license_monitor import peak_users, runtime  # noqa: PLC0415 (builds clients: only when asked)
    from license_monitor.user_lists import (  # noqa: PLC0415
        peak_users_csv,
        peak_users_text,
        progress_bar,
    )

    now = datetime.now(UTC)
    try:
        settings = _load_settings(args)
        chosen = args.day or args.period  # days parsed (day_argument) before the settings
        span = (peak_users.day_span(chosen, now) if args.day
                else peak_users.period_span(chosen, settings.billing_anchor_day, now))
        services = runtime.Services.from_settings(settings, require_state=False)
        with progress_bar(err, enabled=not args.json and not args.csv) as advance:
            result = peak_users.peak_users(services, span, level=args.level, on_page=advance,
                                           now=now)
    except ConfigError as problem:
        print(problem, file=err)
        return 3
    except Exception as problem:
        print(f"peak-users failed: {problem}", file=err)
        return 3
    if args.json:
        out.write(json.dumps(result) + "\n")
    elif args.csv:
        out.write(peak_users_csv(result))
    else:
        out.write(peak_users_text(result))
    return 0


def _idle(args: argparse.Namespace, out: TextIO, err: TextIO, inp: TextIO) -> int:
    from license_monitor import idle_users, runtime  # noqa: PLC0415 (builds clients: only when asked)
    from license_monitor.user_lists import idle_csv, idle_text  # noqa: PLC0415

    try:
        settings = _load_settings(args)
        services = runtime.Services.from_settings(settings, require_state=False)
        if args.sign_out:
            return _sign_out(args, services, out, err, inp)
        result = idle_users.idle_now(services, datetime.now(UTC))
    except ConfigError as problem:
        print(problem, file=err)
        return 3
    except Exception as problem:
        print(f"idle failed: {problem}", file=err)
        return 3
    if args.json:
        out.write(json.dumps(result) + "\n")
    elif args.csv:
        out.write(idle_csv(result))
    else:
        out.write(idle_text(result))
    return 0


def _sign_out(args: argparse.Namespace, services: Any, out: TextIO, err: TextIO,
              inp: TextIO) -> int:
    """Sign out exactly the users named, after a confirmation unless --yes; never automatic."""
    from license_monitor import idle_users  # noqa: PLC0415
    from license_monitor.peak_users import read_directory  # noqa: PLC0415

    names = dict(read_directory(services).names)
    named = list(dict.fromkeys(args.sign_out))
    listed = ", ".join(f"{names.get(uid) or 'unknown user'} ({uid})" for uid in named)
    if not args.yes:
        if not inp.isatty():
            print("refusing to sign anybody out without a confirmation: run it in a terminal, "
                  "or add --yes", file=err)
            return 3
        err.write(f"Sign out {len(named)} user(s): {listed}? Their sessions end now and "
                  "anything unsaved in their clients is lost. [y/N] ")
        err.flush()
        if inp.readline().strip().lower() not in ("y", "yes"):
            print("nobody was signed out", file=err)
            return 3
    logging.getLogger(idle_users.__name__).setLevel(logging.WARNING)  # the audit lines
    outcomes = idle_users.sign_out(services, named, names)
    for outcome in outcomes:
        who = f"{outcome.user_id} ({outcome.name or 'name unknown'})"
        out.write(f"signed out {who}\n" if outcome.error is None
                  else f"NOT signed out {who}: {outcome.error}\n")
    return 0 if all(outcome.error is None for outcome in outcomes) else 3


def _report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`report`: the billing period on one self-contained HTML page (docs/report.md)."""
    from license_monitor import report, runtime  # noqa: PLC0415 (pygal only when asked)

    try:
        settings = _load_settings(args)
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
    shown: list[dict[str, Any]] = []

    def show(report: dict[str, Any]) -> None:
        shown.append(report)
        if args.json:
            out.write(json.dumps(report) + "\n")
        else:
            out.write(summary_line(report) + "\n")
            for sent in [one for head in report.get("notifications", [])
                         for one in (head, *head.get("then", ()))]:
                state = ("delivered" if sent.get("delivered")
                         else f"NOT delivered ({sent.get('error')})")
                out.write(f"  alert {sent['event']} on {sent['channel']}: {state}\n")
        out.flush()

    if report is None:
        try:
            report = run_check(settings, dry_run=args.dry_run, then=show)
        except Exception as problem:
            report = _unknown(str(problem))
    if not shown:
        show(report)
    return exit_code(str(report.get("level", "unknown")))


def _doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from license_monitor.doctor import run_doctor  # noqa: PLC0415 (builds clients: only when asked)

    environ = dict(os.environ)
    try:
        if args.settings:
            load_local_settings(Path(args.settings), environ)
        settings = Settings.from_env(environ)
    except ConfigError as problem:
        for text in problem.problems:
            out.write(f"{'MISSING':<8} settings: {text}\n")
        out.write(f"not ready: {len(problem.problems)} setting problem(s) to fix first\n")
        return 3
    except (OSError, ValueError) as problem:
        print(f"cannot read the settings file {args.settings}: {problem}", file=err)
        return 3
    report = run_doctor(settings, send_test=args.send_test)
    for line in report.lines():
        out.write(line + "\n")
    return 0 if report.passed else 3


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _add_idle(commands: Any) -> None:
    idle = commands.add_parser(
        "idle", help="pool users logged in without working for IDLE_AFTER_MINUTES, now")
    shape = idle.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print exactly one JSON object")
    shape.add_argument("--csv", action="store_true", help="print one CSV row per user")
    idle.add_argument("--sign-out", nargs="+", metavar="USER_ID",
                      help="end every session of exactly these users (never automatic)")
    idle.add_argument("--yes", action="store_true",
                      help="sign out without asking for a confirmation")
    idle.add_argument("--settings", metavar="FILE",
                      help="read settings from a local.settings.json (environment wins)")
    idle.add_argument("-v", "--verbose", action="count", default=0,
                      help="log to stderr (-vv: with debug detail)")


def _add_peak_users(commands: Any) -> None:
    peak = commands.add_parser(
        "peak-users", help="the users a day's or a billing period's peak is attributed to")
    when = peak.add_mutually_exclusive_group(required=True)
    when.add_argument("--day", metavar="YYYY-MM-DD", type=day_argument,
                      help="a UTC day: its highest level held 30 minutes")
    when.add_argument("--period", metavar="YYYY-MM-DD", type=day_argument,
                      help="the billing period holding this day: its billable peak")
    peak.add_argument("--level", type=_positive, metavar="N",
                      help="attribute this level instead of the one held 30 minutes")
    shape = peak.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print exactly one JSON object")
    shape.add_argument("--csv", action="store_true", help="print one CSV row per user")
    peak.add_argument("--settings", metavar="FILE",
                      help="read settings from a local.settings.json (environment wins)")
    peak.add_argument("-v", "--verbose", action="count", default=0,
                      help="log to stderr (-vv: with debug detail)")


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
    inp: TextIO | None = None,
) -> int:
    """Entry point of `python -m license_monitor`."""
    parser = _ArgumentParser(
        prog="python -m license_monitor",
        description="Concurrent License Monitor for Genesys Cloud")
    parser.add_argument("--version", action="version",
                        version=f"concurrent-license-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run one license check now")
    check.add_argument("--json", action="store_true", help="print exactly one JSON object")
    check.add_argument("--dry-run", action="store_true",
                       help="measure and decide, but send nothing and write no state")
    check.add_argument("--settings", metavar="FILE",
                       help="read settings from a local.settings.json (environment wins)")
    check.add_argument("-v", "--verbose", action="count", default=0,
                       help="log to stderr (-vv: with debug detail)")
    doctor = commands.add_parser(
        "doctor", help="check credentials, permissions, storage and channels before deploying")
    doctor.add_argument("--send-test", action="store_true",
                        help="send a test message to each configured alert channel")
    doctor.add_argument("--settings", metavar="FILE",
                        help="read settings from a local.settings.json (environment wins)")
    doctor.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-vv: with debug detail)")
    billing_command = commands.add_parser("billing", help="the billing period's figures")
    billing_actions = billing_command.add_subparsers(dest="action", required=True)
    rebuild = billing_actions.add_parser(
        "rebuild", help="measure the minutes since a day again and replace the stored ones")
    rebuild.add_argument("--since", required=True, metavar="YYYY-MM-DD", type=day_argument,
                         help="first day (UTC) to measure again")
    rebuild.add_argument("--until", metavar="YYYY-MM-DD", type=day_argument,
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
    _add_peak_users(commands)
    _add_idle(commands)
    args = parser.parse_args(argv)
    levels = {0: logging.ERROR, 1: logging.INFO}
    logging.basicConfig(
        level=levels.get(args.verbose, logging.DEBUG), stream=err,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from license_monitor.runtime import quiet_http_logging  # noqa: PLC0415 (see run_check)

    quiet_http_logging()
    if args.command == "idle" and args.yes and not args.sign_out:
        parser.error("--yes goes with --sign-out")
    from license_monitor.runtime import budgets_given_back  # noqa: PLC0415

    with budgets_given_back():  # the app beside this run may use the whole budget again
        return _run(args, out, err, inp)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, inp: TextIO | None) -> int:
    if args.command == "billing":
        return _billing_rebuild(args, out, err)
    if args.command == "report":
        return _report(args, out, err)
    if args.command == "doctor":
        return _doctor(args, out, err)
    if args.command == "peak-users":
        return _peak_users(args, out, err)
    if args.command == "idle":
        return _idle(args, out, err, sys.stdin if inp is None else inp)
    return _check(args, out, err)
