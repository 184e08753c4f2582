"""Table Storage, one module per concern over one shared table client (see table.py's layout).

`StateStore` only builds the shared `StateTable` and hands it to each concern:
`alerts` (alert state + notification outbox; `alert_row` reads and writes its entity,
`outbox` its lanes), `roster` (roster cache), `samples` (one usage sample per check),
`billing` (billing minutes + period histogram), `retention`,
`organization` (which org key a client's state is under, and moving it there) and `gauge` (the
real-time presence gauge).
"""

from __future__ import annotations

from typing import Any

from license_monitor.state.alerts import AlertStateUnreadable, AlertStore, Evaluation
from license_monitor.state.billing import BillingLedger, BillingSummary
from license_monitor.state.gauge import PresenceGauge
from license_monitor.state.organization import OrganizationKey
from license_monitor.state.retention import Retention
from license_monitor.state.rosters import RosterCache
from license_monitor.state.samples import SampleLog
from license_monitor.state.table import StateTable, StorageUnavailable

__all__ = [
    "AlertStateUnreadable",
    "AlertStore",
    "BillingLedger",
    "BillingSummary",
    "Evaluation",
    "OrganizationKey",
    "PresenceGauge",
    "Retention",
    "RosterCache",
    "SampleLog",
    "StateStore",
    "StateTable",
    "StorageUnavailable",
]


class StateStore:
    """One org's state: each concern over the same table."""

    def __init__(self, table: StateTable) -> None:
        self.table = table
        self.alerts = AlertStore(table)
        self.roster = RosterCache(table)
        self.samples = SampleLog(table)
        self.billing = BillingLedger(table)
        self.retention = Retention(table)
        self.organization = OrganizationKey(table)
        self.gauge = PresenceGauge(table)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str, org_key: str, *, retry_total: int = 3,
        by_client: bool = False,
    ) -> StateStore:
        """A store from a storage connection string (Azurite locally, a key or SAS in Azure).

        With `by_client`, `org_key` is the client key and the org's key is found through the
        client's pointer (state/table.py).
        """
        return cls(StateTable.from_connection_string(
            connection_string, table_name, org_key, retry_total=retry_total,
            by_client=by_client))

    @classmethod
    def from_account_url(
        cls, url: str, credential: Any, table_name: str, org_key: str, *, retry_total: int = 3,
        by_client: bool = False,
    ) -> StateStore:
        """A store from a table endpoint and a credential (managed identity in Azure)."""
        return cls(StateTable.from_account_url(
            url, credential, table_name, org_key, retry_total=retry_total,
            by_client=by_client))
