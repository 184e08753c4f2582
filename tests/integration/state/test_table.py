"""The shared table client: storage failures reported in one sentence, no keys."""

from __future__ import annotations

import pytest

from license_monitor.state import (
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
from tests.integration.state.helpers import (
    NOW,
    ORG,
    POLICY,
    usage,
)

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
        store.alerts.evaluate(usage(461), POLICY, NOW, ["webhook"])


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
