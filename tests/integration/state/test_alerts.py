"""Alert state and the notification outbox in Azurite, with a real receiver."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from license_monitor.alerting import AlertState, CheckFailure
from license_monitor.settings import QuietWindow
from license_monitor.state import (
    Evaluation,
    StateStore,
)
from license_monitor.state.alerts import DEFAULT_LEASE
from license_monitor.times import format_time
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
    claimed,
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


def test_a_breach_that_ended_while_the_channel_was_down_arrives_as_one_line(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.set_down(True)
    check(store, receiver, session, usage(461), at(0))  # breach: failed
    receiver.set_down(False)
    second = check(store, receiver, session, usage(300), at(5))  # resolved: all of it at once
    third = check(store, receiver, session, usage(300), at(10))

    assert [n.payload["event"] for n in claimed(second)] == ["resolved"]
    assert [e.event for e in second.decision.events] == ["resolved"]
    assert claimed(third) == []
    [resolved] = receiver.delivered
    assert resolved.body["message"] == (
        "breach at 12:00 UTC (461 of 500, warning) ended at 12:05 UTC; 300 of 500 concurrent "
        "licenses in use (60.0%), below the 85% clear level")
    assert [entry["status"] for entry in store.alerts.outbox()] == ["superseded", "delivered"]


def test_a_resolve_waits_until_its_breach_reached_that_channel(store: StateStore) -> None:
    [breach] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    # The breach is on its way (claimed, its lease running) when the episode ends.
    during = store.alerts.evaluate(usage(300), POLICY, at(0.5), ["webhook"])
    store.alerts.mark_delivered(breach.id, at(0.75))
    after = store.alerts.evaluate(usage(300), POLICY, at(1), ["webhook"])

    assert claimed(during) == []
    assert [(n.payload["event"], n.payload["message"]) for n in claimed(after)] == [
        ("resolved", "300 of 500 concurrent licenses in use (60.0%), below the 85% clear level")]


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
    # The breach nobody heard goes out as it is now: critical; the escalation adds nothing.
    assert [(n.payload["event"], n.payload["level"]) for n in after.to_send] == [
        ("breach", "critical")]
    check(store, receiver, session, usage(480), at(15))
    assert delivered_events(receiver) == ["breach"]


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
    # Failing and recovered at once: one line says what happened and that it is over.
    assert delivered_events(receiver) == ["breach", "monitor_recovered"]
    assert receiver.delivered[1].body["cause"] == "storage_unavailable"
    assert receiver.delivered[1].body["message"].startswith(
        "checks failing since 12:05 UTC (storage unavailable) ended at 12:20 UTC; License "
        "checks work again after 3 failures: ")
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
    assert [n.id for n in after_lease.to_send] == [n.id for n in first.to_send]
    # Sent again as it is now (the receiver de-duplicates on the id).
    assert after_lease.to_send[0].payload["occurred_at"] == format_time(lease_ends)


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


def test_a_closed_episode_undelivered_for_a_day_is_given_up(store: StateStore) -> None:
    [breach] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.alerts.mark_failed(breach.id, "down", at(1))
    [resolved] = store.alerts.evaluate(usage(300), POLICY, at(5), ["webhook"]).to_send
    store.alerts.mark_failed(resolved.id, "down", at(6))

    before = store.alerts.evaluate(usage(300), POLICY, at(24 * 60 - 1), ["webhook"])
    store.alerts.mark_failed(resolved.id, "down", at(24 * 60 - 1))
    retry = store.alerts.evaluate(usage(300), POLICY, at(24 * 60), ["webhook"])

    assert [n.payload["event"] for n in before.to_send] == ["resolved"]
    assert retry.to_send == []
    assert [entry["status"] for entry in store.alerts.outbox()] == ["superseded", "abandoned"]


def test_an_open_breach_is_never_given_up_and_goes_out_current(store: StateStore) -> None:
    [breach] = store.alerts.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    for hour in range(1, 31):
        store.alerts.mark_failed(breach.id, "down", at(60 * hour - 59))
        retry = store.alerts.evaluate(usage(480), POLICY, at(60 * hour), ["webhook"])

    [current] = retry.to_send
    assert current.id == breach.id
    assert (current.payload["event"], current.payload["level"], current.payload["concurrent"],
            current.payload["occurred_at"]) == ("breach", "critical", 480, "2026-11-27T18:00:00Z")
    assert current.payload["message"].endswith("; breached since 26 Nov 12:00 UTC")


def test_quiet_hours_do_not_count_towards_giving_up(store: StateStore) -> None:
    # Quiet from Thursday 13:00 to Friday 17:00 UTC: 28 hours.
    quiet_hours = ([QuietWindow(frozenset({3}), 13 * 60, 24 * 60),
                    QuietWindow(frozenset({4}), 0, 17 * 60)], "UTC")

    def evaluate(concurrent: int, hours: float) -> Evaluation:
        return store.alerts.evaluate(usage(concurrent), POLICY, at(60 * hours), ["webhook"],
                                     quiet=13 <= 12 + hours < 41, quiet_hours=quiet_hours)

    [breach] = evaluate(461, 0).to_send
    store.alerts.mark_failed(breach.id, "down", at(1))
    [resolved] = evaluate(300, 0.5).to_send
    store.alerts.mark_failed(resolved.id, "down", at(31))
    for hour in range(1, 30):  # 29 checks, all but the last inside the window
        evaluate(300, hour)
    after = evaluate(300, 30)  # Friday 18:00

    assert [n.payload["event"] for n in claimed(after)] == ["resolved"]
    [entry] = [entry for entry in store.alerts.outbox() if entry["status"] == "claimed"]
    assert entry["owed_seconds"] == 2 * 3600  # the hour before the window, and the one after


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
    first = store.alerts.evaluate(usage(461), POLICY, at(0), channels).to_send
    for notification in first:
        if notification.channel == "slack":
            store.alerts.mark_rejected(notification.id, "the Slack webhook at h answered HTTP "
                                       "403 (invalid_token)", at(0))
        else:
            store.alerts.mark_delivered(notification.id, at(0))
    announced = store.alerts.evaluate(usage(480), POLICY, at(5), channels)
    for notification in claimed(announced):
        if notification.channel == "slack":  # the escalation: refused again
            store.alerts.mark_rejected(notification.id, "HTTP 403", at(5))
        else:
            store.alerts.mark_delivered(notification.id, at(5))
    quiet = store.alerts.evaluate(usage(480), POLICY, at(10), channels)

    assert sorted(n.id for n in claimed(announced)) == [
        "breach-20261126T120000Z:escalation:slack", "breach-20261126T120000Z:escalation:webhook",
        "channel-slack-20261126T120000Z:channel_rejected:webhook"]
    [notice] = [n for n in claimed(announced) if n.payload["event"] == "channel_rejected"]
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
