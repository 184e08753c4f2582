"""The Bicep in infra/ sets what the app reads, keeps secrets in Key Vault, grants the
identity only the roles the code uses, and its workbook and alerts name contract metrics.

The Bicep compiler cannot run here, so the files are read with pycep-parser (the parser
checkov uses) and the assertions walk the parsed documents.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from license_monitor.metrics import METRIC_NAMES
from license_monitor.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# The app settings the Azure platform, the Functions host or azure-identity read.
AZURE_SETTINGS = {
    "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri", "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AZURE_CLIENT_ID", "STATE_ACCOUNT_URL",
}
# Settings of DESIGN.md section 9 that settings.py does not parse yet.
ANNOUNCED_SETTINGS = {"CHECK_TIMEOUT_SECONDS", "CONCURRENT_POOL"}
SECRET_SETTINGS = (
    "GENESYS_CLIENT_SECRET", "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET", "TEAMS_WEBHOOK_URL",
    "SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "GRAPH_CLIENT_SECRET",
)

# Built-in role definition ids (Azure RBAC built-in roles reference).
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}

SETTING_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*|AzureWebJobsStorage__\w+)$")
METRIC_NAME = re.compile(r"license\.[a-z_.]+")
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.cache
def parsed(relative: str) -> dict[str, Any]:
    """One Bicep file of infra/ as pycep's JSON document."""
    document: dict[str, Any] = BicepParser().parse(file_path=INFRA / relative)
    return document


def resource_config(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body; pycep nests it one level deeper under a condition (`if`)."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "condition" in config else config


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every object in a parsed expression, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def strings(node: Any) -> Iterator[str]:
    """Every string in a parsed expression."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def app_settings() -> dict[str, list[Any]]:
    """Every app setting the template can set, with each value it can take.

    The `appsettings` resource in function.bicep is a union of the module's variables and
    its `monitorSettings` parameter, which main.bicep fills from its `monitorSettings`.
    """
    function = parsed("app/function.bicep")
    union = resource_config(function["resources"]["appSettings"])["properties"]["function"]
    assert union["type"] == "union"
    sources = set(union["parameters"].values())
    assert "monitorSettings" in sources
    module_params = parsed("main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert module_params["monitorSettings"] == "monitorSettings"

    expressions = [function["variables"][name]["value"] for name in sorted(sources - {
        "monitorSettings"})]
    expressions.append(parsed("main.bicep")["variables"]["monitorSettings"]["value"])
    settings: dict[str, list[Any]] = {}
    for expression in expressions:
        for key, value in walk(expression):
            if SETTING_NAME.match(key):
                settings.setdefault(key, []).append(value)
    return settings


def names_read_by_settings_py() -> set[str]:
    source = (ROOT / "license_monitor" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', source))


def required_by_code() -> set[str]:
    """The names Settings.from_env reports as missing when nothing is set."""
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})
    return {
        match.group(1) for problem in raised.value.problems
        if (match := re.match(r"([A-Z][A-Z0-9_]+) is missing", problem))
    }


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    document = parsed(str(path.relative_to(INFRA)))
    assert document["resources"] or document.get("modules")


def test_every_setting_the_app_requires_is_set_by_the_template() -> None:
    required = required_by_code()
    assert {"GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "LICENSE_CAPACITY"} <= required
    # The host resolves %MONITOR_SCHEDULE% before our code runs: required in Azure.
    required |= {"MONITOR_SCHEDULE"} | AZURE_SETTINGS
    missing = required - set(app_settings())
    assert not missing, f"the template does not set {sorted(missing)}"


def test_every_setting_the_template_sets_is_one_the_app_or_azure_reads() -> None:
    known = names_read_by_settings_py() | ANNOUNCED_SETTINGS | AZURE_SETTINGS
    unknown = set(app_settings()) - known
    assert not unknown, f"the template sets settings nobody reads: {sorted(unknown)}"


def test_platform_settings_flex_consumption_rejects_are_not_set() -> None:
    deprecated = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION",
                  "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE",
                  "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "AzureWebJobsStorage"}
    assert not deprecated & set(app_settings())


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_secret_is_only_ever_a_key_vault_reference(name: str) -> None:
    values = app_settings().get(name, [])
    if name == "GENESYS_CLIENT_SECRET":
        assert values, "the Genesys client secret must be set"
    for value in values:
        assert isinstance(value, str), f"{name} is set from an expression, not a reference"
        match = re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=\$\{secretsBaseUri\}([a-z-]+)/\)",
                             value)
        assert match, f"{name} is not a Key Vault reference: {value!r}"
        secret_names = {
            resource_config(resource)["name"]
            for resource in parsed("app/keyvault.bicep")["resources"].values()
            if resource["type"] == "Microsoft.KeyVault/vaults/secrets"
        }
        assert match.group(1) in secret_names


def test_secret_parameters_are_secure_and_not_in_the_plain_settings() -> None:
    parameters = parsed("main.bicep")["parameters"]
    plain = parsed("main.bicep")["variables"]["monitorSettings"]["value"]
    for name in SECRET_SETTINGS:
        parameter = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name.lower())
        assert {"type": "secure"} in parameters[parameter]["decorators"], parameter
        assert name not in plain
        assert parameter not in set(strings(plain)), f"{parameter} flows into a plain setting"


def test_key_vault_references_resolve_with_the_apps_identity_and_rbac() -> None:
    site = resource_config(parsed("app/function.bicep")["resources"]["site"])
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert site["identity"]["type"] == "UserAssigned"
    vault = resource_config(parsed("app/keyvault.bicep")["resources"]["vault"])
    assert vault["properties"]["enableRbacAuthorization"] is True


def role_assignments() -> list[tuple[str, str, str, Any]]:
    """(file, role id, type of the scope resource, principal) of every role assignment."""
    found = []
    for path in BICEP_FILES:
        document = parsed(str(path.relative_to(INFRA)))
        for resource in document["resources"].values():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            config = resource_config(resource)
            role = config["properties"]["roleDefinitionId"]["function"]["parameters"][
                "resource_name_1"]
            scope = document["resources"][config["scope"]]["type"]
            found.append((path.name, role, scope, config["properties"]["principalId"]))
    return found


def test_the_identity_holds_exactly_the_roles_the_code_uses() -> None:
    assignments = role_assignments()
    granted = {(role, scope) for _, role, scope, _ in assignments}
    assert granted == {
        (BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts"),
        (QUEUE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
        (TABLE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
        (KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults"),
        (MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components"),
    }
    assert len(assignments) == len(granted)
    for _, _, _, principal in assignments:
        assert "identity" in set(strings(principal)), "a role is granted to another principal"


def test_no_owner_or_contributor_role_anywhere() -> None:
    for path in BICEP_FILES:
        for guid in GUID.findall(path.read_text(encoding="utf-8")):
            assert guid not in BROAD_ROLES, f"{path.name} grants {BROAD_ROLES[guid]}"


def test_storage_and_telemetry_need_an_identity() -> None:
    storage = resource_config(parsed("app/storage.bicep")["resources"]["storage"])
    assert storage["properties"]["allowSharedKeyAccess"] is False
    assert storage["properties"]["allowBlobPublicAccess"] is False
    insights = resource_config(parsed("app/monitoring.bicep")["resources"]["applicationInsights"])
    assert insights["properties"]["DisableLocalAuth"] is True
    (authentication,) = app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert authentication == "ClientId=${identityClientId};Authorization=AAD"
    assert app_settings()["AZURE_CLIENT_ID"] == ["identityClientId"]


def test_the_app_is_flex_consumption_python_3_13() -> None:
    function = parsed("app/function.bicep")["resources"]
    plan = resource_config(function["plan"])
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    config = resource_config(function["site"])["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    # Durable Functions on Flex Consumption: the durable group keeps one instance ready.
    assert "'durable'" in (INFRA / "app" / "function.bicep").read_text(encoding="utf-8")
    assert parsed("main.bicep")["parameters"]["durableAlwaysReadyInstances"]["default"] == 1


def alert_rules() -> dict[str, dict[str, Any]]:
    resources = parsed("app/alerts.bicep")["resources"]
    return {name: resource for name, resource in resources.items()
            if resource["type"] == "Microsoft.Insights/scheduledQueryRules"}


def alert_queries() -> list[str]:
    return [criterion["query"] for rule in alert_rules().values()
            for criterion in resource_config(rule)["properties"]["criteria"]["allOf"]]


def workbook_queries() -> list[str]:
    workbook = json.loads((INFRA / "workbook.json").read_text(encoding="utf-8"))
    return [item["content"]["query"] for item in workbook["items"] if item["type"] == 3]


def test_workbook_and_alert_queries_name_only_contract_metrics() -> None:
    texts = [(INFRA / "workbook.json").read_text(encoding="utf-8"), *alert_queries()]
    named = {name.rstrip(".") for text in texts for name in METRIC_NAME.findall(text)}
    assert named <= set(METRIC_NAMES), f"not in METRIC_NAMES: {sorted(named - set(METRIC_NAMES))}"


def test_the_workbook_shows_what_people_ask_for() -> None:
    queried = {name.rstrip(".") for query in workbook_queries()
               for name in METRIC_NAME.findall(query)}
    assert {
        "license.concurrent.peak", "license.concurrent.now", "license.capacity",
        "license.concurrent.peak.agents", "license.concurrent.peak.admins",
        "license.billable_peak", "license.alert.delivered", "license.check.failed",
    } <= queried
    today = next(q for q in workbook_queries() if "__WARNING_PERCENT__" in q)
    assert "__CRITICAL_PERCENT__" in today


def test_every_workbook_placeholder_is_filled_by_the_template() -> None:
    placeholders = set(re.findall(r"__[A-Z_]+__", (INFRA / "workbook.json").read_text("utf-8")))
    assert placeholders
    workbook_bicep = (INFRA / "app" / "workbook.bicep").read_text(encoding="utf-8")
    # replace(text, '__NAME__', value): the placeholder is the argument before a comma.
    filled = set(re.findall(r"'(__[A-Z_]+__)'\s*,", workbook_bicep))
    assert placeholders == filled


def test_the_watchdog_fires_when_no_check_succeeded_for_20_minutes() -> None:
    watchdog = resource_config(alert_rules()["watchdog"])["properties"]
    # The service's granularity (PT20M is refused); the 20 minutes are in the query, which
    # looks back two days to tell a monitor that stopped from one that never reported.
    assert (watchdog["windowSize"], watchdog["overrideQueryTimeRange"]) == ("PT15M", "P2D")
    (criterion,) = watchdog["criteria"]["allOf"]
    query = criterion["query"]
    assert '"license.check.failed"' in query
    assert "countif(valueMin == 0 and timestamp > ago(20m))" in query
    # The query returns a row exactly when there was no success; any row fires. A fresh
    # deployment, with nothing reported yet, is no failure.
    assert "summarize" in query
    assert "where reported > 0 and first_reported < ago(20m) and successes == 0" in query
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
        "Count", "GreaterThan", 0)
    assert watchdog["actions"]["actionGroups"]


def test_the_utilization_rule_is_switched_by_a_parameter() -> None:
    rule = alert_rules()["utilization"]
    assert "utilizationAlertEnabled" in set(strings(rule["config"]["condition"]))
    (criterion,) = resource_config(rule)["properties"]["criteria"]["allOf"]
    assert '"license.utilization_percent"' in criterion["query"]


def test_azd_asks_only_for_what_has_no_default() -> None:
    parameters = parsed("main.bicep")["parameters"]
    mapped = json.loads((INFRA / "main.parameters.json").read_text("utf-8"))["parameters"]
    assert set(mapped) <= set(parameters)
    prompted = {name for name, parameter in parameters.items()
                if parameter["default"] is None and name not in mapped}
    assert prompted == {"genesysClientId", "genesysClientSecret", "licenseCapacity", "alertEmail"}
    # docs/deploy.md "What it asks" lists exactly these as the questions `azd up` asks.
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    asks = guide[guide.index("## What it asks"):guide.index("## What it creates")]
    assert set(re.findall(r"^\| `(\w+)`", asks, flags=re.MULTILINE)) == prompted


# Where the metrics contract and the queries over it are written for users.
OPERATIONS = ROOT / "docs" / "operations.md"


def doc_section(heading: str) -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_the_documented_metrics_table_lists_exactly_the_contract() -> None:
    section = doc_section("## Metrics")
    listed = set(re.findall(r"^\| `(license\.[a-z_.]+)` \|", section, flags=re.MULTILINE))
    assert listed == set(METRIC_NAMES)


def test_the_documented_queries_name_only_contract_metrics() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    queries = re.findall(r"```kusto\n(.*?)```", text, flags=re.DOTALL)
    assert len(queries) >= 3
    named = {name.rstrip(".") for query in queries for name in METRIC_NAME.findall(query)}
    assert named
    assert named <= set(METRIC_NAMES), f"not in METRIC_NAMES: {sorted(named - set(METRIC_NAMES))}"
