"""Fixtures shared by every test folder; each real server lives in its own plugin module."""

import os

import pytest
from hypothesis import settings

from license_monitor.genesys import auth

# Mutation runs (scripts/mutation) need the same examples for every mutant: a survivor must not
# be a matter of luck, and a killed mutant must stay killed on the next run.
settings.register_profile("mutation", derandomize=True, database=None)
MUTATION_RUN = os.environ.get("HYPOTHESIS_PROFILE") == "mutation"
settings.load_profile("mutation" if MUTATION_RUN else "default")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In mutation runs, example-based tests go before property tests.

    mutmut stops at the first failing test: most mutants are caught by a table test in
    milliseconds instead of after seconds of generated examples. The order is otherwise kept.
    `scripts/mutation --quick` (MUTATION_QUICK=1) leaves the property tests out altogether: a
    fast first look at what the example-based tests miss, never the score to report.
    """
    if not MUTATION_RUN:
        return
    items.sort(key=lambda item: hasattr(getattr(item, "obj", None), "hypothesis"))
    if os.environ.get("MUTATION_QUICK") == "1":
        properties = [item for item in items if hasattr(getattr(item, "obj", None), "hypothesis")]
        if properties:
            config.hook.pytest_deselected(items=properties)
            items[:] = [item for item in items if item not in properties]
