"""Fixtures of the Table Storage tests: an org's store in a fresh Azurite table, a receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from license_monitor.state import StateStore
from simulator.azurite import Azurite
from tests.fixtures.receivers import HttpReceiver
from tests.integration.state.helpers import ORG


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
