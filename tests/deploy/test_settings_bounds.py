"""d. The Bicep bounds of integer settings are the app's ranges (settings.py INTEGER_RANGES)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from license_monitor.settings import INTEGER_RANGES
from tests.deploy.conftest import ROOT, caught_by
from tests.infra.mutations import Mutation
from tests.infra.settings_bounds import bound_problems, integer_ranges


def test_the_ranges_read_from_the_source_are_the_ones_the_app_uses() -> None:
    assert integer_ranges(ROOT / "license_monitor" / "settings.py") == INTEGER_RANGES


def test_every_integer_setting_parameter_has_the_apps_bounds() -> None:
    problems, compared = bound_problems(ROOT)
    assert problems == []
    assert compared >= 11


@pytest.mark.parametrize("mutation", caught_by("bounds"), ids=lambda m: m.id)
def test_a_planted_disagreement_is_reported(mutation: Mutation,
                                            planted: Callable[[str], Path]) -> None:
    problems, _ = bound_problems(planted(mutation.id))
    assert problems, f"{mutation.id} was not reported"
