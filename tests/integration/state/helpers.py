"""What the Table Storage tests share: constants, an org's figures and a delivery loop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import requests

from license_monitor.alerting import CheckFailure, Policy, Usage
from license_monitor.notify import DeliveryError, Notification, send
from license_monitor.state import Evaluation, StateStore
from license_monitor.usage import MinuteProfile
from tests.fixtures.receivers import HttpReceiver

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PERIOD = date(2026, 11, 1)
POLICY = Policy(capacity=500)
ORG = "contoso-mypurecloud.ie"
SECRET = "webhook-signing-secret"


def usage(concurrent: int) -> Usage:
    return Usage(concurrent=concurrent, agents=concurrent - 20, admins=20,
                 window_distinct=concurrent + 5)


def no_sleep(_: float) -> None:
    """Retries in these tests never wait."""

def claimed(evaluation: Evaluation) -> list[Notification]:
    """Every notification the evaluation claimed, each channel's chain in order."""
    return [one for head in evaluation.to_send for one in (head, *head.then)]


def deliver(store: StateStore, evaluation: Evaluation, receiver: HttpReceiver,
            session: requests.Session, now: datetime) -> None:
    """What the notify activity does: send each claimed notification, then record the outcome;
    after a failure, the rest of that channel's chain waits for the next check."""
    for head in evaluation.to_send:
        failed: str | None = None
        for notification in (head, *head.then):
            if failed is not None:
                store.alerts.mark_failed(notification.id, f"not sent: {failed}", now)
                continue
            try:
                send(notification.channel, {"url": receiver.url, "secret": SECRET},
                     notification, session=session, now=now, sleep=no_sleep)
            except DeliveryError as err:
                failed = str(err)
                store.alerts.mark_failed(notification.id, failed, now)
            else:
                store.alerts.mark_delivered(notification.id, now)


def check(store: StateStore, receiver: HttpReceiver, session: requests.Session,
          outcome: Usage | CheckFailure, now: datetime) -> Evaluation:
    evaluation = store.alerts.evaluate(outcome, POLICY, now, ["webhook"])
    deliver(store, evaluation, receiver, session, now)
    return evaluation


def delivered_events(receiver: HttpReceiver) -> list[str]:
    return [item.body["event"] for item in receiver.delivered]


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)




def minutes(start: datetime, count: int, level: int) -> dict[datetime, MinuteProfile]:
    """`count` whole minutes from `start`, each held at `level` throughout."""
    return {start + timedelta(minutes=index): MinuteProfile.flat(level) for index in range(count)}
