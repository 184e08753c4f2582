"""Fixtures shared by every test folder; each real server lives in its own plugin module."""

import pytest

from license_monitor.genesys import auth

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.simulator",
    "tests.fixtures.receivers",
    "tests.fixtures.durable_extension",
    "tests.fixtures.monitor",
    "tests.fixtures.graph",
    "tests.fixtures.storage_proxy",
]


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    """Every test starts with an empty per-process token cache.

    Simulators share a client id and secret and the OS reuses ports, so a token cached by an
    earlier test could otherwise meet a later simulator at the same URL: one extra 401 and
    token request, and call counts that depend on test order.
    """
    auth.clear_cache()
