"""A new user's first minutes with the CLI, run as they run it: version, settings files, dates,
the simulator's printed line pasted into a shell, and a login host that is down."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator import GenesysSimulator
from simulator.demo import run

REPO = Path(__file__).resolve().parents[2]


def cli(args: list[str], env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m license_monitor ...` with none of the monitor's settings but `env`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "AzureWebJobs"))}
    return subprocess.run(
        [sys.executable, "-m", "license_monitor", *args], cwd=REPO, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False)


def simulator_env(sim: GenesysSimulator) -> dict[str, str]:
    return {"GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
            "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url}


def test_version_prints_the_packaged_version() -> None:
    done = cli(["--version"])
    assert done.returncode == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == f"concurrent-license-monitor {version}"


@pytest.mark.parametrize("argument", [["--since", "yesterday"],
                                      ["--since", "2026-11-01", "--until", "1/12/2026"]])
def test_a_bad_day_is_refused_with_the_format_before_any_setting_is_read(
    argument: list[str],
) -> None:
    # No settings at all: the day is what is wrong first, and what the user is told.
    done = cli(["billing", "rebuild", *argument])
    assert done.returncode == 3  # "unknown", never 2 (monitoring reads 2 as critical)
    assert "is not a day: write it as YYYY-MM-DD, e.g. 2026-11-01" in done.stderr
    assert "GENESYS_CLIENT_ID" not in done.stderr
    assert "isoformat" not in done.stderr


def test_a_settings_file_without_values_names_the_shape_expected(tmp_path: Path) -> None:
    flat = tmp_path / "settings.json"
    flat.write_text(json.dumps({"GENESYS_CLIENT_ID": "id", "LICENSE_CAPACITY": "10"}))
    done = cli(["check", "--dry-run", "--settings", str(flat)])
    assert done.returncode == 3
    assert 'it has no "Values": a settings file is shaped {"Values": {"NAME": "value", ...}}' \
        in done.stderr
    assert "GENESYS_CLIENT_ID is missing" not in done.stderr


def test_the_example_settings_file_runs_a_dry_run_as_shipped_without_storage(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    sim = simulator()
    # Only the connection to the simulator comes from the environment (environment wins);
    # everything else is the file as shipped, whose AzureWebJobsStorage no Azurite answers.
    done = cli(["check", "--dry-run", "--json", "--settings", "local.settings.example.json"],
               simulator_env(sim), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["level"] == "ok"
    assert report["capacity"] == 500


@pytest.fixture
def simulator_process() -> Iterator[str]:
    """`python -m simulator` as a user starts it; yields its "For the monitor:" line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--users", "60", "--port", "0", "--frozen"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "For the monitor:" in line:
                yield line.split("For the monitor:", 1)[1].strip()
                break
        else:
            pytest.fail("the simulator printed no 'For the monitor:' line")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)  # a loaded CI machine once needed more than 10 s


def test_the_simulators_printed_line_pasted_into_a_shell_runs_a_dry_run(
    simulator_process: str,
) -> None:
    assert "LICENSE_CAPACITY=" in simulator_process
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("GENESYS_", "STATE_", "ALERT_", "LICENSE_", "AzureWebJobs"))}
    done = subprocess.run(
        ["bash", "-c", f"{simulator_process}\n{sys.executable} -m license_monitor check "
                       "--dry-run"],
        cwd=REPO, env=base, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " OK " in done.stdout


class DownHost:
    """A login host that accepts connections and drops them unanswered; counts each one."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self.times: list[float] = []  # monotonic time of each connection
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            self.times.append(time.monotonic())
            connection.close()

    def stop(self) -> None:
        self._socket.close()


def test_a_login_host_that_is_down_is_reported_with_the_real_attempts_and_time(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    sim = simulator()
    down = DownHost()
    try:
        env = {**simulator_env(sim), "GENESYS_LOGIN_URL": f"http://127.0.0.1:{down.port}",
               "LICENSE_CAPACITY": "10"}
        done = cli(["check", "--dry-run", "--json"], env)
    finally:
        down.stop()
    assert done.returncode == 3
    error = json.loads(done.stdout)["error"]
    said = re.search(r"after (\d+) attempts over (\d+) s", error)
    assert said is not None, error
    assert int(said.group(1)) == down.connections
    # The seconds said are the seconds the host saw being tried: first to last attempt (the
    # client gives up right after the last one fails), whatever the machine's load.
    spent = down.times[-1] - down.times[0]
    assert spent - 1 <= int(said.group(2)) <= spent + 1.5, (error, spent)


def test_the_demo_explains_its_figures_once_and_ends_with_the_next_step() -> None:
    out = io.StringIO()
    assert run(out=out, users=400) == 0
    text = out.getvalue()
    legend, _, checks = text.partition("[1] ")
    # Said once, before the first check: each figure of the line, in plain words.
    assert "billable peak     what Genesys bills for the month so far" in legend
    assert "It starts at 0 because no level has been" in legend
    assert "at least 30 minutes in total" in legend
    assert "clear level       an alert ends only when the peak falls below 85%" in legend
    assert "active in window  everyone logged in at any time" in legend
    assert "How to read" not in checks
    # The first check's billable peak of 0 is the one the legend explains.
    assert "billable peak 0" in checks.splitlines()[1]
    assert "below the 85% clear level" in checks
    ending = text.rstrip().splitlines()[-4:]
    assert "license_monitor doctor" in ending[1]
    assert "check --dry-run" in ending[2]
    assert "azd up" in ending[3]
