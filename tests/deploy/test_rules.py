"""b. The rules Azure's type definitions cannot express (tests/infra/rules.py), one table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, caught_by
from tests.infra.mutations import Mutation
from tests.infra.rules import DEPLOYED_PYTHON, RULES, Rule, broken

SCRIPTS_LIB = ROOT / "scripts" / "lib.sh"


def test_every_rule_says_where_it_comes_from() -> None:
    assert len({rule.id for rule in RULES}) == len(RULES) >= 10
    for rule in RULES:
        assert rule.statement.endswith("."), rule.id
        assert "https://" in rule.source, rule.id


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_the_deployment_keeps_the_rule(rule: Rule) -> None:
    assert rule.check(ROOT) == []


@pytest.mark.parametrize("mutation", caught_by("rules"), ids=lambda m: m.id)
def test_a_planted_mistake_breaks_a_rule(mutation: Mutation,
                                         planted: Callable[[str], Path]) -> None:
    assert broken(planted(mutation.id)), f"{mutation.id} broke no rule"


def test_the_scripts_test_on_the_python_azure_runs() -> None:
    text = SCRIPTS_LIB.read_text(encoding="utf-8")
    assert f'DEPLOYED_PYTHON="{DEPLOYED_PYTHON}"' in text
