"""Alerting through the real orchestration: every channel at once, failures, overage, quiet hours.

Each check is the license_check orchestration run by the replay host against the Genesys
simulator, Azurite (directly or through a proxy that can fail), local HTTP receivers and a
TLS Graph look-alike reached through msal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from license_monitor.cli import summary_line
from license_monitor.state import StateStore
from license_monitor.times import minute_key, parse_time
from simulator import Fault
from simulator.azurite import connection_string
from simulator.demo import set_online
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.fixtures.monitor import WEBHOOK_SECRET, World, at, check_at
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.storage_proxy import StorageProxy

LINK = "https://monitor.example/api/license-check"
ROUTING_KEY = "PDROUTINGKEY0000111122223333abcd"


@dataclass
class Channels:
    """The receivers of every channel but the world's own webhook."""

    teams: HttpReceiver
    slack: HttpReceiver
    pagerduty: HttpReceiver
    graph: GraphServer

    def settings(self) -> dict[str, str]:
        return {
            "TEAMS_WEBHOOK_URL": self.teams.url,
            "SLACK_WEBHOOK_URL": self.slack.url,
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "PAGERDUTY_EVENTS_URL": self.pagerduty.url,
            "ALERT_EMAIL_TO": "it-oncall@contoso.example",
            "ALERT_EMAIL_FROM": "license-monitor@contoso.example",
            "GRAPH_TENANT_ID": TENANT,
            "GRAPH_CLIENT_ID": CLIENT_ID,
            "GRAPH_CLIENT_SECRET": CLIENT_SECRET,
            "GRAPH_AUTHORITY_URL": self.graph.authority_url,
            "GRAPH_API_URL": self.graph.api_url,
            "ORG_NAME": "Contoso",
            "ALERT_LINK_URL": LINK,
        }


@pytest.fixture
def every_channel(
    world: Callable[..., World], webhook_receiver: Callable[..., HttpReceiver],
    graph_server: Callable[..., GraphServer], graph_ca: tuple[trustme.CA, Path],
) -> Callable[..., tuple[World, Channels]]:
    """Factory: a world with all five channels on (plus any extra settings)."""

    def make(**extra: str) -> tuple[World, Channels]:
        channels = Channels(
            teams=webhook_receiver(status=202, path="/workflows/abc/triggers/manual?sig=s3cr3t"),
            slack=webhook_receiver(path="/services/T000/B000/s3cr3t-slack"),
            pagerduty=webhook_receiver(status=202, path="/v2/enqueue"),
            graph=graph_server(),
        )
        w = world(**{**channels.settings(), **extra})
        # msal reaches the local TLS authority through the channels' session: trust the test CA
        # and nothing from the environment.
        w.services.http.verify = str(graph_ca[1])
        w.services.http.trust_env = False
        return w, channels

    return make


def webhook_events(w: World) -> list[str]:
    return [item.body["event"] for item in w.receiver.delivered]






# ---- every channel ----------------------------------------------------------------------------

def test_every_channel_gets_breach_escalation_and_resolution_once_each(
    every_channel: Callable[..., tuple[World, Channels]],
) -> None:
    w, channels = every_channel()
    levels = []
    for online in (70, 92, 93, 97, 98, 88, 40, 40):
        w.at_level(online)
        report = w.check()
        levels.append(report["level"])
        assert all(sent["delivered"] for sent in report["notifications"]), report
    assert levels == ["ok", "warning", "warning", "critical", "critical", "warning", "ok", "ok"]

    assert webhook_events(w) == ["breach", "escalation", "resolved"]
    assert [item.body["attachments"][0]["content"]["body"][0]["text"].split(":")[1].strip()
            for item in channels.teams.delivered] == [
        "License breach (WARNING)", "License breach escalated (CRITICAL)",
        "License breach resolved"]
    assert [item.body["blocks"][0]["text"]["text"] for item in channels.slack.delivered] == [
        "Contoso: License breach (WARNING)", "Contoso: License breach escalated (CRITICAL)",
        "Contoso: License breach resolved"]
    alert_id = w.receiver.delivered[0].body["alert_id"]
    assert [(item.body["event_action"], item.body["dedup_key"],
             item.body.get("payload", {}).get("severity"))
            for item in channels.pagerduty.delivered] == [
        ("trigger", alert_id, "warning"), ("trigger", alert_id, "critical"),
        ("resolve", alert_id, None)]
    assert [mail.body["message"]["subject"].split(":")[1].strip()
            for mail in channels.graph.delivered] == [
        "License breach (WARNING)", "License breach escalated (CRITICAL)",
        "License breach resolved"]
    assert len(channels.graph.token_forms) == 1  # one msal token for the three emails

    # Every message carries the billable peak so far and the manual-check link.
    breach = w.receiver.delivered[0].body
    assert breach["billing"]["billable_peak"] == breach["billable_peak"]
    assert breach["billing"]["period_start"] == "2026-11-01"
    assert breach["link"] == LINK
    assert breach["summary"] == (
        f"Contoso: License breach (WARNING) at 08:40 UTC: 92 of 100 concurrent licenses in use "
        f"(92.0%), warning threshold 90%; {breach['agents']} agents, {breach['admins']} admins; "
        f"billable peak so far {breach['billable_peak']}. Manual check: {LINK}")
    assert f"billable peak so far {breach['billable_peak']}" in (
        channels.slack.delivered[0].body["text"])
    assert channels.pagerduty.delivered[0].body["payload"]["summary"] == breach["summary"]


def test_secrets_never_reach_orchestration_history_outbox_or_logs(
    every_channel: Callable[..., tuple[World, Channels]], caplog: pytest.LogCaptureFixture,
) -> None:
    w, channels = every_channel()
    channels.slack.set_down(True, refuse_connections=True)  # errors are recorded too
    # Our own logs at every level; libraries' at INFO (urllib3's DEBUG lines print request
    # paths; host.json keeps the default at Information in Azure).
    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger="license_monitor")
    for online in (92, 97, 40):
        w.at_level(online)
        w.check()

    assert w.services.state is not None
    stored = json.dumps(w.services.state.alerts.outbox()) + json.dumps(
        w.services.state.alerts.load_state().to_dict())
    history = "".join(json.dumps(result.history) + json.dumps(result.output)
                      for result in w.results)
    for secret in ("s3cr3t", ROUTING_KEY, CLIENT_SECRET, WEBHOOK_SECRET, "graph-token-"):
        assert secret not in history
        assert secret not in stored
        assert secret not in caplog.text


def test_one_channel_down_never_blocks_the_others_and_gets_its_alert_once_after(
    every_channel: Callable[..., tuple[World, Channels]],
) -> None:
    w, channels = every_channel()
    channels.slack.set_down(True, refuse_connections=True)
    w.at_level(93)
    first = w.check()

    failed = [sent for sent in first["notifications"] if not sent["delivered"]]
    assert [(sent["channel"], sent["event"]) for sent in failed] == [("slack", "breach")]
    assert failed[0]["error"].startswith("the Slack webhook at 127.0.0.1 could not be reached")
    assert len(first["notifications"]) == 5
    assert webhook_events(w) == ["breach"]
    assert len(channels.teams.delivered) == len(channels.pagerduty.delivered) == 1
    assert len(channels.graph.delivered) == 1

    channels.slack.set_down(False)
    w.at_level(93)
    second = w.check()
    w.at_level(93)
    third = w.check()

    assert second["notifications"] == [{"event": "breach", "channel": "slack", "delivered": True}]
    assert third["notifications"] == []
    assert [item.body["blocks"][0]["text"]["text"] for item in channels.slack.delivered] == [
        "Contoso: License breach (WARNING)"]
    assert webhook_events(w) == ["breach"]  # the others were not sent again
    assert len(channels.teams.delivered) == len(channels.pagerduty.delivered) == 1


# ---- monitor health ---------------------------------------------------------------------------

def test_three_failed_checks_alert_once_naming_the_cause_and_recovery_once(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(97)
    assert w.check()["level"] == "critical"
    assert w.services.state is not None
    episode = w.services.state.alerts.load_state().episode_id

    w.simulator.inject(Fault(kind="status", path="/api/v2/analytics", status=503, times=None))
    reports = []
    for _ in range(2):
        w.at_level(20)  # usage fell, but nobody can see it
        reports.append(w.check())
    w.simulator.clear_faults()
    real_secret = w.simulator.client_secret
    w.simulator.client_secret = "rotated-by-someone-else"
    w.simulator.expire_all_tokens()
    w.at_level(20)
    reports.append(w.check())

    assert [report["level"] for report in reports] == ["unknown"] * 3
    assert [report["cause"] for report in reports] == [
        "platform_unavailable", "platform_unavailable", "bad_credentials"]
    assert [report["events"] for report in reports] == [[], [], ["monitor_failing"]]
    assert webhook_events(w) == ["breach", "monitor_failing"]
    failing = w.receiver.delivered[1].body
    assert failing["cause"] == "bad_credentials"
    assert failing["message"].startswith(
        "License checks failed 3 times in a row (bad credentials); last error: Genesys Cloud "
        "rejected the client id or secret")
    state = w.services.state.alerts.load_state()
    assert (state.level, state.episode_id) == ("critical", episode)

    w.simulator.client_secret = real_secret
    w.at_level(97)
    recovered = w.check()
    w.at_level(97)
    steady = w.check()

    assert recovered["events"] == ["monitor_recovered"]
    assert steady["events"] == []
    assert webhook_events(w) == ["breach", "monitor_failing", "monitor_recovered"]
    assert w.receiver.delivered[2].body["alert_id"] == failing["alert_id"]
    state = w.services.state.alerts.load_state()
    assert (state.level, state.episode_id) == ("critical", episode)  # never resolved meanwhile


def test_a_missing_permission_is_named_in_the_failure_alert(world: Callable[..., World]) -> None:
    w = world(FAILURE_ALERT_AFTER="1")
    w.simulator.forbid("/api/v2/analytics/users/details", "analytics:userDetail:view")
    w.at_level(50)

    report = w.check()

    assert report["cause"] == "permission_missing"
    [failing] = w.receiver.delivered
    assert failing.body["message"].startswith(
        "The license check failed (permission analytics:userDetail:view missing)")


# ---- the counting basis ------------------------------------------------------------------------

def test_a_forbidden_license_listing_fails_the_check_and_changes_nothing_else(
    world: Callable[..., World],
) -> None:
    w = world(pool_users=100)  # capacity 100; 20 Communicate-only users are always online
    w.at_level(93)
    first = w.check()
    assert (first["level"], first["events"], first["pool"]) == ("warning", ["breach"], "licenses")
    assert w.services.state is not None
    episode = w.services.state.alerts.load_state().episode_id
    w.simulator.inject(Fault(kind="forbidden", path="/api/v2/license/users",
                             permission="authorization:license:view", times=None))

    w.at_level(93, minutes_later=61)  # the roster has expired: it is read again
    # This check measures with the roster it has and starts the refresh, which is refused.
    stale = w.check()
    assert (stale["level"], stale["events"]) == ("warning", [])
    w.at_level(93, minutes_later=1)
    failed = w.check()  # the next one says so

    assert failed["level"] == "unknown"
    assert "missing the permission authorization:license:view" in failed["error"]
    assert failed["cause"] == "permission_missing"
    assert failed["events"] == []
    assert not {"concurrent", "billing", "pool"} & failed.keys()
    assert len(w.receiver.received) == 1  # the breach only: nothing new was sent
    assert w.simulator.count("/api/v2/license/users") >= 1  # it was asked, and refused

    w.simulator.clear_faults()
    w.at_level(93, minutes_later=1)
    # What the period's figures are now (a dry run reads them and records nothing): the hour
    # the stale-roster check measured counts 93, the pool's users; had any check counted the
    # 20 Communicate-only users, it would be 113 and minutes over capacity.
    billing = w.check(dry_run=True)["billing"]
    assert (billing["billable_peak"], billing["minutes_over_capacity"]) == (93, 0)
    w.at_level(93)
    after = w.check()
    assert (after["level"], after["events"], after["pool"]) == ("warning", [], "licenses")
    assert after["concurrent"]["peak"]["total"] == 93
    assert webhook_events(w) == ["breach"]  # never resolved, never re-opened
    assert w.services.state.alerts.load_state().episode_id == episode


def test_a_license_listing_still_forbidden_is_alerted_as_a_missing_permission(
    world: Callable[..., World],
) -> None:
    w = world(pool_users=100, FAILURE_ALERT_AFTER="2", ROSTER_TTL_MINUTES="0")
    w.at_level(93)
    assert w.check()["events"] == ["breach"]
    w.simulator.forbid("/api/v2/license", "authorization:license:view")

    w.at_level(93)
    assert w.check()["events"] == []  # measured with the roster it had; its refresh refused
    w.at_level(93)
    assert w.check()["events"] == []  # the first failed check
    w.at_level(93)
    assert w.check()["events"] == ["monitor_failing"]

    assert webhook_events(w) == ["breach", "monitor_failing"]
    failing = w.receiver.delivered[1].body
    assert failing["cause"] == "permission_missing"
    assert failing["message"].startswith(
        "License checks failed 2 times in a row (permission authorization:license:view "
        "missing); last error: Genesys Cloud denied GET /api/v2/license/users")
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().level == "warning"


@pytest.mark.parametrize(
    ("pool", "counted", "level", "events"),
    [("licenses", 85, "ok", []), ("all_users", 105, "critical", ["breach"])],
)
def test_every_user_is_counted_only_when_set_and_then_every_message_says_so(
    world: Callable[..., World], pool: str, counted: int, level: str, events: list[str],
) -> None:
    w = world(pool_users=100, **({"CONCURRENT_POOL": pool} if pool != "licenses" else {}))
    w.at_level(85)  # 85 licensed users, and the 20 Communicate-only users, online

    report = w.check()

    assert report["concurrent"]["peak"]["total"] == counted
    assert (report["level"], report["events"], report["pool"]) == (level, events, pool)
    note = "counting every user (CONCURRENT_POOL=all_users)"
    assert (note in summary_line(report)) is (pool == "all_users")
    assert webhook_events(w) == events
    if pool == "all_users":
        [breach] = [item.body for item in w.receiver.delivered]
        assert breach["message"] == (
            f"105 of 100 concurrent licenses in use (105.0%), critical threshold 95%; {note}")
        assert note in breach["summary"]
        assert breach["pool"] == "all_users"
        assert w.simulator.count("/api/v2/license") == 0  # licenses are never read
    else:
        assert w.simulator.count("/api/v2/license/users") >= 1


def test_a_storage_outage_is_alerted_once_storage_is_back(
    world: Callable[..., World], storage_proxy: StorageProxy,
) -> None:
    w = world()
    # No SDK retries: the Durable activity retry is the only retry layer (and none waits).
    w.services.state = StateStore.from_connection_string(
        connection_string(storage_proxy.port), w.settings.state_table, w.settings.client_key,
        retry_total=0, by_client=True)
    w.at_level(92)
    assert w.check()["events"] == ["breach"]

    storage_proxy.set_down(True)
    down = []
    for _ in range(3):
        w.at_level(92)
        down.append(w.check())
    storage_proxy.set_down(False)
    w.at_level(92)
    back = w.check()
    w.at_level(92)
    after = w.check()

    assert [report["level"] for report in down] == ["unknown"] * 3
    assert all("Table Storage at 127.0.0.1" in report["error"] for report in down)
    # Failing and recovered are decided together when storage is back: the outage is over,
    # so receivers get one line saying what happened, from when to when.
    assert webhook_events(w) == ["breach", "monitor_recovered"]
    recovered = w.receiver.delivered[1].body
    assert recovered["cause"] == "storage_unavailable"
    assert recovered["message"].startswith(
        "checks failing since 08:40 UTC (storage unavailable) ended at 09:40 UTC; License checks "
        "work again after 3 failures: 92 of 100")
    assert (back["events"], back["notifications"], after["notifications"]) == (
        ["monitor_failing", "monitor_recovered"],
        [{"event": "monitor_recovered", "channel": "webhook", "delivered": True}], [])


# ---- billable peak ----------------------------------------------------------------------------

def test_overage_is_locked_in_after_31_minutes_over_capacity_not_29(
    world: Callable[..., World],
) -> None:
    w = world()  # capacity 100
    org = w.simulator.org
    set_online(org, 50, at(8, 0))
    # 15 + 14 minutes over capacity, in two stretches: 08:05-08:19 and 08:40-08:53.
    steps = [((105, at(8, 5)), at(8, 15)), ((50, at(8, 20)), at(8, 30)),
             ((105, at(8, 40)), at(8, 45)), ((50, at(8, 54)), at(9, 0))]
    for (online, since), moment in steps:
        set_online(org, online, since)
        report = check_at(w, moment)

    assert report["billing"] == {"period_start": "2026-11-01", "billable_peak": 50,
                                 "billable_peak_upper": 50, "seconds_over_capacity": 29 * 60,
                                 "minutes_over_capacity": 29}
    assert "overage_locked_in" not in webhook_events(w)

    set_online(org, 105, at(9, 10))  # two more minutes: 31 in all
    org.now = at(9, 11)  # set_online compares with the presence at the simulator's now
    set_online(org, 50, at(9, 12))
    locked = check_at(w, at(9, 15))
    later = check_at(w, at(9, 30))

    assert locked["billing"] == {"period_start": "2026-11-01", "billable_peak": 105,
                                 "billable_peak_upper": 105, "seconds_over_capacity": 31 * 60,
                                 "minutes_over_capacity": 31}
    assert "overage_locked_in" in locked["events"]
    assert "overage_locked_in" not in later["events"]
    [overage] = [item.body for item in w.receiver.delivered
                 if item.body["event"] == "overage_locked_in"]
    assert overage["message"] == (
        "Billable peak of the period from 2026-11-01 is 105 concurrent licenses, 5 over the 100 "
        "purchased; 31 minutes (1860 s) over capacity so far")
    assert overage["billing"] == locked["billing"]
    assert overage["alert_id"] == "overage-20261101"


# ---- reminders and quiet hours ----------------------------------------------------------------

def test_reminders_repeat_while_the_breach_lasts(world: Callable[..., World]) -> None:
    w = world(REMIND_EVERY_MINUTES="30")
    for online in (92, 92, 93, 92, 92, 40, 40):  # checks 20 minutes apart
        w.at_level(online)
        w.check()

    assert webhook_events(w) == ["breach", "reminder", "reminder", "resolved"]
    reminders = [item for item in w.receiver.delivered if item.body["event"] == "reminder"]
    assert len({item.headers["webhook-id"] for item in reminders}) == 2
    assert reminders[0].body["message"].endswith("; breached since 08:20 UTC")


def test_a_breach_in_quiet_hours_is_sent_once_when_they_end(world: Callable[..., World]) -> None:
    # 09:30-10:10 in Berlin is 08:30-09:10 UTC in November.
    w = world(QUIET_HOURS="09:30-10:10", QUIET_HOURS_TIMEZONE="Europe/Berlin")
    reports = []
    for online in (70, 92, 97, 96, 96):  # 08:20, 08:40, 09:00, 09:20, 09:40 UTC
        w.at_level(online)
        reports.append(w.check())

    assert [report["events"] for report in reports] == [[], [], [], ["breach"], []]
    assert [report.get("held") for report in reports] == [
        None, ["breach"], ["breach", "escalation"], None, None]
    [breach] = w.receiver.delivered
    assert (breach.body["level"], breach.body["concurrent"]) == ("critical", 96)
    assert breach.body["message"].endswith("; breached since 08:40 UTC")


def test_a_breach_announced_before_quiet_hours_gets_its_resolution_after(
    world: Callable[..., World],
) -> None:
    w = world(QUIET_HOURS="Thu 08:30-09:10")  # UTC
    for online in (92, 97, 40, 40):  # 08:20 breach; 08:40 and 09:00 inside; 09:20 after
        w.at_level(online)
        w.check()

    # The escalation no longer matters at 09:20; the end of an announced breach does.
    assert webhook_events(w) == ["breach", "resolved"]


def test_a_breach_opened_and_closed_in_quiet_hours_pages_nobody(
    world: Callable[..., World],
) -> None:
    w = world(QUIET_HOURS="Thu 08:30-09:30")
    for online in (70, 92, 40, 40):  # 08:20 ok; 08:40 breach, 09:00 resolved inside; 09:20 ...
        w.at_level(online)
        w.check()
    w.at_level(40)
    w.check()  # 09:40, after the window

    assert webhook_events(w) == []


# ---- a channel back after an outage -------------------------------------------------------------

def test_receivers_back_after_an_outage_hear_what_is_still_true_oldest_first(
    every_channel: Callable[..., tuple[World, Channels]],
) -> None:
    w, channels = every_channel()
    down = (w.receiver, channels.slack, channels.pagerduty)
    for receiver in down:
        receiver.set_down(True)
    during = []
    for online in (92, 97, 50, 92):  # 08:20, 08:40, 09:00, 09:20
        w.at_level(online)
        during.append(w.check())
    assert [report["events"] for report in during] == [
        ["breach"], ["escalation"], ["resolved"], ["breach"]]
    assert all(receiver.delivered == [] for receiver in down)

    for receiver in down:
        receiver.set_down(False)
    w.at_level(92)
    back = w.check()  # 09:40
    w.at_level(92)
    after = w.check()  # 10:00

    # All of it at the first check back, the old episode first, each channel's in that order.
    first, second = "breach-20261126T082000Z", "breach-20261126T092000Z"
    assert sorted(back["notifications"], key=lambda sent: sent["channel"]) == [
        {"event": "breach", "channel": "pagerduty", "delivered": True},
        {"event": "resolved", "channel": "slack", "delivered": True,
         "then": [{"event": "breach", "channel": "slack", "delivered": True}]},
        {"event": "resolved", "channel": "webhook", "delivered": True,
         "then": [{"event": "breach", "channel": "webhook", "delivered": True}]},
    ]
    assert after["notifications"] == []
    ended = ("breach at 08:20 UTC (97 of 100, critical) ended at 09:00 UTC; 50 of 100 concurrent "
             "licenses in use (50.0%), below the 85% clear level")
    assert [(item.body["event"], item.body["alert_id"], item.body["message"])
            for item in w.receiver.delivered] == [
        ("resolved", first, ended),
        ("breach", second, "92 of 100 concurrent licenses in use (92.0%), warning threshold 90%; "
                           "breached since 09:20 UTC"),
    ]
    assert w.receiver.delivered[1].body["occurred_at"] == "2026-11-26T09:40:00Z"
    # The last thing a person reads: the breach open now.
    assert [item.body["text"].split(";")[0] for item in channels.slack.delivered] == [
        "Contoso: License breach resolved at 09:00 UTC: breach at 08:20 UTC (97 of 100, "
        "critical) ended at 09:00 UTC",
        "Contoso: License breach (WARNING) at 09:40 UTC: 92 of 100 concurrent licenses in use "
        "(92.0%), warning threshold 90%"]
    # PagerDuty pages for the open breach only: the first one was over before it could page.
    assert [(item.body["event_action"], item.body["dedup_key"])
            for item in channels.pagerduty.delivered] == [("trigger", second)]
    # Channels that were up heard the story as it happened.
    assert [mail.body["message"]["subject"].split(":")[1].strip()
            for mail in channels.graph.delivered] == [
        "License breach (WARNING)", "License breach escalated (CRITICAL)",
        "License breach resolved", "License breach (WARNING)"]


def test_stale_reminders_collapse_and_never_hold_back_the_resolution(
    world: Callable[..., World],
) -> None:
    w = world(REMIND_EVERY_MINUTES="20")
    w.at_level(93)
    assert w.check()["events"] == ["breach"]  # 08:20, delivered
    w.receiver.set_down(True)
    for _ in range(4):  # 08:40 .. 09:40: a reminder each, none delivered
        w.at_level(93)
        assert w.check()["events"] == ["reminder"]
    assert w.services.state is not None
    owed = [entry for entry in w.services.state.alerts.outbox()
            if entry["status"] not in ("delivered", "superseded")]
    assert [entry["payload"]["event"] for entry in owed] == ["reminder"]  # the latest only
    w.at_level(40)
    assert w.check()["events"] == ["resolved"]  # 10:00, not delivered either

    w.receiver.set_down(False)
    w.at_level(40)
    back = w.check()  # 10:20

    assert back["notifications"] == [{"event": "resolved", "channel": "webhook",
                                      "delivered": True}]
    assert webhook_events(w) == ["breach", "resolved"]
    assert w.receiver.delivered[1].body["message"] == (
        "breach at 08:20 UTC (93 of 100, warning) ended at 10:00 UTC; 40 of 100 concurrent "
        "licenses in use (40.0%), below the 85% clear level")


def outage(w: World, levels: list[int], hours: int) -> None:
    """Checks every `hours` hours at these levels, the webhook receiver down all along."""
    w.receiver.set_down(True)
    for online in levels:
        w.at_level(online, minutes_later=hours * 60)
        w.check()
    w.receiver.set_down(False)


# Checks hours apart measure the minutes in between (backfill): no client-side request pacing.
UNPACED = {"REQUEST_BUDGET_PER_MINUTE": "10000"}


def test_an_open_breach_is_sent_current_however_long_the_outage(
    world: Callable[..., World],
) -> None:
    w = world(**UNPACED)
    outage(w, [92, 92, 97, 97, 97], hours=7)  # 15:00 .. the next day 19:00: 28 hours
    w.at_level(96)
    back = w.check()  # 19:20 on the next day

    assert back["notifications"] == [{"event": "breach", "channel": "webhook",
                                      "delivered": True}]
    [breach] = w.receiver.delivered
    assert (breach.body["level"], breach.body["concurrent"], breach.body["occurred_at"]) == (
        "critical", 96, "2026-11-27T19:20:00Z")
    assert breach.body["message"].endswith("; breached since 26 Nov 15:00 UTC")


def test_a_closed_episode_owed_a_day_outside_quiet_hours_is_given_up(
    world: Callable[..., World],
) -> None:
    w = world(**UNPACED)
    outage(w, [92, 40, 40, 40, 40], hours=7)  # breach at 15:00, resolved at 22:00: 28 hours
    w.at_level(40)
    back = w.check()

    assert back["notifications"] == []
    assert w.receiver.delivered == []
    assert w.services.state is not None
    assert [entry["status"] for entry in w.services.state.alerts.outbox()] == [
        "superseded", "abandoned"]


def test_quiet_hours_do_not_count_towards_giving_up(world: Callable[..., World]) -> None:
    # Quiet from Thursday 22:00 to Saturday 08:00 UTC: the same 28 hours, 24 of them quiet.
    w = world(QUIET_HOURS="Thu 22:00-24:00; Fri 00:00-24:00; Sat 00:00-08:00", **UNPACED)
    outage(w, [92, 40, 40, 40, 40], hours=7)  # 15:00 .. Friday 19:00
    w.at_level(40, minutes_later=13 * 60)
    back = w.check()  # Saturday 08:20

    assert back["notifications"] == [{"event": "resolved", "channel": "webhook",
                                      "delivered": True}]
    [resolved] = w.receiver.delivered
    assert resolved.body["message"].startswith(
        "breach at 26 Nov 15:00 UTC (92 of 100, warning) ended at 26 Nov 22:00 UTC; ")


# ---- checks that cannot be evaluated ------------------------------------------------------------

def failing_alerts(w: World) -> list[dict[str, Any]]:
    return [item.body for item in w.receiver.delivered if item.body["event"] == "monitor_failing"]


def test_a_stored_state_from_another_version_is_replaced_and_counted_as_a_failed_check(
    world: Callable[..., World], caplog: pytest.LogCaptureFixture,
) -> None:
    w = world()
    assert w.services.state is not None
    w.at_level(50)
    w.check()
    # Another version wrote the state: a level this one does not know and held events of a
    # newer shape, beside two failed checks it had counted.
    foreign = {"schema": 3, "level": "amber", "consecutive_failures": 2,
               "failing_since": "2026-11-26T08:10:00Z", "last_checked_at": "2026-11-26T08:20:00Z",
               "held": [{"kind": "breach", "v": 3}]}
    w.services.state.table.client.update_entity(
        {"PartitionKey": w.services.state.table.org, "RowKey": "alert-state",
         "state": json.dumps(foreign)})
    caplog.set_level("WARNING", logger="license_monitor")

    w.at_level(97)
    replaced = w.check()
    w.at_level(97)
    after = w.check()

    # The check that found it is a failed check (the third in a row, with the two kept): the
    # monitor says so at once, on its channels, and the next check works on the repaired state.
    assert (replaced["level"], replaced["cause"], replaced["events"]) == (
        "unknown", "check_failed", ["monitor_failing"])
    assert replaced["error"].startswith(
        "the stored alert state could not be read: its state (ValueError: unknown alert level "
        "'amber' in stored state)")
    assert "replaced it, keeping level ok, 3 failed checks in a row" in caplog.text
    [failing] = failing_alerts(w)
    assert failing["message"].startswith("License checks failed 3 times in a row (check failed)")
    assert failing["alert_id"] == "failing-20261126T081000Z"
    assert after["events"] == ["monitor_recovered", "breach"]
    # The two of the last check go out side by side (one notify activity each): any order.
    assert webhook_events(w)[0] == "monitor_failing"
    assert sorted(webhook_events(w)[1:]) == ["breach", "monitor_recovered"]
    row = w.services.state.table.client.get_entity(w.services.state.table.org, "alert-state")
    assert json.loads(row["unreadable_state"]) == foreign  # kept for people to look at
    assert w.services.state.alerts.load_state().level == "critical"


def test_a_state_row_that_is_not_json_costs_one_failed_check(world: Callable[..., World]) -> None:
    w = world(FAILURE_ALERT_AFTER="1")
    assert w.services.state is not None
    w.at_level(50)
    w.check()
    w.services.state.table.client.update_entity(
        {"PartitionKey": w.services.state.table.org, "RowKey": "alert-state",
         "state": "{\"level\": \"ok"})

    w.at_level(50)
    broken = w.check()
    w.at_level(50)
    fine = w.check()

    assert (broken["level"], broken["events"]) == ("unknown", ["monitor_failing"])
    assert "(JSONDecodeError: " in broken["error"]
    assert (fine["level"], fine["events"]) == ("ok", ["monitor_recovered"])
    assert webhook_events(w) == ["monitor_failing", "monitor_recovered"]


def test_a_billing_histogram_that_disagrees_with_its_minutes_alerts_after_three_checks(
    world: Callable[..., World],
) -> None:
    w = world()
    assert w.services.state is not None
    w.at_level(50)
    w.check()  # the org is known: its rows are where the next checks look
    # Minute rows of the coming hour (restored from somewhere) without their histogram: every
    # check's minutes disagree with it.
    table = w.services.state.table
    partition = table.partition("minutes", "2026-11-01")
    for minute in range(80):
        moment = w.now + timedelta(minutes=minute)
        table.client.upsert_entity({"PartitionKey": partition, "RowKey": minute_key(moment),
                                    "level": 1})
    reports = []
    for _ in range(3):
        w.at_level(50)
        reports.append(w.check())

    assert [report["level"] for report in reports] == ["unknown"] * 3
    assert all("it does not match the recorded minutes" in report["error"] for report in reports)
    # The minutes between the checks could not be caught up either, and each check says so.
    assert all("it does not match" in report.get("backfill_error", "it does not match")
               for report in reports)
    assert [report["events"] for report in reports] == [[], [], ["monitor_failing"]]
    [failing] = failing_alerts(w)
    assert failing["message"].startswith(
        "License checks failed 3 times in a row (check failed); last error: the check could not "
        "be evaluated (ValueError: the histogram would hold -900000 at level 1: it does "
        "not match the recorded minutes)")
    assert webhook_events(w) == ["monitor_failing"]


def test_an_invalid_alert_policy_is_a_failed_check_and_alerts(world: Callable[..., World]) -> None:
    w = world()
    # Settings validation keeps this out; a policy that still fails (a rule added later, a
    # settings object built another way) must not make every check silently unknown.
    w.services.settings = replace(w.settings, warning_percent=96.0, critical_percent=95.0)
    reports = []
    for _ in range(3):
        w.at_level(97)
        reports.append(w.check())

    assert [report["events"] for report in reports] == [[], [], ["monitor_failing"]]
    assert all("invalid alert policy" in report["error"] for report in reports)
    [failing] = failing_alerts(w)
    assert failing["capacity"] == 100
    assert "invalid alert policy: the warning percent must be" in failing["message"]


def test_a_failure_reason_too_long_to_store_is_clipped_and_counted(
    world: Callable[..., World],
) -> None:
    w = world()
    quoted = "Genesys Cloud rejected POST /api/v2/analytics/users/details/query: " + "x" * 40_000

    def long_error(name: str, payload: Any) -> None:
        if name == "measure_usage":
            raise RuntimeError(quoted)

    reports = []
    for _ in range(3):
        w.at_level(50)
        reports.append(w.check(host=w.host(activity_hook=long_error)))

    # 40,000 characters kept in the alert state would exceed the 32K-character property limit:
    # no check could be stored, so none was counted.
    assert [report["events"] for report in reports] == [[], [], ["monitor_failing"]]
    assert all(len(report["error"]) == 500 and report["error"].endswith("...")
               for report in reports)
    [failing] = failing_alerts(w)
    assert len(failing["message"]) < 700
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().consecutive_failures == 3


# ---- a channel that rejects our messages --------------------------------------------------------

def test_a_rejecting_channel_is_not_retried_and_announced_once_per_episode_elsewhere(
    every_channel: Callable[..., tuple[World, Channels]], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="license_monitor")
    w, channels = every_channel()
    channels.slack.status = 404  # the Slack app was removed: its webhook URL is gone
    w.at_level(93)
    breach = w.check()
    w.at_level(93)
    announced = w.check()
    w.at_level(97)
    escalation = w.check()
    w.at_level(97)
    quiet = w.check()

    # Refused once, at once: no brief retries, no retry by the next checks.
    [refused] = [sent for sent in breach["notifications"] if sent["channel"] == "slack"]
    assert refused == {"event": "breach", "channel": "slack", "delivered": False, "rejected": True,
                       "error": "the Slack webhook at 127.0.0.1 answered HTTP 404 (simulated)"}
    assert w.sleeps == []
    # The next check tells the other channels, once, naming the setting to fix.
    assert announced["events"] == ["channel_rejected"]
    assert announced["channel_errors"] == [{
        "channel": "slack", "error": refused["error"], "since": announced["channel_errors"][0][
            "since"]}]
    assert sorted(sent["channel"] for sent in announced["notifications"]) == [
        "email", "pagerduty", "teams", "webhook"]
    notice = w.receiver.delivered[1].body
    assert (notice["event"], notice["channel"]) == ("channel_rejected", "slack")
    assert notice["message"] == (
        "Slack rejects our messages: HTTP 404 (simulated); check SLACK_WEBHOOK_URL")
    assert channels.teams.delivered[1].body["attachments"][0]["content"]["body"][0]["text"] == (
        "Contoso: Alert channel rejects messages: Slack")
    assert channels.pagerduty.delivered[1].body["payload"]["severity"] == "warning"
    # The escalation does not wait behind the rejected breach; refused again, not announced again.
    assert escalation["events"] == ["escalation"]
    assert [sent["rejected"] for sent in escalation["notifications"]
            if sent["channel"] == "slack"] == [True]
    assert quiet["events"] == []
    assert quiet["notifications"] == []
    assert [item.body["blocks"][0]["text"]["text"] for item in channels.slack.received] == [
        "Contoso: License breach (WARNING)", "Contoso: License breach escalated (CRITICAL)"]
    assert webhook_events(w) == ["breach", "channel_rejected", "escalation"]

    # Fixed: the next message gets through and ends the episode; a later rejection is news.
    channels.slack.status = 200
    w.at_level(40)
    resolved = w.check()
    w.at_level(40)
    fixed = w.check()
    channels.slack.status = 410
    w.at_level(93)
    w.check()
    w.at_level(93)
    again = w.check()

    assert [sent["delivered"] for sent in resolved["notifications"]] == [True] * 5
    assert "channel_errors" not in fixed
    assert again["events"] == ["channel_rejected"]
    assert [(sent["channel"], sent["delivered"]) for sent in again["notifications"]] == [
        ("webhook", True), ("teams", True), ("pagerduty", True), ("email", True)], again
    # The second rejection is an episode of its own, dated by the check that met it.
    since = parse_time(again["channel_errors"][0]["since"])
    assert timedelta(0) <= since - at(10, 20) < timedelta(minutes=1)
    assert webhook_events(w) == ["breach", "channel_rejected", "escalation", "resolved",
                                 "breach", "channel_rejected"]
    assert w.receiver.delivered[-1].body["message"] == (
        "Slack rejects our messages: HTTP 410 (simulated); check SLACK_WEBHOOK_URL")
    # The log says each change of the channel once, however many writers raced to record it.
    said = [record.getMessage() for record in caplog.records]
    assert [line for line in said if "channel rejects" in line or "delivers again" in line] == [
        "The slack channel rejects our messages: the Slack webhook at 127.0.0.1 answered HTTP "
        "404 (simulated)",
        "The slack channel delivers again",
        "The slack channel rejects our messages: the Slack webhook at 127.0.0.1 answered HTTP "
        "410 (simulated)",
    ]


def test_email_refused_for_bad_credentials_is_announced_naming_the_graph_settings(
    every_channel: Callable[..., tuple[World, Channels]],
) -> None:
    w, _ = every_channel(GRAPH_CLIENT_SECRET="not-the-graph-secret-42")
    w.at_level(93)
    first = w.check()
    w.at_level(93)
    second = w.check()

    [refused] = [sent for sent in first["notifications"] if sent["channel"] == "email"]
    assert refused["rejected"] is True
    assert second["events"] == ["channel_rejected"]
    assert w.receiver.delivered[1].body["message"] == (
        "Email (Microsoft Graph) rejects our messages: Entra ID at 127.0.0.1 refused a Microsoft "
        "Graph token (invalid_client, AADSTS7000215); check the GRAPH_* and ALERT_EMAIL_* settings")
