"""Every KQL query infra/ deploys (alert rules, workbook tiles), bound by Microsoft's engine.

tests/infra/kql.js runs @kusto/language-service-next under Node: a query must parse and bind
against the `customMetrics` table of Application Insights (no unknown column or function, no
syntax error), and its result columns must be what the rule or the tile reads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.bicep import INFRA, body, parse

HERE = Path(__file__).resolve().parent
# Application Insights' customMetrics table, as the alert rules (scoped to the Application
# Insights resource) and the workbook (resourceType microsoft.insights/components) see it:
# https://learn.microsoft.com/azure/azure-monitor/app/data-model-complete (custom metrics).
CUSTOM_METRICS = (
    "(timestamp:datetime, name:string, value:real, valueCount:int, valueSum:real, "
    "valueMin:real, valueMax:real, valueStdDev:real, customDimensions:dynamic, "
    "operation_Name:string, operation_Id:string, operation_ParentId:string, "
    "operation_SyntheticSource:string, session_Id:string, user_Id:string, "
    "user_AuthenticatedId:string, user_AccountId:string, application_Version:string, "
    "client_Type:string, client_Model:string, client_OS:string, client_IP:string, "
    "client_City:string, client_StateOrProvince:string, client_CountryOrRegion:string, "
    "client_Browser:string, cloud_RoleName:string, cloud_RoleInstance:string, appId:string, "
    "appName:string, iKey:string, sdkVersion:string, itemId:string, itemType:string, "
    "itemCount:int)"
)
# What the workbook's placeholders become at deployment (workbook.bicep): the defaults.
PLACEHOLDERS = {"__WARNING_PERCENT__": "90", "__CRITICAL_PERCENT__": "95",
                "__BILLING_ANCHOR_DAY__": "1",
                "__APPLICATION_INSIGHTS_ID__": "/subscriptions/0/resourceGroups/rg/providers/"
                                               "microsoft.insights/components/appi"}
NUMERIC = {"int", "long", "real", "decimal"}
CHARTS = {"timechart", "areachart", "barchart", "linechart"}
# What each rule and tile reads from its query's result, in order.
EXPECTED_COLUMNS = {
    "alert watchdog[0]": ["reported", "first_reported", "successes"],
    "alert utilization[0]": ["timestamp", "utilization", "org"],
    "tile latest": ["figure", "value", "recorded"],
    "tile today": ["timestamp", "peak", "now_in_use", "capacity", "warning", "critical"],
    "tile split": ["timestamp", "agents", "admins"],
    "tile naive": ["timestamp", "peak", "window_distinct"],
    "tile period": ["billing_period_start", "license_capacity", "billable_peak_so_far",
                    "seconds_over_capacity", "highest_peak", "checks", "checks_over_capacity"],
    "tile period-chart": ["timestamp", "billable_peak", "highest_peak", "capacity"],
    "tile alerts": ["event", "channel", "delivered", "last_delivered"],
    "tile failures": ["timestamp", "checks", "failed"],
}


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    expects: dict[str, Any]


def alert_queries(infra: Path = INFRA) -> list[Query]:
    queries = []
    for symbol, resource in parse(infra / "app" / "alerts.bicep")["resources"].items():
        if resource["type"] != "Microsoft.Insights/scheduledQueryRules":
            continue
        for position, criterion in enumerate(body(resource)["properties"]["criteria"]["allOf"]):
            queries.append(Query(f"alert {symbol}[{position}]", criterion["query"],
                                 {"rule": criterion}))
    return queries


def workbook_queries(infra: Path = INFRA) -> list[Query]:
    text = (infra / "workbook.json").read_text(encoding="utf-8")
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    workbook = json.loads(text)
    return [Query(f"tile {item['name']}", item["content"]["query"],
                  {"visualization": item["content"].get("visualization")})
            for item in workbook["items"] if item["type"] == 3]


def documented_queries(root: Path) -> list[Query]:
    """The ```kusto blocks of README.md and docs/*.md, which users paste into Logs."""
    queries = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if not path.is_file():
            continue
        blocks = re.findall(r"```kusto\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)
        queries += [Query(f"{path.relative_to(root)} [{position}]", block, {})
                    for position, block in enumerate(blocks)]
    return queries


def bind(queries: list[Query]) -> dict[str, dict[str, Any]]:
    """Diagnostics and result columns of each query, by id."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is needed to run Microsoft's Kusto parser (kql.js).")
    request = {"tables": {"customMetrics": CUSTOM_METRICS},
               "queries": [{"id": query.id, "text": query.text} for query in queries]}
    completed = subprocess.run([node, str(HERE / "kql.js")], input=json.dumps(request),
                               capture_output=True, text=True, check=False, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"kql.js failed: {completed.stderr.strip()[-2000:]}")
    return {result["id"]: result for result in json.loads(completed.stdout)}


def problems(query: Query, result: dict[str, Any], expected_columns: list[str]) -> list[str]:
    """What is wrong with one bound query: errors, and columns other than expected."""
    found = [f"{query.id}: {d['code']} {d['message']} (at {d['start']})"
             for d in result["diagnostics"] if d["severity"] == "Error"]
    columns = {column["name"]: column["type"] for column in result["columns"] or []}
    if not found and list(columns) != expected_columns:
        found.append(f"{query.id}: result columns {list(columns)}, expected {expected_columns}")
    rule = query.expects.get("rule")
    if rule:
        measure = rule.get("metricMeasureColumn")
        if measure is not None and columns.get(measure) not in NUMERIC:
            found.append(f"{query.id}: metricMeasureColumn {measure!r} is not a numeric "
                         f"result column ({columns})")
        for dimension in rule.get("dimensions") or []:
            if dimension["name"] not in columns:
                found.append(f"{query.id}: dimension {dimension['name']!r} is not a result "
                             "column")
    if query.expects.get("visualization") in CHARTS and columns:
        kinds = list(columns.values())
        if kinds[0] != "datetime" or not any(kind in NUMERIC for kind in kinds[1:]):
            found.append(f"{query.id}: a {query.expects['visualization']} needs a datetime "
                         f"first and a number ({columns})")
    return found
