"""State follows the organization: a rotated OAuth client and an upgrade keep the breach and
the bill (real checks: simulator over HTTP, Azurite, the orchestration through the replay host)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from azure.data.tables import TableClient

from license_monitor import runtime
from license_monitor.state import StateStore
from license_monitor.state.table import POINTER_ROW
from tests.fixtures.monitor import World, world_settings

ORG_ME = "/api/v2/organizations/me"


def events_received(w: World) -> list[str]:
    return [item.body["event"] for item in w.receiver.delivered]


def new_worker(w: World, **env: str) -> None:
    """A fresh worker process (no memory of the org), optionally with other settings."""
    assert w.settings.state_connection is not None
    w.settings = world_settings(w.simulator, w.settings.state_connection, w.settings.state_table,
                                w.receiver, **env)
    w.services = runtime.Services.from_settings(w.settings, sleep=w.sleeps.append)
    runtime.install(w.services)


def partitions(w: World) -> dict[str, set[str]]:
    assert w.settings.state_connection is not None
    table = TableClient.from_connection_string(w.settings.state_connection,
                                               w.settings.state_table)
    found: dict[str, set[str]] = {}
    for row in table.list_entities(select=["PartitionKey", "RowKey"]):
        key = str(row["PartitionKey"])
        found.setdefault(key.split("|", maxsplit=1)[0], set()).add(str(row["RowKey"]))
    return found


def test_a_rotated_client_of_the_same_org_continues_the_breach_and_the_bill(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(92)
    first = w.check()
    first_key = w.settings.client_key
    assert first["events"] == ["breach"]
    assert first["billing"]["billable_peak"] < 92  # 15 minutes at 92: not yet billed

    # IT creates a new OAuth client and revokes the old one.
    w.simulator.add_client("rotated-client-id", "rotated-client-secret")
    w.simulator.client_secret = "revoked"
    new_worker(w, GENESYS_CLIENT_ID="rotated-client-id",
               GENESYS_CLIENT_SECRET="rotated-client-secret")
    w.at_level(93)
    after = w.check()

    assert after["level"] == "warning"
    assert after["events"] == []  # the open breach, not a new one
    assert events_received(w) == ["breach"]
    assert after["billing"]["billable_peak"] == 92  # 15 minutes of each client: 30 at 92+
    org = w.simulator.org.id
    stored = partitions(w)
    assert set(stored) == {org, first_key, w.settings.client_key}
    assert stored[first_key] == stored[w.settings.client_key] == {POINTER_ROW}


def test_state_written_by_the_previous_version_is_moved_on_the_first_check(
    world: Callable[..., World],
) -> None:
    w = world()
    # The previous version: every row under region + client id, no org id asked.
    assert w.settings.state_connection is not None
    w.services.state = StateStore.from_connection_string(
        w.settings.state_connection, w.settings.state_table, w.settings.client_key)
    w.at_level(92)
    assert w.check()["events"] == ["breach"]
    legacy = partitions(w)
    assert set(legacy) == {w.settings.client_key}
    roster_reads, org_reads = w.simulator.count("/api/v2/users"), w.simulator.count(ORG_ME)

    new_worker(w)  # the upgrade: same client, this version
    w.at_level(93)
    report = w.check()

    assert report["events"] == []
    assert report["level"] == "warning"
    assert events_received(w) == ["breach"]
    assert report["billing"]["billable_peak"] == 92  # the previous version's 15 minutes count
    assert w.simulator.count("/api/v2/users") == roster_reads  # the cached roster moved too
    assert w.simulator.count(ORG_ME) == org_reads + 1  # asked once: no pointer yet
    moved = partitions(w)
    assert moved.pop(w.settings.client_key) == {POINTER_ROW}
    assert moved == {w.simulator.org.id: legacy[w.settings.client_key]
                     | {f"2026-11-26T08:{m:02d}Z" for m in range(20, 40)}  # 08:20-24 caught up
                     | {"2026-11-26T08:40:00.000Z"}}
    # Nothing counts twice: the same check again changes no figure.
    again = w.check()
    assert again["billing"] == report["billing"]
    assert w.services.state is not None
    assert w.services.state.billing.summary(date(2026, 11, 1)).minutes_recorded == 35


def test_the_org_id_is_read_with_the_roster_not_on_every_check(
    world: Callable[..., World],
) -> None:
    w = world()
    for _ in range(3):
        w.at_level(50)
        w.check()
    assert w.simulator.count(ORG_ME) == 1

    new_worker(w)  # another process finds the org through the client's pointer
    w.at_level(50, minutes_later=10)
    w.check()
    assert w.simulator.count(ORG_ME) == 1

    w.at_level(50)  # the roster (built at 08:20) is older than ROSTER_TTL_MINUTES now
    w.check()
    assert w.simulator.count(ORG_ME) == 2
