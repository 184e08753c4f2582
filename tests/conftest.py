"""Fixtures shared by every test folder; each real server lives in its own plugin module."""

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.simulator",
    "tests.fixtures.receivers",
    "tests.fixtures.durable_extension",
    "tests.fixtures.monitor",
    "tests.fixtures.graph",
]
