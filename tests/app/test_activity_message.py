"""The orchestrator reports an activity's whole message, as Azure words the failure."""

from __future__ import annotations

import pytest

from license_monitor.settings import ConfigError
from orchestrators.license_check import activity_message


def azure_failure(exception: Exception) -> Exception:
    """The text Durable hands the orchestrator in Azure when an activity raised `exception`."""
    return Exception(
        "Activity function 'acquire_token' failed: Result: Failure\n"
        f"Exception: {type(exception).__name__}: {exception}\n"
        "Stack:   File \"/home/site/wwwroot/activities/check_activities.py\", line 20\n"
        f" \n {type(exception).__name__}")


def test_every_line_of_a_settings_error_reaches_the_report() -> None:
    error = ConfigError(["LICENSE_CAPACITY is missing: set it.", "WINDOW_MINUTES must be 1-1440."])
    assert activity_message(azure_failure(error)) == (
        "2 setting problem(s):\n"
        "  - LICENSE_CAPACITY is missing: set it.\n"
        "  - WINDOW_MINUTES must be 1-1440.")


@pytest.mark.parametrize(("text", "expected"), [
    ("Activity function 'x' failed: Result: Failure\n"
     "Exception: ConfigError: 2 setting problem(s):\n  - A\n  - B\nStack: ...",
     "2 setting problem(s):\n  - A\n  - B"),
    ("Activity function 'x' failed: Result: Failure\n"
     "Exception: AuthError: rejected (401)\nStack: ...", "rejected (401)"),
    ("Activity function 'x' failed: Result: Failure\n"
     "Exception: ConfigError: 1 setting problem(s):\n  - A", "1 setting problem(s):\n  - A"),
])
def test_the_message_ends_where_the_stack_begins(text: str, expected: str) -> None:
    assert activity_message(Exception(text)) == expected
