"""The deployment rules Azure's type definitions cannot express, each with its source.

The resource type definitions (azure_types.py) type `windowSize` as any string and
`instanceMemoryMB` as any integer; the service and the Flex Consumption plan accept far less.
This table is the one place such rules live: a rule is a statement, where it comes from, and
a check over a checkout (infra/, host.json) that returns what breaks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.bicep import Symbols, decorator, parse, resources, unquote

LEARN = "https://learn.microsoft.com/azure"
FLEX_PLAN = f"{LEARN}/azure-functions/flex-consumption-plan"
LOG_ALERT = f"{LEARN}/azure-monitor/alerts/alerts-create-log-alert-rule"
DURABLE_FLEX = (f"{LEARN}/azure-functions/durable/durable-functions-azure-storage-provider"
                "#flex-consumption-plan")
FLEX_SAMPLE = ("https://github.com/Azure-Samples/functions-quickstart-python-http-azd/blob/"
               "7ed4638bc03858a3b2657f0dbbdd1db0af103ebb/infra/main.bicep")

# Log search alert rules: aggregation granularity (windowSize), in minutes.
WINDOW_SIZES = {5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440, 2880}
EVALUATION_FREQUENCIES = {1, 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440}
QUERY_TIME_RANGE_MAX = 2 * 24 * 60
# Flex Consumption.
FLEX_PYTHON_GA = ("3.10", "3.11", "3.12", "3.13")  # 3.14 is in preview
FLEX_MEMORY_MB = {512, 2048, 4096}
FLEX_LOWEST_MAXIMUM, FLEX_HIGHEST_MAXIMUM = 40, 1000
FLEX_ALWAYS_READY_GROUPS = {"http", "blob", "durable"}
FLEX_DEPRECATED_SITE = {
    "alwaysOn", "containerSize", "ftpsState", "isReserved", "isXenon", "javaVersion",
    "linuxFxVersion", "netFrameworkVersion", "powerShellVersion", "functionAppScaleLimit",
    "preWarmedInstanceCount", "use32BitWorkerProcess", "windowsFxVersion",
}
FLEX_DEPRECATED_SETTINGS = {
    "ENABLE_ORYX_BUILD", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION", "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET", "WEBSITE_CONTENTSHARE", "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
    "AzureWebJobsStorage",  # a connection string; this deployment uses the identity instead
}
# Regions with Flex Consumption (the sample's list, without its canary region eastus2euap).
FLEX_REGIONS = {
    "australiaeast", "australiasoutheast", "brazilsouth", "canadacentral", "centralindia",
    "centralus", "eastasia", "eastus", "eastus2", "francecentral", "germanywestcentral",
    "italynorth", "japaneast", "koreacentral", "northcentralus", "northeurope", "norwayeast",
    "southafricanorth", "southcentralus", "southeastasia", "southindia", "spaincentral",
    "swedencentral", "uaenorth", "uksouth", "ukwest", "westcentralus", "westeurope", "westus",
    "westus2", "westus3",
}
DURABLE_POLLING_MAX_SECONDS = 10
# The Python version Azure runs; scripts/lib.sh and infra must agree (test_infra_rules.py).
DEPLOYED_PYTHON = "3.13"


def minutes(duration: str) -> int | None:
    """An ISO 8601 duration of days, hours and minutes (P2D, PT1H30M) in minutes."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", duration)
    if not match or duration in {"P", "PT"} or duration.endswith("T"):
        return None
    days, hours, mins = (int(part or 0) for part in match.groups())
    return days * 1440 + hours * 60 + mins


def seconds(timespan: str) -> int | None:
    """A host.json timespan (hh:mm:ss) in seconds."""
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", timespan)
    return None if not match else int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])


def possible(raw: Any, symbols: Symbols) -> list[Any] | None:
    """The values a property can take: a literal, or a parameter's @allowed or default."""
    if isinstance(raw, str) and symbols.kind(raw) == "parameters":
        spec = symbols.parameters[raw]
        allowed = decorator(spec, "allowed")
        if allowed is not None:
            return list(allowed)
        return None if spec.get("default") is None else [spec["default"]]
    if isinstance(raw, str) and symbols.kind(raw) is not None:
        return None
    if isinstance(raw, dict) and ("function" in raw or "operator" in raw) and len(raw) == 1:
        return None
    return [raw]


def typed(root: Path, type_name: str) -> Iterator[tuple[str, dict[str, Any], Symbols]]:
    for resource in resources(root / "infra"):
        if resource.type == type_name and not resource.existing:
            yield resource.where, resource.body, Symbols(parse(resource.file))


def on_flex_plan(root: Path) -> bool:
    return any(body.get("sku", {}).get("tier") == "FlexConsumption"
               for _, body, _ in typed(root, "Microsoft.Web/serverfarms"))


# The checks.

def alert_window_sizes(root: Path) -> list[str]:
    problems = []
    for where, body, _ in typed(root, "Microsoft.Insights/scheduledQueryRules"):
        value = body.get("properties", {}).get("windowSize")
        if value is not None and minutes(value) not in WINDOW_SIZES:
            problems.append(f"{where}: windowSize {value} is not an accepted granularity "
                            f"({sorted(WINDOW_SIZES)} minutes)")
    return problems


def alert_evaluation_frequencies(root: Path) -> list[str]:
    problems = []
    for where, body, _ in typed(root, "Microsoft.Insights/scheduledQueryRules"):
        properties = body.get("properties", {})
        value = properties.get("evaluationFrequency")
        if value is not None and minutes(value) not in EVALUATION_FREQUENCIES:
            problems.append(f"{where}: evaluationFrequency {value} is not accepted "
                            f"({sorted(EVALUATION_FREQUENCIES)} minutes)")
    return problems


def alert_query_time_ranges(root: Path) -> list[str]:
    problems = []
    for where, body, _ in typed(root, "Microsoft.Insights/scheduledQueryRules"):
        properties = body.get("properties", {})
        value = properties.get("overrideQueryTimeRange")
        if value is None:
            continue
        span = minutes(value)
        window = minutes(properties.get("windowSize", "")) or 0
        if span is None or not window <= span <= QUERY_TIME_RANGE_MAX:
            problems.append(f"{where}: overrideQueryTimeRange {value} must be from windowSize "
                            "to two days")
    return problems


def flex_site_deprecations(root: Path) -> list[str]:
    if not on_flex_plan(root):
        return []
    problems = []
    for where, body, _ in typed(root, "Microsoft.Web/sites"):
        properties = body.get("properties", {})
        used = {unquote(key) for key in properties} | {
            unquote(key) for key in properties.get("siteConfig", {})}
        for name in sorted(used & FLEX_DEPRECATED_SITE):
            problems.append(f"{where}: {name} is deprecated on Flex Consumption")
    return problems


def flex_app_setting_deprecations(root: Path) -> list[str]:
    from tests.infra.app_settings import app_settings  # noqa: PLC0415 (after infra is parsed)

    problems = []
    for name in sorted(set(app_settings(root / "infra")) & FLEX_DEPRECATED_SETTINGS):
        problems.append(f"app setting {name} is deprecated (or rejected) on Flex Consumption")
    return problems


def site_function_config(root: Path) -> Iterator[tuple[str, dict[str, Any], Symbols]]:
    for where, body, symbols in typed(root, "Microsoft.Web/sites"):
        config = body.get("properties", {}).get("functionAppConfig")
        if isinstance(config, dict):
            yield where, config, symbols


def flex_runtime(root: Path) -> list[str]:
    problems = []
    found = False
    for where, config, _ in site_function_config(root):
        runtime = config.get("runtime", {})
        found = True
        if runtime.get("name") != "python":
            problems.append(f"{where}: runtime {runtime.get('name')!r} is not python")
        version = runtime.get("version")
        if version not in FLEX_PYTHON_GA:
            problems.append(f"{where}: Python {version} is not a GA version on Flex "
                            f"Consumption ({', '.join(FLEX_PYTHON_GA)})")
        elif version != DEPLOYED_PYTHON:
            problems.append(f"{where}: Python {version} is not the deployed Python "
                            f"{DEPLOYED_PYTHON} (the newest GA on Flex Consumption)")
    if not found:
        problems.append("no Function App declares functionAppConfig.runtime")
    return problems


def flex_scale(root: Path) -> list[str]:
    problems = []
    for where, config, symbols in site_function_config(root):
        scale = config.get("scaleAndConcurrency", {})
        memory = possible(scale.get("instanceMemoryMB"), symbols)
        if memory is None or not set(memory) <= FLEX_MEMORY_MB:
            problems.append(f"{where}: instanceMemoryMB can be {memory}, not only "
                            f"{sorted(FLEX_MEMORY_MB)}")
        raw = scale.get("maximumInstanceCount")
        values = possible(raw, symbols) or []
        if isinstance(raw, str) and symbols.kind(raw) == "parameters":
            spec = symbols.parameters[raw]
            values += [decorator(spec, "min_value"), decorator(spec, "max_value")]
        if not values or any(not isinstance(value, int)
                             or not FLEX_LOWEST_MAXIMUM <= value <= FLEX_HIGHEST_MAXIMUM
                             for value in values):
            problems.append(f"{where}: maximumInstanceCount can be {values}, outside "
                            f"{FLEX_LOWEST_MAXIMUM}..{FLEX_HIGHEST_MAXIMUM}")
    return problems


def flex_always_ready(root: Path) -> list[str]:
    problems = []
    for where, config, _ in site_function_config(root):
        text = json.dumps(config.get("scaleAndConcurrency", {}).get("alwaysReady", []))
        names = re.findall(r'"name": "([^"]+)"', text)
        if "durable" not in names:
            problems.append(f"{where}: no always-ready instance for the durable group")
        for name in names:
            if name not in FLEX_ALWAYS_READY_GROUPS and not name.startswith("function:"):
                problems.append(f"{where}: always-ready {name!r} is neither a group "
                                f"{sorted(FLEX_ALWAYS_READY_GROUPS)} nor function:<name>")
    main = Symbols(parse(root / "infra" / "main.bicep"))
    spec = main.parameters.get("durableAlwaysReadyInstances")
    if spec is None or spec.get("default") != 1:
        problems.append("main.bicep: durableAlwaysReadyInstances must default to 1")
    return problems


def flex_regions(root: Path) -> list[str]:
    spec = Symbols(parse(root / "infra" / "main.bicep")).parameters.get("location", {})
    allowed = decorator(spec, "allowed")
    if not allowed:
        return ["main.bicep: location accepts any region, also those without Flex Consumption"]
    return [f"main.bicep: location allows {region}, which has no Flex Consumption"
            for region in allowed if region not in FLEX_REGIONS]


def durable_polling(root: Path) -> list[str]:
    host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    durable = host.get("extensions", {}).get("durableTask", {})
    value = durable.get("storageProvider", {}).get("maxQueuePollingInterval")
    span = seconds(value) if isinstance(value, str) else None
    if span is None or not 0 < span <= DURABLE_POLLING_MAX_SECONDS:
        return [f"host.json: durableTask.storageProvider.maxQueuePollingInterval is {value!r}, "
                f"not {DURABLE_POLLING_MAX_SECONDS} seconds or less (the default is 30)"]
    return []


def extension_bundle(root: Path) -> list[str]:
    host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    bundle = host.get("extensionBundle", {})
    match = re.match(r"\[(\d+)\.", bundle.get("version", ""))
    if bundle.get("id") != "Microsoft.Azure.Functions.ExtensionBundle" or not match or int(
            match[1]) < 4:
        return [f"host.json: extension bundle {bundle} is not version 4 or later"]
    return []


@dataclass(frozen=True)
class Rule:
    id: str
    statement: str
    source: str
    check: Callable[[Path], list[str]]


RULES = (
    Rule("alert-window-size",
         "A log search alert's windowSize (aggregation granularity) is 5, 10, 15, 30 or 45 "
         "minutes, 1-6 hours, 1 day or 2 days; PT20M is refused at deployment.",
         f"{LOG_ALERT} (Aggregation granularity)", alert_window_sizes),
    Rule("alert-evaluation-frequency",
         "A log search alert's evaluationFrequency is 1, 5, 10, 15, 30 or 45 minutes, "
         "1-6 hours or 1 day.", f"{LOG_ALERT} (Frequency of evaluation)",
         alert_evaluation_frequencies),
    Rule("alert-query-time-range",
         "overrideQueryTimeRange is at least windowSize and at most two days.",
         f"{LOG_ALERT} (Override query time range)", alert_query_time_ranges),
    Rule("flex-site-deprecations",
         "A site on a Flex Consumption plan sets none of the deprecated site properties "
         "(ftpsState, alwaysOn, linuxFxVersion, ...).",
         f"{LEARN}/azure-functions/functions-app-settings#flex-consumption-plan-deprecations",
         flex_site_deprecations),
    Rule("flex-app-setting-deprecations",
         "A Flex Consumption app sets none of the deprecated app settings "
         "(FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...).",
         f"{LEARN}/azure-functions/functions-app-settings#flex-consumption-plan-deprecations",
         flex_app_setting_deprecations),
    Rule("flex-runtime-version",
         "The runtime is Python in a version Flex Consumption supports as GA (3.10-3.13; "
         "3.14 is in preview), and it is the newest: 3.13.",
         f"{FLEX_PLAN}#supported-language-stack-versions; "
         f"{LEARN}/azure-functions/supported-languages", flex_runtime),
    Rule("flex-scale",
         "Instance memory is 512, 2048 or 4096 MB; maximumInstanceCount is 40 (the lowest "
         "maximum) to 1000.", f"{FLEX_PLAN}#instance-memory; {FLEX_PLAN}#considerations",
         flex_scale),
    Rule("flex-always-ready",
         "Durable Functions on Flex Consumption: one always-ready instance for the `durable` "
         "group (the default here); groups are http, blob, durable or function:<name>.",
         f"{DURABLE_FLEX}; {FLEX_PLAN}#always-ready-instances", flex_always_ready),
    Rule("flex-regions",
         "The location parameter only allows regions with Flex Consumption.",
         f"{FLEX_SAMPLE} (location @allowed); `az functionapp list-flexconsumption-locations`",
         flex_regions),
    Rule("durable-queue-polling",
         "Durable Functions on Flex Consumption: maxQueuePollingInterval of 10 seconds or "
         "less in host.json.", DURABLE_FLEX, durable_polling),
    Rule("extension-bundle",
         "A Python app on Flex Consumption uses extension bundle [4.0.0, 5.0.0) or later.",
         f"{FLEX_PLAN}#considerations", extension_bundle),
)


def broken(root: Path) -> dict[str, list[str]]:
    """Every rule that a checkout breaks, with what breaks it."""
    return {rule.id: problems for rule in RULES if (problems := rule.check(root))}
