"""Teams, Slack, PagerDuty and Graph email against real local receivers: payloads as documented."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from license_monitor.alerting import AlertState, CheckFailure, Policy, Usage, decide
from license_monitor.notify import DeliveryError, Notification, send
from license_monitor.state import StateStore
from simulator.azurite import Azurite
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.fixtures.receivers import HttpReceiver

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = Policy(capacity=500)
LINK = "https://monitor.example/api/license-check"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
ALERT_ID = "breach-20261126T120000Z"
Receiver = Callable[..., HttpReceiver]


def usage(concurrent: int, billable_peak: int = 455, minutes_over: int = 0) -> Usage:
    agents = concurrent * 9 // 10
    return Usage(concurrent=concurrent, agents=agents, admins=concurrent - agents,
                 window_distinct=concurrent + 9, billable_peak=billable_peak,
                 period_start="2026-11-01", minutes_over_capacity=minutes_over)


def breach_notification(channel: str) -> Notification:
    [event] = decide(usage(461), AlertState(), POLICY, NOW).events
    return Notification(f"{event.key}:{channel}", channel, event.to_payload())


def no_sleep(_: float) -> None:
    """Retries in these tests never wait."""


def graph_target(graph: GraphServer, **changes: Any) -> dict[str, Any]:
    return {"to": ["it-oncall@contoso.example", "telephony@contoso.example"],
            "from": "license-monitor@contoso.example", "tenant_id": TENANT,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "authority_url": graph.authority_url, "api_url": graph.api_url,
            "org_name": "Contoso", "link": LINK, **changes}


BREACH_LINE = (
    "Contoso: License breach (WARNING) at 12:00 UTC: 461 of 500 concurrent licenses in use "
    "(92.2%), warning threshold 90%; 414 agents, 47 admins; billable peak so far 455. Manual "
    f"check: {LINK}"
)
BREACH_FACTS = [
    ("In use (window peak)", "461 of 500 (92.2%)"),
    ("Agents / admins", "414 / 47"),
    ("Logged in during the window", "470"),
    ("Billable peak so far", "455 (period from 2026-11-01)"),
    ("Minutes over capacity", "0"),
    ("Level", "warning"),
    ("At", "2026-11-26T12:00:00Z"),
    ("Alert id", ALERT_ID),
]


# ---- Teams ------------------------------------------------------------------------------------

def test_teams_gets_an_adaptive_card_in_the_workflows_envelope(
    webhook_receiver: Receiver, graph_session: requests.Session
) -> None:
    teams = webhook_receiver(status=202)

    send("teams", {"url": teams.url, "org_name": "Contoso", "link": LINK},
         breach_notification("teams"), session=graph_session, now=NOW, sleep=no_sleep)

    [received] = teams.delivered
    assert received.headers["content-type"] == "application/json"
    assert received.body == {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
                     "color": "Warning",
                     "text": "Contoso: License breach (WARNING): 461 of 500 concurrent licenses "
                             "in use (92.2%)"},
                    {"type": "TextBlock", "text": BREACH_LINE, "wrap": True},
                    {"type": "FactSet", "facts": [
                        {"title": title, "value": value} for title, value in BREACH_FACTS]},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Run the manual check",
                             "url": LINK}],
            },
        }],
    }


def test_teams_card_stays_under_the_webhook_size_limit(
    webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    teams = webhook_receiver(status=202)
    policy = Policy(capacity=500, failure_alert_after=1)
    [event] = decide(CheckFailure("Genesys Cloud was unavailable " + "x" * 60_000),
                     AlertState(), policy, NOW).events

    send("teams", {"url": teams.url}, Notification("f:teams", "teams", event.to_payload()),
         session=session_plain, now=NOW, sleep=no_sleep)

    [received] = teams.delivered
    assert len(received.raw) < 28_000
    assert received.body["attachments"][0]["content"]["body"][0]["color"] == "Attention"


# ---- Slack ------------------------------------------------------------------------------------

def test_slack_gets_fallback_text_and_blocks(
    webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    slack = webhook_receiver()

    send("slack", {"url": slack.url, "org_name": "Contoso", "link": LINK},
         breach_notification("slack"), session=session_plain, now=NOW, sleep=no_sleep)

    [received] = slack.delivered
    assert received.body == {
        "text": BREACH_LINE,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text",
                                        "text": "Contoso: License breach (WARNING)"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": BREACH_LINE}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*{title}*\n{value}"}
                for title, value in BREACH_FACTS]},
            {"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Run the manual check"},
                "url": LINK}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert {ALERT_ID}"}]},
        ],
    }


def test_slack_text_escapes_mrkdwn_control_characters(
    webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    slack = webhook_receiver()

    send("slack", {"url": slack.url, "org_name": "R&D <Ops>"}, breach_notification("slack"),
         session=session_plain, now=NOW, sleep=no_sleep)

    body = slack.delivered[0].body
    assert body["text"].startswith("R&amp;D &lt;Ops&gt;: License breach")
    assert body["blocks"][0]["text"]["text"] == "R&D <Ops>: License breach (WARNING)"  # plain


# ---- PagerDuty --------------------------------------------------------------------------------

def test_pagerduty_trigger_carries_the_documented_fields(
    webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    pagerduty = webhook_receiver(status=202, path="/v2/enqueue")

    send("pagerduty", {"routing_key": ROUTING_KEY, "url": pagerduty.url, "source": "Contoso",
                       "org_name": "Contoso", "link": LINK},
         breach_notification("pagerduty"), session=session_plain, now=NOW, sleep=no_sleep)

    [received] = pagerduty.delivered
    assert received.body == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": ALERT_ID,
        "payload": {
            "summary": BREACH_LINE,
            "source": "Contoso",
            "severity": "warning",
            "timestamp": "2026-11-26T12:00:00Z",
            "component": "concurrent-licenses",
            "group": "genesys-cloud",
            "class": "breach",
            "custom_details": {
                "message": "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%",
                "level": "warning", "previous_level": "ok", "concurrent": 461, "capacity": 500,
                "utilization_percent": 92.2, "agents": 414, "admins": 47,
                "window_distinct": 470, "alert_id": ALERT_ID,
                "billing": {"period_start": "2026-11-01", "billable_peak": 455,
                            "minutes_over_capacity": 0,
                    "billable_peak_upper": None, "seconds_over_capacity": None},
            },
        },
        "client": "Concurrent License Monitor for Genesys Cloud",
        "links": [{"href": LINK, "text": "Run the manual check"}],
    }


def test_pagerduty_failing_monitor_has_its_own_key_and_is_resolved_by_recovery(
    store: StateStore, webhook_receiver: Receiver, session_plain: requests.Session,
) -> None:
    pagerduty = webhook_receiver(status=202)
    policy = Policy(capacity=500, failure_alert_after=2)
    outcomes: list[Usage | CheckFailure] = [
        usage(461), CheckFailure("Genesys Cloud rejected the client id or secret at x"),
        CheckFailure("Genesys Cloud rejected the client id or secret at x"), usage(461)]
    for minute, outcome in enumerate(outcomes):
        evaluation = store.alerts.evaluate(outcome, policy, NOW + timedelta(minutes=5 * minute),
                                    ["pagerduty"])
        for notification in evaluation.to_send:
            send("pagerduty", {"routing_key": ROUTING_KEY, "url": pagerduty.url}, notification,
                 session=session_plain, now=NOW, sleep=no_sleep)
            store.alerts.mark_delivered(notification.id, NOW)

    bodies = [item.body for item in pagerduty.delivered]
    assert [(b["event_action"], b["dedup_key"], b.get("payload", {}).get("severity"))
            for b in bodies] == [
        ("trigger", ALERT_ID, "warning"),
        ("trigger", "failing-20261126T120500Z", "error"),
        ("resolve", "failing-20261126T120500Z", None),
    ]
    assert bodies[1]["payload"]["summary"].startswith(
        "License monitor failing at 12:10 UTC: License checks failed 2 times in a row (bad "
        "credentials)")


def test_pagerduty_refusal_names_the_host_but_never_the_routing_key(
    webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    pagerduty = webhook_receiver(status=400)

    with pytest.raises(DeliveryError) as caught:
        send("pagerduty", {"routing_key": ROUTING_KEY, "url": pagerduty.url},
             breach_notification("pagerduty"), session=session_plain, now=NOW, sleep=no_sleep)

    assert str(caught.value) == "PagerDuty at 127.0.0.1 answered HTTP 400 (simulated)"
    assert ROUTING_KEY not in repr(caught.value)
    assert len(pagerduty.received) == 1  # a 400 is not retried


# ---- email through Microsoft Graph ------------------------------------------------------------

def test_email_is_sent_through_graph_with_an_msal_app_token(
    graph_server: Callable[..., GraphServer], graph_session: requests.Session
) -> None:
    graph = graph_server()

    send("email", graph_target(graph), breach_notification("email"), session=graph_session,
         now=NOW, sleep=no_sleep)

    [mail] = graph.delivered
    assert mail.sender == "license-monitor@contoso.example"
    assert mail.authorization.startswith("Bearer graph-token-")
    message = mail.body["message"]
    assert mail.body["saveToSentItems"] is False
    assert message["subject"] == (
        "Contoso: License breach (WARNING): 461 of 500 concurrent licenses in use (92.2%)")
    assert message["toRecipients"] == [
        {"emailAddress": {"address": "it-oncall@contoso.example"}},
        {"emailAddress": {"address": "telephony@contoso.example"}},
    ]
    assert message["body"]["contentType"] == "HTML"
    content = message["body"]["content"]
    assert f"<p>{BREACH_LINE}</p>" in content
    assert f'<a href="{LINK}">Run the manual check</a>' in content
    assert "<tr><th align=\"left\">Billable peak so far</th><td>455 (period from 2026-11-01)" in (
        content)
    # msal: OpenID discovery of the tenant, then client credentials with the secret in the body.
    assert graph.paths == [
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        f"/{TENANT}/oauth2/v2.0/token",
        "/v1.0/users/license-monitor@contoso.example/sendMail",
    ]
    [form] = graph.token_forms
    assert (form["grant_type"], form["client_id"], form["client_secret"]) == (
        "client_credentials", CLIENT_ID, CLIENT_SECRET)
    assert form["scope"] == "https://graph.microsoft.com/.default"


def test_email_token_is_reused_by_later_messages(
    graph_server: Callable[..., GraphServer], graph_session: requests.Session
) -> None:
    graph = graph_server()
    for _ in range(3):
        send("email", graph_target(graph), breach_notification("email"),
             session=graph_session, now=NOW, sleep=no_sleep)

    assert len(graph.delivered) == 3
    assert len(graph.token_forms) == 1


def test_email_with_a_revoked_token_asks_for_a_new_one_once(
    graph_server: Callable[..., GraphServer], graph_session: requests.Session
) -> None:
    graph = graph_server()
    send("email", graph_target(graph), breach_notification("email"), session=graph_session,
         now=NOW, sleep=no_sleep)
    graph.revoke_tokens()

    send("email", graph_target(graph), breach_notification("email"), session=graph_session,
         now=NOW, sleep=no_sleep)

    assert [mail.status for mail in graph.mails] == [202, 401, 202]
    assert len(graph.token_forms) == 2


def test_email_with_a_wrong_secret_fails_without_showing_it(
    graph_server: Callable[..., GraphServer], graph_session: requests.Session
) -> None:
    graph = graph_server()
    wrong = "not-the-graph-secret-42"

    with pytest.raises(DeliveryError) as caught:
        send("email", graph_target(graph, client_secret=wrong), breach_notification("email"),
             session=graph_session, now=NOW, sleep=no_sleep)

    message = str(caught.value)
    assert message.startswith(
        "Entra ID at 127.0.0.1 refused a Microsoft Graph token (invalid_client, AADSTS7000215)")
    assert wrong not in message
    assert CLIENT_SECRET not in message
    assert not caught.value.retryable
    assert graph.mails == []


def test_email_authority_that_is_down_is_reported_by_host(
    graph_session: requests.Session,
) -> None:
    target = {"to": ["a@contoso.example"], "from": "m@contoso.example", "tenant_id": TENANT,
              "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "authority_url": "https://127.0.0.1:9", "api_url": "https://127.0.0.1:9/v1.0"}

    with pytest.raises(DeliveryError) as caught:
        send("email", target, breach_notification("email"), session=graph_session, now=NOW,
             sleep=no_sleep)

    assert str(caught.value).startswith("the Entra ID authority at 127.0.0.1 could not be used")
    assert caught.value.retryable
    assert CLIENT_SECRET not in str(caught.value)


# ---- every channel: one episode, each event once ----------------------------------------------

@pytest.mark.parametrize("channel", ["webhook", "teams", "slack", "pagerduty", "email"])
def test_breach_escalation_resolved_arrive_once_each(
    channel: str, store: StateStore, webhook_receiver: Receiver,
    graph_server: Callable[..., GraphServer], graph_session: requests.Session,
) -> None:
    receiver = webhook_receiver(status=202)
    graph = graph_server()
    target: dict[str, Any] = {
        "webhook": {"url": receiver.url}, "teams": {"url": receiver.url},
        "slack": {"url": receiver.url},
        "pagerduty": {"routing_key": ROUTING_KEY, "url": receiver.url},
        "email": graph_target(graph, org_name=None),
    }[channel]
    for minute, concurrent in enumerate((461, 465, 480, 485, 470, 400, 390)):
        evaluation = store.alerts.evaluate(usage(concurrent), POLICY,
                                    NOW + timedelta(minutes=5 * minute), [channel])
        for notification in evaluation.to_send:
            send(channel, target, notification, session=graph_session, now=NOW, sleep=no_sleep)
            store.alerts.mark_delivered(notification.id, NOW)

    arrived: list[str] = {
        "webhook": lambda: [item.body["event"] for item in receiver.delivered],
        "teams": lambda: [item.body["attachments"][0]["content"]["body"][0]["text"].split(":")[0]
                          for item in receiver.delivered],
        "slack": lambda: [item.body["blocks"][0]["text"]["text"] for item in receiver.delivered],
        "pagerduty": lambda: [item.body["event_action"] + " " + item.body["dedup_key"]
                              for item in receiver.delivered],
        "email": lambda: [mail.body["message"]["subject"].split(":")[0]
                          for mail in graph.delivered],
    }[channel]()
    assert arrived == {
        "webhook": ["breach", "escalation", "resolved"],
        "teams": ["License breach (WARNING)", "License breach escalated (CRITICAL)",
                  "License breach resolved"],
        "slack": ["License breach (WARNING)", "License breach escalated (CRITICAL)",
                  "License breach resolved"],
        "pagerduty": [f"trigger {ALERT_ID}", f"trigger {ALERT_ID}", f"resolve {ALERT_ID}"],
        "email": ["License breach (WARNING)", "License breach escalated (CRITICAL)",
                  "License breach resolved"],
    }[channel]
    if channel == "pagerduty":  # the escalation raises the open incident's severity
        assert [item.body.get("payload", {}).get("severity")
                for item in receiver.delivered] == ["warning", "critical", None]


@pytest.mark.parametrize("channel", ["webhook", "teams", "slack"])
def test_a_receiver_that_is_down_never_sees_its_secret_path_in_the_error(
    channel: str, webhook_receiver: Receiver, session_plain: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.set_down(True, refuse_connections=True)

    with pytest.raises(DeliveryError) as caught:
        send(channel, {"url": receiver.url}, breach_notification(channel),
             session=session_plain, now=NOW, sleep=no_sleep)

    assert "127.0.0.1" in str(caught.value)
    assert receiver.path not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.retryable


@pytest.fixture
def store(azurite: Azurite, table_name: str) -> StateStore:
    return StateStore.from_connection_string(azurite.connection_string, table_name, "org")


@pytest.fixture
def session_plain() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # a proxy from the environment must not catch 127.0.0.1
        yield http
