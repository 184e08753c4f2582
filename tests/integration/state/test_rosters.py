"""The roster cache in Azurite."""

from __future__ import annotations

import uuid

from azure.data.tables import TableServiceClient

from license_monitor.roster import Roster
from license_monitor.state import (
    StateStore,
)
from tests.integration.state.helpers import (
    NOW,
    ORG,
    at,
)


def roster_of(size: int) -> Roster:
    ids = [str(uuid.UUID(int=index * 7919 + 1)) for index in range(size)]
    return Roster(built_at=NOW, pool_source="licenses", agents=frozenset(ids[: size * 9 // 10]),
                  admins=frozenset(ids[size * 9 // 10 :]), excluded=frozenset({"communicate-1"}))


def test_roster_of_twenty_thousand_users_round_trips(store: StateStore) -> None:
    roster = roster_of(20_000)

    store.roster.save(roster.to_dict(), NOW)
    loaded = store.roster.load()

    assert loaded is not None
    assert Roster.from_dict(loaded) == roster


def test_smaller_roster_replaces_a_bigger_one_completely(
    store: StateStore, table_service: TableServiceClient, table_name: str
) -> None:
    store.roster.save(roster_of(20_000).to_dict(), NOW)
    small = roster_of(10)

    store.roster.save(small.to_dict(), at(60))

    assert store.roster.load() == small.to_dict()
    rows = table_service.get_table_client(table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": ORG}, select=["RowKey"])
    assert sorted(row["RowKey"] for row in rows) == ["roster", "roster|0000"]


def test_no_roster_cached_yet(store: StateStore) -> None:
    assert store.roster.load() is None

