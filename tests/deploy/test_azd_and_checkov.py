"""e. azure.yaml against azd's schema; checkov's skips each name a failure they answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, caught_by
from tests.infra.azd import azd_problems, checkov_failures, skips
from tests.infra.mutations import Mutation

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def test_azure_yaml_is_valid_for_azd() -> None:
    assert azd_problems(ROOT) == []


@pytest.mark.parametrize("mutation", caught_by("azd"), ids=lambda m: m.id)
def test_a_planted_azure_yaml_mistake_is_reported(mutation: Mutation,
                                                  planted: Callable[[str], Path]) -> None:
    assert azd_problems(planted(mutation.id)), f"{mutation.id} was not reported"


def test_every_checkov_skip_gives_a_reason() -> None:
    found = skips(ROOT / "infra")
    assert found
    for skip in found:
        assert len(skip["reason"].split()) >= 8, skip


def test_no_checkov_skip_outlives_the_failure_it_answers() -> None:
    """Without the skips, checkov fails exactly the skipped checks (none is stale)."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: bash scripts/test creates it (.venv-checkov).")
    failed = checkov_failures(CHECKOV, ROOT / "infra")
    skipped = {(skip["file"], skip["resource"], skip["check"]) for skip in skips(ROOT / "infra")}
    stale = sorted(skipped - failed)
    assert stale == [], f"skips for checks that pass anyway: {stale}"
    unanswered = sorted(failed - skipped)
    assert unanswered == [], f"checks that fail without a skip: {unanswered}"


def test_the_secrets_vault_keeps_purge_protection() -> None:
    # The old skip's reason (the vault name stays taken after `azd down`) holds for soft
    # delete alone as well; `az keyvault recover` brings the vault back (docs/deploy.md).
    assert not [skip for skip in skips(ROOT / "infra")
                if skip["check"] in {"CKV_AZURE_42", "CKV_AZURE_110"}]
    assert "enablePurgeProtection: true" in (ROOT / "infra" / "app" / "keyvault.bicep").read_text(
        encoding="utf-8")
