"""One OAuth client's request budget split between processes through a row in Azurite."""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import pytest

from license_monitor.genesys.budget import IDLE_SECONDS, RequestBudget
from license_monitor.state.budget_shares import (
    DEAD_SECONDS,
    RESTING_DEAD_SECONDS,
    SHARES_ROW,
    BudgetShares,
)
from license_monitor.state.table import StateTable
from simulator.azurite import Azurite, connection_string
from tests.fixtures.simulator import ManualClock
from tests.fixtures.storage_proxy import StorageProxy

CLIENT = "mypurecloud-com-client-1"
BUDGET = 300


def shares_of(azurite: Azurite, table_name: str, clock: ManualClock, name: str,
              *, client: str = CLIENT, budget: int = BUDGET) -> BudgetShares:
    table = StateTable.from_connection_string(azurite.connection_string, table_name, client)
    return BudgetShares(table, client, budget, process=name, service_clock=clock)


def stored(azurite: Azurite, table_name: str, client: str = CLIENT) -> dict[str, dict[str, object]]:
    table = StateTable.from_connection_string(azurite.connection_string, table_name, client)
    row = table.client.get_entity(f"{client}|budget", SHARES_ROW)
    entries: dict[str, dict[str, object]] = json.loads(row["shares"])
    return entries


def test_a_second_process_gets_half_once_the_first_renews(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    app = shares_of(azurite, table_name, sim_clock, "app")
    cli = shares_of(azurite, table_name, sim_clock, "cli")

    assert app.renew(0).limit == BUDGET  # alone: the whole budget
    # The app holds it all: the CLI gets nothing yet, and says it wants its part.
    assert cli.renew(0).limit == 0
    assert stored(azurite, table_name)["cli"]["wants"] is True
    # The app's window holds 200: it gives back down to that, not to an equal part.
    assert app.renew(200).limit == 200
    assert cli.renew(0).limit == 100
    # At its next renewal its window holds 90: it keeps an equal part, the CLI takes the rest.
    assert app.renew(90).limit == 150
    assert cli.renew(100).limit == 150
    assert app.renew(150).processes == 2
    assert sum(int(str(e["limit"])) for e in stored(azurite, table_name).values()) == BUDGET


def test_a_resting_process_keeps_only_what_its_window_holds_and_leaves_at_zero(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    app = shares_of(azurite, table_name, sim_clock, "app")
    cli = shares_of(azurite, table_name, sim_clock, "cli")
    app.renew(0)
    assert app.renew(40, resting=True).limit == 40
    assert cli.renew(0).limit == BUDGET - 40  # no waiting for the app's next check
    assert cli.renew(0, resting=True).limit == 0
    assert set(stored(azurite, table_name)) == {"app"}  # gone once its window is empty


def test_entries_of_stopped_processes_are_dropped_after_their_requests_left_the_window(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    crashed = shares_of(azurite, table_name, sim_clock, "crashed")
    ended = shares_of(azurite, table_name, sim_clock, "ended")
    app = shares_of(azurite, table_name, sim_clock, "app")
    crashed.renew(0)  # takes all 300 and is never heard of again
    assert app.renew(0).limit == 0
    sim_clock.advance(DEAD_SECONDS - 1)
    assert app.renew(0).limit == 0  # it may still be sending, or its requests still count
    sim_clock.advance(1)
    assert app.renew(0).limit == BUDGET
    assert set(stored(azurite, table_name)) == {"app"}

    app.renew(100, resting=True)  # the app rests with 100 in its window
    assert ended.renew(0).limit == BUDGET - 100
    ended.renew(60, resting=True)  # a CLI run that ended with 60 in its window
    sim_clock.advance(RESTING_DEAD_SECONDS - 1)
    assert app.renew(0).limit == BUDGET - 60
    sim_clock.advance(1)
    assert app.renew(0).limit == BUDGET


def test_other_clients_and_other_tables_do_not_share(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    first = shares_of(azurite, table_name, sim_clock, "a")
    other_client = shares_of(azurite, table_name, sim_clock, "b", client="mypurecloud-com-other")
    assert first.renew(0).limit == BUDGET
    assert other_client.renew(0).limit == BUDGET


def test_concurrent_renewals_never_hand_out_more_than_the_budget(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    # Four processes renewing at once with random windows: each write is conditional, so
    # after every renewal the shares in the row add up to the budget at most.
    processes = [shares_of(azurite, table_name, sim_clock, f"p{n}") for n in range(4)]
    seen: list[int] = []
    problems: list[str] = []

    def run(shares: BudgetShares, seed: int) -> None:
        rng = random.Random(seed)
        limit = 0
        for _ in range(15):
            in_window = rng.randint(0, limit)
            limit = shares.renew(in_window, resting=rng.random() < 0.2).limit
            if limit < in_window:
                problems.append(f"{shares.process}: limit {limit} below its window {in_window}")
            total = sum(int(str(e["limit"])) for e in stored(azurite, table_name).values())
            seen.append(total)

    threads = [threading.Thread(target=run, args=(p, n)) for n, p in enumerate(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems
    assert len(seen) == 60
    assert max(seen) <= BUDGET
    assert max(seen) > BUDGET // 2  # the shares were really taken, not all left at zero


def test_a_damaged_row_is_written_again(
    azurite: Azurite, table_name: str, sim_clock: ManualClock, caplog: pytest.LogCaptureFixture,
) -> None:
    app = shares_of(azurite, table_name, sim_clock, "app")
    app.renew(0)
    table = StateTable.from_connection_string(azurite.connection_string, table_name, CLIENT)
    table.client.upsert_entity({"PartitionKey": f"{CLIENT}|budget", "RowKey": SHARES_ROW,
                                "shares": "{not json"})
    with caplog.at_level(logging.WARNING):
        assert app.renew(10).limit == BUDGET
    assert "damaged" in caplog.text
    assert stored(azurite, table_name)["app"]["limit"] == BUDGET


def test_without_storage_a_process_keeps_to_an_equal_part_and_says_so_once(
    azurite: Azurite, table_name: str, sim_clock: ManualClock, storage_proxy: StorageProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = StateTable.from_connection_string(
        connection_string(storage_proxy.port), table_name, CLIENT, retry_total=0)
    app = BudgetShares(table, CLIENT, BUDGET, process="app", service_clock=sim_clock)
    cli = shares_of(azurite, table_name, sim_clock, "cli")
    app.renew(0)
    cli.renew(0)
    app.renew(0)
    assert app.share.processes == 2
    storage_proxy.set_down(True)
    with caplog.at_level(logging.WARNING):
        assert app.allowance(20) == BUDGET // 2
        assert app.allowance(160) == 160  # never below what its window holds
    assert caplog.text.count("not shared while storage fails") == 1
    storage_proxy.set_down(False)
    with caplog.at_level(logging.WARNING):
        assert app.allowance(20) == BUDGET // 2
    assert "shared again" in caplog.text


def test_the_budget_of_a_process_follows_its_share(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    # A RequestBudget sharing through the row, budget 10: the app holds it all, so the CLI
    # waits (asking again every second, sending nothing) until the app gives back to an
    # equal part, sends 5, and waits again until the app goes quiet.
    app = shares_of(azurite, table_name, sim_clock, "app", budget=10)
    budget_clock = ManualClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        budget_clock.advance(seconds)
        if len(slept) == 1:
            assert app.renew(5).limit == 5  # the app's next renewal: the CLI wants its part
        if len(slept) == 3:
            app.renew(0, resting=True)  # the app has gone quiet: all given back

    assert app.renew(0).limit == 10
    cli = RequestBudget(10, clock=budget_clock, sleep=sleep)
    cli.share_with(shares_of(azurite, table_name, sim_clock, "cli", budget=10))
    granted_after: list[int] = []
    for _ in range(10):
        cli.acquire()
        granted_after.append(len(slept))
    assert granted_after == [1, 1, 1, 1, 1, 3, 3, 3, 3, 3]
    assert slept == [1.0, 1.0, 1.0]
    assert stored(azurite, table_name)["cli"]["limit"] == 10
    cli.close()
    assert stored(azurite, table_name)["cli"]["limit"] == 10  # its window still holds 10


def test_a_process_that_stops_sending_gives_back_what_its_window_no_longer_holds(
    azurite: Azurite, table_name: str, sim_clock: ManualClock,
) -> None:
    # Real time: 3 requests, then nothing; after IDLE_SECONDS its thread keeps only those 3.
    budget = RequestBudget(BUDGET)
    budget.share_with(shares_of(azurite, table_name, sim_clock, "app"))
    for _ in range(3):
        budget.acquire()
    assert stored(azurite, table_name)["app"]["limit"] == BUDGET
    deadline = time.monotonic() + IDLE_SECONDS + 5
    while time.monotonic() < deadline and stored(azurite, table_name)["app"]["limit"] != 3:
        time.sleep(0.2)
    assert stored(azurite, table_name)["app"] == {
        "limit": 3, "at": sim_clock(), "wants": False, "resting": True}
    other = shares_of(azurite, table_name, sim_clock, "cli")
    assert other.renew(0).limit == BUDGET - 3
    other.renew(100, resting=True)
    budget.acquire()  # sending again: it asks first, and gets what the other left
    assert stored(azurite, table_name)["app"] == {
        "limit": BUDGET - 100, "at": sim_clock(), "wants": False, "resting": False}
    budget.close()
