"""Alert state and the notification outbox in Azurite, with a real receiver."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from license_monitor.alerting import AlertState, CheckFailure
from license_monitor.state import (
    Evaluation,
    StateStore,
)
from license_monitor.state.alerts import DEFAULT_LEASE
from simulator.azurite import (
    Azurite,
)
from tests.fixtures.receivers import HttpReceiver
from tests.integration.state.helpers import (
    NOW,
    ORG,
    POLICY,
    at,
    check,
    delivered_events,
    usage,
)


def test_breach_notifies_once_across_three_checks(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute in (0, 5, 10):
        check(store, receiver, session, usage(461), at(minute))

    assert delivered_events(receiver) == ["breach"]
    [breach] = receiver.delivered
    assert breach.body["alert_id"] == "breach-20261126T120000Z"
    assert breach.headers["webhook-id"] == "breach-20261126T120000Z:breach:webhook"
    assert store.alerts.load_state().level == "warning"
    assert [entry["status"] for entry in store.alerts.outbox()] == ["delivered"]


def test_escalation_notifies_once(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute, concurrent in enumerate((461, 480, 485, 470, 480)):
        check(store, receiver, session, usage(concurrent), at(5 * minute))

    assert delivered_events(receiver) == ["breach", "escalation"]
    assert store.alerts.load_state().level == "critical"


def test_resolved_notifies_once_with_the_breach_alert_id(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute, concurrent in enumerate((461, 400, 400, 380)):
        check(store, receiver, session, usage(concurrent), at(5 * minute))

    assert delivered_events(receiver) == ["breach", "resolved"]
    assert {item.body["alert_id"] for item in receiver.delivered} == {"breach-20261126T120000Z"}
    assert store.alerts.load_state() == AlertState(level="ok", last_notified_at=at(5),
                                            last_usage=usage(380), last_checked_at=at(15))


@pytest.mark.parametrize("earlier_check", [False, True], ids=["first check", "state exists"])
def test_ten_simultaneous_evaluations_claim_the_breach_once(
    azurite: Azurite, table_name: str, earlier_check: bool
) -> None:
    stores = [StateStore.from_connection_string(azurite.connection_string, table_name, ORG)
              for _ in range(10)]
    if earlier_check:  # the race is then on the conditional update, not on the insert
        stores[0].alerts.evaluate(usage(300), POLICY, NOW - timedelta(minutes=5), ["webhook"])
    start = threading.Barrier(len(stores))
    results: list[Evaluation] = []
    errors: list[BaseException] = []

    def evaluate(store: StateStore) -> None:
        start.wait()
        try:
            results.append(store.alerts.evaluate(usage(461), POLICY, NOW, ["webhook"]))
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=evaluate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == 10
    claimed = [n for result in results for n in result.to_send]
    assert [n.id for n in claimed] == ["breach-20261126T120000Z:breach:webhook"]
    assert sorted(result.decision.level for result in results) == ["warning"] * 10
    assert len(stores[0].alerts.outbox()) == 1


def test_failed_delivery_is_claimed_again_by_the_next_check_and_delivered_once(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.fail_next(3, status=500)  # every attempt of the first delivery fails

    first = check(store, receiver, session, usage(461), at(0))
    [entry] = store.alerts.outbox()
    assert (entry["status"], entry["last_error"]) == (
        "failed", "the webhook at 127.0.0.1 answered HTTP 500 (simulated), after 3 attempts"
    )
    second = check(store, receiver, session, usage(461), at(5))
    third = check(store, receiver, session, usage(461), at(10))

    assert [n.id for n in first.to_send] == [n.id for n in second.to_send]
    assert second.decision.events == ()  # re-sent from the outbox, not decided again
    assert third.to_send == []
    assert [item.status for item in receiver.received] == [500, 500, 500, 200]
    assert delivered_events(receiver) == ["breach"]
    assert store.alerts.outbox()[0]["attempts"] == 2


def test_a_resolve_waits_until_its_breach_reached_that_channel(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.set_down(True)
    check(store, receiver, session, usage(461), at(0))  # breach: failed
    receiver.set_down(False)
    second = check(store, receiver, session, usage(300), at(5))  # resolved: the breach first
    third = check(store, receiver, session, usage(300), at(10))

    assert [n.payload["event"] for n in second.to_send] == ["breach"]
    assert [e.event for e in second.decision.events] == ["resolved"]
    assert [n.payload["event"] for n in third.to_send] == ["resolved"]
    assert delivered_events(receiver) == ["breach", "resolved"]
    assert [entry["status"] for entry in store.alerts.outbox()] == ["delivered", "delivered"]


def test_quiet_hours_hold_new_events_and_retries(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.set_down(True)
    check(store, receiver, session, usage(461), at(0))  # breach: failed
    receiver.set_down(False)

    quiet = store.alerts.evaluate(usage(480), POLICY, at(5), ["webhook"], quiet=True)
    after = check(store, receiver, session, usage(480), at(10))

    assert quiet.to_send == []
    assert [e.event for e in quiet.decision.state.held] == ["escalation"]
    assert [n.payload["event"] for n in after.to_send] == ["breach"]  # the escalation waits
    check(store, receiver, session, usage(480), at(15))
    assert delivered_events(receiver) == ["breach", "escalation"]


def test_checks_storage_could_not_record_alert_once_it_is_back(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    check(store, receiver, session, usage(461), at(0))
    down = "Table Storage at 127.0.0.1:1 could not be reached while reading the alert state"
    for minute in (5, 10, 10, 15):  # a retried activity notes the same check twice
        store.alerts.note_unrecorded(at(minute), down)

    back = check(store, receiver, session, usage(461), at(20))
    later = check(store, receiver, session, usage(461), at(25))

    assert [e.event for e in back.decision.events] == ["monitor_failing", "monitor_recovered"]
    assert delivered_events(receiver) == ["breach", "monitor_failing", "monitor_recovered"]
    assert receiver.delivered[1].body["cause"] == "storage_unavailable"
    assert "3 times in a row" in receiver.delivered[1].body["message"]
    assert later.decision.events == ()
    assert store.alerts.load_state().level == "warning"


def test_claimed_but_unconfirmed_notification_waits_for_its_lease(store: StateStore) -> None:
    first = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"])  # then the sender crashed

    lease_ends = at(0) + DEFAULT_LEASE
    during_lease = store.alerts.evaluate(
        usage(461), POLICY, lease_ends - timedelta(seconds=1), ["webhook"])
    after_lease = store.alerts.evaluate(usage(461), POLICY, lease_ends, ["webhook"])

    assert len(first.to_send) == 1
    assert during_lease.to_send == []
    assert after_lease.to_send == first.to_send


def test_delivered_notification_is_never_sent_again(store: StateStore) -> None:
    first = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"])
    [notification] = first.to_send
    store.alerts.mark_delivered(notification.id, at(1))
    store.alerts.mark_failed(notification.id, "a duplicate attempt timed out", at(2))

    later = [store.alerts.evaluate(usage(461), POLICY, at(minute), ["webhook"])
             for minute in (15, 30)]

    assert [entry["status"] for entry in store.alerts.outbox()] == ["delivered"]
    assert [evaluation.to_send for evaluation in later] == [[], []]


def test_every_configured_channel_gets_its_own_claim(store: StateStore) -> None:
    evaluation = store.alerts.evaluate(usage(480), POLICY, NOW, ["webhook", "teams", "webhook"])

    assert [n.id for n in evaluation.to_send] == [
        "breach-20261126T120000Z:breach:webhook", "breach-20261126T120000Z:breach:teams",
    ]
    assert {n.payload["level"] for n in evaluation.to_send} == {"critical"}


def test_a_removed_channel_is_not_retried(store: StateStore) -> None:
    evaluation = store.alerts.evaluate(usage(480), POLICY, at(0), ["webhook", "teams"])
    for notification in evaluation.to_send:
        store.alerts.mark_failed(notification.id, "down", at(0))

    retry = store.alerts.evaluate(usage(480), POLICY, at(5), ["webhook"])

    assert [n.channel for n in retry.to_send] == ["webhook"]


def test_notification_undelivered_for_a_day_is_abandoned(store: StateStore) -> None:
    [notification] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.alerts.mark_failed(notification.id, "down", at(1))

    retry = store.alerts.evaluate(usage(461), POLICY, at(24 * 60), ["webhook"])

    assert retry.to_send == []
    assert [entry["status"] for entry in store.alerts.outbox()] == ["abandoned"]


def test_delivered_entries_leave_the_outbox_after_a_week(store: StateStore) -> None:
    [notification] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.alerts.mark_delivered(notification.id, at(0))

    store.alerts.evaluate(usage(461), POLICY, at(6 * 24 * 60), ["webhook"])
    kept = store.alerts.outbox()
    store.alerts.evaluate(usage(461), POLICY, at(7 * 24 * 60 + 1), ["webhook"])

    assert len(kept) == 1
    assert store.alerts.outbox() == []


def test_monitor_failing_is_claimed_once_and_recovery_follows(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute in range(0, 25, 5):
        check(store, receiver, session, CheckFailure("Genesys Cloud is unavailable."), at(minute))
    check(store, receiver, session, usage(100), at(30))

    assert delivered_events(receiver) == ["monitor_failing", "monitor_recovered"]
    assert {item.body["alert_id"] for item in receiver.delivered} == {"failing-20261126T120000Z"}


def test_evaluation_survives_a_json_round_trip(store: StateStore) -> None:
    evaluation = store.alerts.evaluate(usage(480), POLICY, NOW, ["webhook"])

    assert Evaluation.from_dict(evaluation.to_dict()) == evaluation




def test_a_rejected_breach_does_not_hold_back_its_resolve(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    [breach] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.alerts.mark_rejected(breach.id, "the webhook at 127.0.0.1 answered HTTP 404", at(0))
    resolve = check(store, receiver, session, usage(300), at(5))
    later = check(store, receiver, session, usage(300), at(10))

    # Single channel: nobody else to tell, the check JSON still names it.
    assert [n.payload["event"] for n in resolve.to_send] == ["resolved"]
    assert [e.event for e in resolve.events] == ["resolved", "channel_rejected"]
    assert later.to_send == []
    assert later.channel_errors == ()
    assert delivered_events(receiver) == ["resolved"]
    assert [(e["status"], e["attempts"]) for e in store.alerts.outbox()] == [
        ("rejected", 1), ("delivered", 1)]


def test_a_rejection_is_announced_once_on_the_other_channels_until_the_channel_delivers(
    store: StateStore,
) -> None:
    channels = ["webhook", "slack"]
    claimed = store.alerts.evaluate(usage(461), POLICY, at(0), channels).to_send
    for notification in claimed:
        if notification.channel == "slack":
            store.alerts.mark_rejected(notification.id, "the Slack webhook at h answered HTTP "
                                       "403 (invalid_token)", at(0))
        else:
            store.alerts.mark_delivered(notification.id, at(0))
    announced = store.alerts.evaluate(usage(480), POLICY, at(5), channels)
    for notification in announced.to_send:
        if notification.channel == "slack":  # the escalation: refused again
            store.alerts.mark_rejected(notification.id, "HTTP 403", at(5))
        else:
            store.alerts.mark_delivered(notification.id, at(5))
    quiet = store.alerts.evaluate(usage(480), POLICY, at(10), channels)

    assert sorted(n.id for n in announced.to_send) == [
        "breach-20261126T120000Z:escalation:slack", "breach-20261126T120000Z:escalation:webhook",
        "channel-slack-20261126T120000Z:channel_rejected:webhook"]
    [notice] = [n for n in announced.to_send if n.payload["event"] == "channel_rejected"]
    assert notice.payload["message"] == (
        "Slack rejects our messages: HTTP 403 (invalid_token); check SLACK_WEBHOOK_URL")
    assert quiet.to_send == []
    assert quiet.events == ()
    assert [item["channel"] for item in quiet.channel_errors] == ["slack"]

    store.alerts.mark_delivered("breach-20261126T120000Z:breach:slack", at(11))  # a late success
    assert store.alerts.channel_errors() == []


def test_the_same_check_evaluated_again_gets_its_own_unsent_claims(store: StateStore) -> None:
    first = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"], check_id="check-a")
    again = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"], check_id="check-a")
    other = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"], check_id="check-b")
    [notification] = first.to_send
    store.alerts.mark_delivered(notification.id, at(0))
    after_delivery = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"],
                                           check_id="check-a")

    assert again == first
    assert (other.to_send, other.decision.events) == ([], ())
    assert after_delivery.to_send == []
    assert after_delivery.decision == first.decision
    assert store.alerts.outbox()[0]["checked_at"] == "2026-11-26T12:00:00.000Z"


@pytest.mark.parametrize("status", [408, 429])
def test_a_timeout_or_throttle_answer_is_retried_not_rejected(
    store: StateStore, receiver: HttpReceiver, session: requests.Session, status: int
) -> None:
    receiver.fail_next(1, status=status)
    check(store, receiver, session, usage(461), at(0))

    assert [item.status for item in receiver.received] == [status, 200]
    assert [entry["status"] for entry in store.alerts.outbox()] == ["delivered"]
