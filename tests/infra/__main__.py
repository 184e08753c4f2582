"""The offline deployment validation as one command, with its figures.

    .venv/bin/python -m tests.infra

bash scripts/test runs it before pytest (tests/deploy/ holds the same checks as tests, each
with planted mistakes it must catch). Exit status 1 when anything is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.infra.azd import azd_problems
from tests.infra.azure_types import extract, findings
from tests.infra.bicep import resources
from tests.infra.kql import EXPECTED_COLUMNS, alert_queries, bind, problems, workbook_queries
from tests.infra.rules import RULES, broken
from tests.infra.settings_bounds import bound_problems

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    failures: list[str] = []

    declared = resources()
    type_findings = findings()
    failures += type_findings
    print(f"types: {len(declared)} resources of {len({r.key for r in declared})} type@apiVersion "
          f"checked against Azure/bicep-types-az@{extract()['source']['commit'][:12]}: "
          f"{len(type_findings)} problems")

    rule_findings = broken(ROOT)
    failures += [problem for found in rule_findings.values() for problem in found]
    print(f"rules: {len(RULES)} rules a schema cannot express: {len(rule_findings)} broken")

    queries = alert_queries() + workbook_queries()
    results = bind(queries)
    kql_findings = [problem for query in queries for problem in problems(
        query, results[query.id], EXPECTED_COLUMNS.get(query.id, []))]
    failures += kql_findings
    package = json.loads((ROOT / "node_modules" / "@kusto" / "language-service-next" /
                          "package.json").read_text(encoding="utf-8"))
    columns = sum(len(result["columns"] or []) for result in results.values())
    print(f"kql: {len(queries)} queries parsed and bound by {package['name']} "
          f"{package['version']}, {columns} result columns resolved: "
          f"{len(kql_findings)} problems")

    bounds, compared = bound_problems(ROOT)
    failures += bounds
    print(f"bounds: {compared} integer settings' Bicep bounds compared with settings.py: "
          f"{len(bounds)} disagreements")

    azd = azd_problems(ROOT)
    failures += azd
    print(f"azd: azure.yaml against azd's schema: {len(azd)} problems")

    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
