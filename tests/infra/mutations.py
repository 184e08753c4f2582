"""Typical deployment mistakes, each planted by one text edit in a copy of the checkout.

tests/deploy/ plants each one and asserts that the check named in `caught_by` reports it;
scripts/infra_mutations.py plants each one and shows that `bash scripts/test`'s offline
deployment stages fail on it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

# The files a mutation may touch, copied into a scratch checkout.
DEPLOYMENT_FILES = ("infra", "host.json", "azure.yaml", ".funcignore", "requirements.txt",
                    "license_monitor/settings.py")


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str
    file: str
    old: str
    new: str
    caught_by: str  # types | rules | kql | bounds | azd | checkov

    def apply(self, root: Path) -> None:
        path = root / self.file
        text = path.read_text(encoding="utf-8")
        if self.old not in text:
            raise AssertionError(f"{self.id}: {self.old!r} is not in {self.file}")
        path.write_text(text.replace(self.old, self.new, 1), encoding="utf-8")


MUTATIONS = (
    Mutation("unknown-property", "a misspelt property on the Function App",
             "infra/app/function.bicep", "keyVaultReferenceIdentity: identityId",
             "keyVaultReferenceIdentityId: identityId", "types"),
    Mutation("wrong-enum", "an aggregation the alert service does not know",
             "infra/app/alerts.bicep", "timeAggregation: 'Count'", "timeAggregation: 'Sum'",
             "types"),
    Mutation("wrong-value-type", "a severity given as text",
             "infra/app/alerts.bicep", "severity: 1", "severity: 'Error'", "types"),
    Mutation("unknown-api-version", "an API version that was never published",
             "infra/app/storage.bicep", "Microsoft.Storage/storageAccounts@2023-05-01' = {",
             "Microsoft.Storage/storageAccounts@2023-05-02' = {", "types"),
    Mutation("bad-property-path", "an output reading a property that does not exist",
             "infra/app/storage.bicep", "storage.properties.primaryEndpoints.blob",
             "storage.properties.primaryEndpoint.blob", "types"),
    Mutation("unknown-module-parameter", "a module given a parameter it does not declare",
             "infra/main.bicep", "    instanceMemoryMB: instanceMemoryMB\n",
             "    instanceMemoryMB: instanceMemoryMB\n    instanceMemory: instanceMemoryMB\n",
             "types"),
    Mutation("invalid-window-size", "an alert window the service refuses (20 minutes)",
             "infra/app/alerts.bicep", "windowSize: 'PT15M'\n    overrideQueryTimeRange",
             "windowSize: 'PT20M'\n    overrideQueryTimeRange", "rules"),
    Mutation("deprecated-flex-property", "ftpsState on a Flex Consumption site",
             "infra/app/function.bicep", "      minTlsVersion: '1.2'\n",
             "      minTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n", "rules"),
    Mutation("preview-python", "a Python version Flex Consumption has only in preview",
             "infra/app/function.bicep", "version: '3.13'", "version: '3.14'", "rules"),
    Mutation("instance-memory", "an instance memory size Flex Consumption does not offer",
             "infra/app/function.bicep", "@allowed([512, 2048, 4096])",
             "@allowed([1024, 2048, 4096])", "rules"),
    Mutation("slow-queue-polling", "Durable queue polling back at 30 seconds on Flex",
             "host.json", '"maxQueuePollingInterval": "00:00:05"',
             '"maxQueuePollingInterval": "00:00:30"', "rules"),
    Mutation("bad-kql-column", "a workbook tile summing a column customMetrics lacks",
             "infra/workbook.json", "delivered = sum(valueSum)", "delivered = sum(valueSums)",
             "kql"),
    Mutation("kql-keyword-column", "a column named with a Kusto keyword (last)",
             "infra/workbook.json", "last_delivered = max(timestamp) by event, channel\\n| "
             "order by last_delivered desc",
             "last = max(timestamp) by event, channel\\n| order by last desc", "kql"),
    Mutation("kql-measure-column", "an alert measuring a column its query no longer returns",
             "infra/app/alerts.bicep", "utilization = valueMax", "utilisation = valueMax",
             "kql"),
    Mutation("bound-wider-than-app", "a Bicep bound wider than the app accepts",
             "infra/main.bicep", "@maxValue(200)\n@description('MANUAL_CHECK_WAIT_SECONDS",
             "@maxValue(600)\n@description('MANUAL_CHECK_WAIT_SECONDS", "bounds"),
    Mutation("app-range-narrowed", "the app's range narrowed without the template",
             "license_monitor/settings.py", '"CHECK_TIMEOUT_SECONDS": (10, 600)',
             '"CHECK_TIMEOUT_SECONDS": (10, 300)', "bounds"),
    Mutation("azd-name", "an azd project name azd refuses (capitals, underscore)",
             "azure.yaml", "name: concurrent-license-monitor",
             "name: Concurrent_License_Monitor", "azd"),
    Mutation("purge-protection-off", "the secrets' vault without purge protection",
             "infra/app/keyvault.bicep", "enablePurgeProtection: true",
             "enablePurgeProtection: false", "checkov"),
)


def scratch_copy(source: Path, target: Path) -> Path:
    """The deployment files of a checkout, copied to `target` (a new directory)."""
    for name in DEPLOYMENT_FILES:
        origin = source / name
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination)
        else:
            shutil.copy2(origin, destination)
    return target
