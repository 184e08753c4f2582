"""The report page from a day of real checks, rendered in headless Chromium."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from license_monitor.cli import main
from license_monitor.report import load_period_report, render
from simulator.azurite import Azurite
from tests.fixtures.monitor import WORLD_START, World, at, check_at, online_from
from tests.integration.test_forecast_check import past_thursdays, store_history

CHROMIUM = shutil.which("chromium")
PERIOD = date(2026, 11, 1)


def chromium(*args: str) -> str:
    """Run headless Chromium on its own fresh profile; its stdout."""
    assert CHROMIUM is not None, "Chromium is installed by scripts/test (Debian's package)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=2000", *args],
            capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


class Page(HTMLParser):
    """What a test reads from the DOM Chromium dumps: figures, charts, top days."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.charts: dict[str, str | None] = {}
        self.empty: list[str] = []
        self.top_days: list[str] = []
        self.fetches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "dd" and found.get("data-figure"):
            self.figures[str(found["data-figure"])] = str(found["data-value"])
        if tag == "figure" and found.get("data-chart"):
            self.charts[str(found["data-chart"])] = found.get("data-drawn")
        if found.get("data-empty-chart"):
            self.empty.append(str(found["data-empty-chart"]))
        if tag == "tr" and found.get("data-day"):
            self.top_days.append(str(found["data-day"]))
        for name in ("src", "href"):
            if found.get(name):
                self.fetches.append(str(found[name]))


def parse(dom: str) -> Page:
    page = Page()
    page.feed(dom)
    return page


@pytest.fixture
def day_of_checks(world: Callable[..., World]) -> World:
    """Four Thursdays of history, then this Thursday's real checks, one hour over capacity."""
    w = world()  # capacity 100
    assert w.services.state is not None
    store_history(w.services.state, past_thursdays(4), 106, at(9, 50))
    store_history(w.services.state, [WORLD_START.replace(hour=0)], 106, at(9, 50))
    for moment, online in ((at(10, 0), 86), (at(10, 15), 88), (at(10, 30), 104),
                           (at(10, 45), 106), (at(11, 0), 104), (at(11, 15), 70),
                           (at(11, 30), 60)):
        online_from(w, online, moment - timedelta(minutes=15))
        check_at(w, moment)
    return w


def test_the_report_draws_every_chart_and_shows_the_ledgers_figures(
        day_of_checks: World, tmp_path: Path) -> None:
    w = day_of_checks
    assert w.services.state is not None
    last = w.results[-1].output
    assert isinstance(last, dict)
    page = load_period_report(w.services.state, w.settings, w.now + timedelta(days=6), PERIOD)
    out = tmp_path / "report.html"
    out.write_text(render(page), encoding="utf-8")
    text = out.read_text(encoding="utf-8")
    # Nothing to fetch: no src/href, no CSS url() or @import, only inline SVG.
    assert not re.search(r"\b(src|href)\s*=|url\(|@import", text)

    dom = parse(chromium("--dump-dom", out.as_uri()))
    ledger = w.services.state.billing.summary(PERIOD).figures(100)
    assert ledger["seconds_over_capacity"] > 0  # the day went over capacity
    for key in ("billable_peak", "billable_peak_upper", "seconds_over_capacity",
                "minutes_over_capacity"):
        assert dom.figures[key] == str(ledger[key]), key
        assert dom.figures[key] == str(last["billing"][key]), key  # the check JSON's figures
    assert dom.figures["capacity"] == "100"
    assert dom.figures["highest_peak"] == "106"
    # Every chart was laid out by the browser with its series drawn.
    assert set(dom.charts) == {"daily", "period", "busiest", "forecast"}
    assert dom.empty == []
    for key, drawn in dom.charts.items():
        assert drawn is not None, f"the {key} chart's script did not run"
        assert int(drawn) >= 2, f"the {key} chart drew {drawn} series"
    assert dom.top_days[0] == "2026-11-26"  # the top days table, then the forecast table
    assert dom.fetches == []


def test_report_command_writes_the_page_and_prints_its_figures(
        day_of_checks: World, tmp_path: Path, azurite: Azurite, table_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = day_of_checks
    for name, value in {
        "GENESYS_CLIENT_ID": w.simulator.client_id,
        "GENESYS_CLIENT_SECRET": w.simulator.client_secret,
        "GENESYS_API_URL": w.simulator.api_url, "GENESYS_LOGIN_URL": w.simulator.login_url,
        "LICENSE_CAPACITY": "100", "STATE_CONNECTION": azurite.connection_string,
        "STATE_TABLE": table_name,
    }.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "november.html"
    assert main(["report", "--period", "2026-11-26", "--out", str(target)], out, err) == 0
    ledger = w.services.state.billing.summary(PERIOD).figures(100) if w.services.state else {}
    assert out.getvalue() == (
        f"{target}: billing period from 2026-11-01, billable peak {ledger['billable_peak']} "
        f"(upper bound {ledger['billable_peak_upper']}), {ledger['seconds_over_capacity']} s "
        "over capacity, 1 days\n")
    assert "<svg" in target.read_text(encoding="utf-8")
    # A bad period is one sentence, and no file.
    bad = tmp_path / "bad.html"
    assert main(["report", "--period", "November", "--out", str(bad)], out, err) == 3
    assert "report failed: Invalid isoformat string: 'November'" in err.getvalue()
    assert not bad.exists()
