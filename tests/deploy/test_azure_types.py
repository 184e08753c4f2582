"""a. Every resource, property path, value and parameter in infra/ against Azure's published
resource type definitions (the extract of Azure/bicep-types-az in tests/infra/)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, caught_by
from tests.infra.azure_types import extract, findings
from tests.infra.bicep import declared_resource_types, resources
from tests.infra.mutations import Mutation


def test_the_extract_names_its_source_commit_and_refresh_script() -> None:
    source = extract()["source"]
    assert source["repository"] == "https://github.com/Azure/bicep-types-az"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert (ROOT / source["refreshed_by"]).is_file()
    for entry in extract()["resources"].values():
        assert re.fullmatch(r"generated/[\w./-]+/types\.json", entry["path"])


def test_the_extract_holds_exactly_the_types_infra_declares() -> None:
    # A new type or apiVersion in infra/ needs scripts/refresh_azure_types.py first.
    assert set(extract()["resources"]) == declared_resource_types()


def test_infra_matches_azures_resource_type_definitions() -> None:
    assert len(resources()) >= 20
    assert findings() == []


@pytest.mark.parametrize("mutation", caught_by("types"), ids=lambda m: m.id)
def test_a_planted_mistake_is_reported(mutation: Mutation,
                                       planted: Callable[[str], Path]) -> None:
    assert findings(planted(mutation.id) / "infra"), f"{mutation.id} was not reported"
