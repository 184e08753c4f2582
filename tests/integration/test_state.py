"""Alert state, outbox, billing minutes and roster cache in Azurite, with a real receiver."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from azure.data.tables import TableServiceClient

from license_monitor.alerting import AlertState, CheckFailure, Policy, Usage
from license_monitor.notify import DeliveryError, send
from license_monitor.roster import Roster
from license_monitor.state import (
    Evaluation,
    StateStore,
    StorageUnavailable,
)
from simulator.azurite import (
    DEV_KEY,
    Azurite,
    connection_string,
    free_port,
    start_azurite,
)
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


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False
        yield http


@pytest.fixture
def store(azurite: Azurite, table_name: str) -> StateStore:
    return StateStore.from_connection_string(azurite.connection_string, table_name, ORG)


@pytest.fixture
def receiver(webhook_receiver: Callable[..., HttpReceiver]) -> HttpReceiver:
    return webhook_receiver()


def deliver(store: StateStore, evaluation: Evaluation, receiver: HttpReceiver,
            session: requests.Session, now: datetime) -> None:
    """What the notify activity does: send each claimed notification, then record the outcome."""
    for notification in evaluation.to_send:
        try:
            send(notification.channel, {"url": receiver.url, "secret": SECRET}, notification,
                 session=session, now=now, sleep=no_sleep)
        except DeliveryError as err:
            store.mark_failed(notification.id, str(err), now)
        else:
            store.mark_delivered(notification.id, now)


def check(store: StateStore, receiver: HttpReceiver, session: requests.Session,
          outcome: Usage | CheckFailure, now: datetime) -> Evaluation:
    evaluation = store.evaluate(outcome, POLICY, now, ["webhook"])
    deliver(store, evaluation, receiver, session, now)
    return evaluation


def delivered_events(receiver: HttpReceiver) -> list[str]:
    return [item.body["event"] for item in receiver.delivered]


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


# ---- alert state and notifications ----------------------------------------------------------

def test_breach_notifies_once_across_three_checks(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute in (0, 5, 10):
        check(store, receiver, session, usage(461), at(minute))

    assert delivered_events(receiver) == ["breach"]
    [breach] = receiver.delivered
    assert breach.body["alert_id"] == "breach-20261126T120000Z"
    assert breach.headers["webhook-id"] == "breach-20261126T120000Z:breach:webhook"
    assert store.load_state().level == "warning"
    assert [entry["status"] for entry in store.outbox()] == ["delivered"]


def test_escalation_notifies_once(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute, concurrent in enumerate((461, 480, 485, 470, 480)):
        check(store, receiver, session, usage(concurrent), at(5 * minute))

    assert delivered_events(receiver) == ["breach", "escalation"]
    assert store.load_state().level == "critical"


def test_resolved_notifies_once_with_the_breach_alert_id(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute, concurrent in enumerate((461, 400, 400, 380)):
        check(store, receiver, session, usage(concurrent), at(5 * minute))

    assert delivered_events(receiver) == ["breach", "resolved"]
    assert {item.body["alert_id"] for item in receiver.delivered} == {"breach-20261126T120000Z"}
    assert store.load_state() == AlertState(level="ok", last_notified_at=at(5),
                                            last_usage=usage(380), last_checked_at=at(15))


@pytest.mark.parametrize("earlier_check", [False, True], ids=["first check", "state exists"])
def test_ten_simultaneous_evaluations_claim_the_breach_once(
    azurite: Azurite, table_name: str, earlier_check: bool
) -> None:
    stores = [StateStore.from_connection_string(azurite.connection_string, table_name, ORG)
              for _ in range(10)]
    if earlier_check:  # the race is then on the conditional update, not on the insert
        stores[0].evaluate(usage(300), POLICY, NOW - timedelta(minutes=5), ["webhook"])
    start = threading.Barrier(len(stores))
    results: list[Evaluation] = []
    errors: list[BaseException] = []

    def evaluate(store: StateStore) -> None:
        start.wait()
        try:
            results.append(store.evaluate(usage(461), POLICY, NOW, ["webhook"]))
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
    assert len(stores[0].outbox()) == 1


def test_failed_delivery_is_claimed_again_by_the_next_check_and_delivered_once(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.fail_next(3, status=500)  # every attempt of the first delivery fails

    first = check(store, receiver, session, usage(461), at(0))
    [entry] = store.outbox()
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
    assert store.outbox()[0]["attempts"] == 2


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
    assert [entry["status"] for entry in store.outbox()] == ["delivered", "delivered"]


def test_quiet_hours_hold_new_events_and_retries(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    receiver.set_down(True)
    check(store, receiver, session, usage(461), at(0))  # breach: failed
    receiver.set_down(False)

    quiet = store.evaluate(usage(480), POLICY, at(5), ["webhook"], quiet=True)
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
        store.note_unrecorded(at(minute), down)

    back = check(store, receiver, session, usage(461), at(20))
    later = check(store, receiver, session, usage(461), at(25))

    assert [e.event for e in back.decision.events] == ["monitor_failing", "monitor_recovered"]
    assert delivered_events(receiver) == ["breach", "monitor_failing", "monitor_recovered"]
    assert receiver.delivered[1].body["cause"] == "storage_unavailable"
    assert "3 times in a row" in receiver.delivered[1].body["message"]
    assert later.decision.events == ()
    assert store.load_state().level == "warning"


def test_claimed_but_unconfirmed_notification_waits_for_its_lease(store: StateStore) -> None:
    first = store.evaluate(usage(461), POLICY, at(0), ["webhook"])  # then the sender crashed

    during_lease = store.evaluate(usage(461), POLICY, at(5), ["webhook"])
    after_lease = store.evaluate(usage(461), POLICY, at(10), ["webhook"])

    assert len(first.to_send) == 1
    assert during_lease.to_send == []
    assert after_lease.to_send == first.to_send


def test_delivered_notification_is_never_sent_again(store: StateStore) -> None:
    first = store.evaluate(usage(461), POLICY, at(0), ["webhook"])
    [notification] = first.to_send
    store.mark_delivered(notification.id, at(1))
    store.mark_failed(notification.id, "a duplicate attempt timed out", at(2))

    later = [store.evaluate(usage(461), POLICY, at(minute), ["webhook"]) for minute in (15, 30)]

    assert [entry["status"] for entry in store.outbox()] == ["delivered"]
    assert [evaluation.to_send for evaluation in later] == [[], []]


def test_every_configured_channel_gets_its_own_claim(store: StateStore) -> None:
    evaluation = store.evaluate(usage(480), POLICY, NOW, ["webhook", "teams", "webhook"])

    assert [n.id for n in evaluation.to_send] == [
        "breach-20261126T120000Z:breach:webhook", "breach-20261126T120000Z:breach:teams",
    ]
    assert {n.payload["level"] for n in evaluation.to_send} == {"critical"}


def test_a_removed_channel_is_not_retried(store: StateStore) -> None:
    evaluation = store.evaluate(usage(480), POLICY, at(0), ["webhook", "teams"])
    for notification in evaluation.to_send:
        store.mark_failed(notification.id, "down", at(0))

    retry = store.evaluate(usage(480), POLICY, at(5), ["webhook"])

    assert [n.channel for n in retry.to_send] == ["webhook"]


def test_notification_undelivered_for_a_day_is_abandoned(store: StateStore) -> None:
    [notification] = store.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.mark_failed(notification.id, "down", at(1))

    retry = store.evaluate(usage(461), POLICY, at(24 * 60), ["webhook"])

    assert retry.to_send == []
    assert [entry["status"] for entry in store.outbox()] == ["abandoned"]


def test_delivered_entries_leave_the_outbox_after_a_week(store: StateStore) -> None:
    [notification] = store.evaluate(usage(461), POLICY, at(0), ["webhook"]).to_send
    store.mark_delivered(notification.id, at(0))

    store.evaluate(usage(461), POLICY, at(6 * 24 * 60), ["webhook"])
    kept = store.outbox()
    store.evaluate(usage(461), POLICY, at(7 * 24 * 60 + 1), ["webhook"])

    assert len(kept) == 1
    assert store.outbox() == []


def test_monitor_failing_is_claimed_once_and_recovery_follows(
    store: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    for minute in range(0, 25, 5):
        check(store, receiver, session, CheckFailure("Genesys Cloud is unavailable."), at(minute))
    check(store, receiver, session, usage(100), at(30))

    assert delivered_events(receiver) == ["monitor_failing", "monitor_recovered"]
    assert {item.body["alert_id"] for item in receiver.delivered} == {"failing-20261126T120000Z"}


def test_evaluation_survives_a_json_round_trip(store: StateStore) -> None:
    evaluation = store.evaluate(usage(480), POLICY, NOW, ["webhook"])

    assert Evaluation.from_dict(evaluation.to_dict()) == evaluation


# ---- billing minutes ------------------------------------------------------------------------

def minutes(start: datetime, count: int, level: int) -> dict[datetime, int]:
    return {start + timedelta(minutes=index): level for index in range(count)}


def test_recording_the_same_minutes_again_changes_nothing(
    store: StateStore, table_service: TableServiceClient, table_name: str
) -> None:
    window = minutes(NOW, 15, 100) | minutes(at(15), 15, 120)

    first = store.record_minutes(PERIOD, window)
    again = store.record_minutes(PERIOD, window)

    assert again == first
    assert (first.billable_peak, first.minutes_recorded, first.peak_level) == (100, 30, 120)
    rows = table_service.get_table_client(table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": f"{ORG}|minutes|2026-11-01"})
    assert sum(1 for row in rows if row["RowKey"] != "histogram") == 30


def test_overlapping_windows_keep_each_minutes_highest_level(store: StateStore) -> None:
    store.record_minutes(PERIOD, minutes(NOW, 15, 100) | minutes(at(15), 15, 120))

    overlap = store.record_minutes(PERIOD, minutes(at(10), 15, 110))
    higher = store.record_minutes(PERIOD, minutes(at(30), 10, 130))

    # 12:00-12:09 at 100, 12:10-12:14 raised to 110, 12:15-12:29 stay 120.
    assert overlap.histogram == {100: 10, 110: 5, 120: 15}
    assert overlap.billable_peak == 100
    # 30 minutes at 110 or more now: 5 at 110, 15 at 120, 10 at 130.
    assert higher.billable_peak == 110
    assert higher.minutes_at_or_above(121) == 10
    assert store.billing_summary(PERIOD) == higher


def test_long_backfill_is_recorded_in_batches(store: StateStore) -> None:
    summary = store.record_minutes(PERIOD, minutes(NOW, 250, 42))

    assert summary.histogram == {42: 250}
    assert store.record_minutes(PERIOD, minutes(NOW, 250, 42)) == summary


def test_minutes_before_the_period_are_not_counted_in_it(store: StateStore) -> None:
    period_start = datetime(2026, 11, 1, tzinfo=UTC)

    summary = store.record_minutes(PERIOD, minutes(period_start - timedelta(minutes=5), 10, 7))

    assert summary.minutes_recorded == 5


def test_racing_recorders_count_each_minute_once(azurite: Azurite, table_name: str) -> None:
    stores = [StateStore.from_connection_string(azurite.connection_string, table_name, ORG)
              for _ in range(5)]
    # Overlapping windows with different levels: recorder i covers minutes 6i .. 6i+11.
    windows = [minutes(at(6 * index), 12, 300 + index) for index in range(len(stores))]
    highest: dict[datetime, int] = {}
    for window in windows:
        for minute, level in window.items():
            highest[minute] = max(level, highest.get(minute, 0))
    expected = Counter(highest.values())
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def record(store: StateStore, window: dict[datetime, int]) -> None:
        start.wait()
        try:
            store.record_minutes(PERIOD, window)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=record, args=pair) for pair in zip(stores, windows,
                                                                           strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert stores[0].billing_summary(PERIOD).histogram == dict(expected)


def test_whole_minutes_only(store: StateStore) -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        store.record_minutes(PERIOD, {NOW + timedelta(seconds=30): 1})


# ---- samples and retention ------------------------------------------------------------------

def test_samples_are_idempotent_and_purged_with_old_minutes(store: StateStore) -> None:
    july, august = NOW - timedelta(days=130), NOW - timedelta(days=95)
    recent = NOW - timedelta(days=1)
    store.save_sample({"concurrent": 1, "checked_at": july}, july)
    store.save_sample({"concurrent": 2}, recent)
    store.save_sample({"concurrent": 3}, recent)  # the same check re-run: overwrites
    store.record_minutes(date(2026, 7, 1), minutes(july, 3, 5))
    store.record_minutes(date(2026, 8, 1), minutes(august, 2, 5))
    store.record_minutes(PERIOD, minutes(recent, 3, 5))
    cutoff = NOW - timedelta(days=90)  # 2026-08-28: August's period may not be over yet

    assert store.samples_between(july, NOW) == [
        {"concurrent": 1, "checked_at": "2026-07-19T12:00:00Z"}, {"concurrent": 3},
    ]
    removed = store.purge_older_than(cutoff)

    # One sample, 3 + 2 minute rows, and July's histogram; August keeps its histogram.
    assert removed == 1 + 5 + 1
    assert store.samples_between(july, NOW) == [{"concurrent": 3}]
    assert store.billing_summary(date(2026, 7, 1)).minutes_recorded == 0
    assert store.billing_summary(date(2026, 8, 1)).minutes_recorded == 2
    assert store.billing_summary(PERIOD).minutes_recorded == 3
    assert store.purge_older_than(cutoff) == 0


# ---- roster cache ---------------------------------------------------------------------------

def roster_of(size: int) -> Roster:
    ids = [str(uuid.UUID(int=index * 7919 + 1)) for index in range(size)]
    return Roster(built_at=NOW, pool_source="licenses", agents=frozenset(ids[: size * 9 // 10]),
                  admins=frozenset(ids[size * 9 // 10 :]), excluded=frozenset({"communicate-1"}))


def test_roster_of_twenty_thousand_users_round_trips(store: StateStore) -> None:
    roster = roster_of(20_000)

    store.save_roster(roster.to_dict(), NOW)
    loaded = store.load_roster()

    assert loaded is not None
    assert Roster.from_dict(loaded) == roster


def test_smaller_roster_replaces_a_bigger_one_completely(
    store: StateStore, table_service: TableServiceClient, table_name: str
) -> None:
    store.save_roster(roster_of(20_000).to_dict(), NOW)
    small = roster_of(10)

    store.save_roster(small.to_dict(), at(60))

    assert store.load_roster() == small.to_dict()
    rows = table_service.get_table_client(table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": ORG}, select=["RowKey"])
    assert sorted(row["RowKey"] for row in rows) == ["roster", "roster|0000"]


def test_no_roster_cached_yet(store: StateStore) -> None:
    assert store.load_roster() is None


# ---- storage failures -----------------------------------------------------------------------

def test_unreachable_storage_is_reported_without_the_key() -> None:
    port = free_port()  # nothing listens there

    with pytest.raises(StorageUnavailable) as caught:
        StateStore.from_connection_string(connection_string(port), "alerts", ORG, retry_total=0)

    message = str(caught.value)
    assert message.startswith(f"Table Storage at 127.0.0.1:{port} could not be reached")
    assert DEV_KEY not in message
    assert "AccountKey" not in message
    assert caught.value.__cause__ is None


def test_storage_going_away_mid_run_raises_storage_unavailable() -> None:
    own = start_azurite()
    try:
        store = StateStore.from_connection_string(own.connection_string, "alerts", ORG,
                                                  retry_total=0)
    finally:
        own.stop()

    with pytest.raises(StorageUnavailable, match="could not be reached while reading the alert"):
        store.evaluate(usage(461), POLICY, NOW, ["webhook"])


def test_wrong_account_key_is_reported_without_either_key(azurite: Azurite) -> None:
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    bad = azurite.connection_string.replace(DEV_KEY, wrong_key)

    with pytest.raises(StorageUnavailable) as caught:
        StateStore.from_connection_string(bad, "alerts", ORG, retry_total=0)

    assert "rejected the credentials" in str(caught.value)
    assert wrong_key not in str(caught.value)
    assert DEV_KEY not in str(caught.value)


def test_malformed_connection_string_is_reported_without_echoing_it() -> None:
    with pytest.raises(StorageUnavailable, match="connection string is not valid") as caught:
        StateStore.from_connection_string(f"AccountKey={DEV_KEY};nonsense", "alerts", ORG)

    assert DEV_KEY not in str(caught.value)


@pytest.mark.parametrize("org_key", ["", "a/b", "a|b", "a#b", "a?b"])
def test_org_keys_that_cannot_be_table_keys_are_refused(azurite: Azurite, org_key: str) -> None:
    with pytest.raises(ValueError, match="org key"):
        StateStore.from_connection_string(azurite.connection_string, "alerts", org_key)
