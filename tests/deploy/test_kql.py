"""c. Every KQL query infra/ deploys, parsed and bound by Microsoft's Kusto engine
(@kusto/language-service-next under Node) against Application Insights' customMetrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ROOT, caught_by
from tests.infra.kql import (
    EXPECTED_COLUMNS,
    Query,
    alert_queries,
    bind,
    documented_queries,
    problems,
    workbook_queries,
)
from tests.infra.mutations import Mutation, scratch_copy


def queries(root: Path) -> list[Query]:
    return alert_queries(root / "infra") + workbook_queries(root / "infra")


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The deployed queries and each planted mistake's, bound in one run of the engine."""
    planted: dict[str, list[Query]] = {}
    for mutation in caught_by("kql"):
        root = scratch_copy(ROOT, tmp_path_factory.mktemp(mutation.id))
        mutation.apply(root)
        planted[mutation.id] = [Query(f"{mutation.id}: {q.id}", q.text, q.expects)
                                for q in queries(root)]
    deployed = queries(ROOT)
    documented = documented_queries(ROOT)
    every = deployed + documented + [query for batch in planted.values() for query in batch]
    return {"deployed": deployed, "documented": documented, "planted": planted,
            "results": bind(every)}


def test_every_query_of_infra_is_checked(bound: dict[str, Any]) -> None:
    assert {query.id for query in bound["deployed"]} == set(EXPECTED_COLUMNS)


@pytest.mark.parametrize("query_id", sorted(EXPECTED_COLUMNS))
def test_the_query_binds_and_returns_what_its_reader_reads(query_id: str,
                                                           bound: dict[str, Any]) -> None:
    (query,) = [query for query in bound["deployed"] if query.id == query_id]
    result = bound["results"][query_id]
    assert problems(query, result, EXPECTED_COLUMNS[query_id]) == []
    assert [column["name"] for column in result["columns"]] == EXPECTED_COLUMNS[query_id]


def test_every_documented_query_binds(bound: dict[str, Any]) -> None:
    assert len(bound["documented"]) >= 3
    for query in bound["documented"]:
        errors = [d for d in bound["results"][query.id]["diagnostics"] if d["severity"] == "Error"]
        assert errors == [], query.id


@pytest.mark.parametrize("mutation", caught_by("kql"), ids=lambda m: m.id)
def test_a_planted_mistake_is_reported(mutation: Mutation, bound: dict[str, Any]) -> None:
    reported = [
        problem for query in bound["planted"][mutation.id]
        for problem in problems(query, bound["results"][query.id],
                                EXPECTED_COLUMNS[query.id.split(": ", 1)[1]])
    ]
    assert reported, f"{mutation.id} was not reported"
