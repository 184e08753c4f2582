"""azure.yaml against the Azure Developer CLI's schema, and checkov's skips.

azure.yaml.schema.json is azd's own schema (schemas/v1.0/azure.yaml.json of
https://github.com/Azure/azure-dev at commit ae35809f496491989273d0edefdeb70f245f399b, the
schema azure.yaml names in its first line); refresh it by copying that file again.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "azure.yaml.schema.json"
SCHEMA_URL = "https://raw.githubusercontent.com/Azure/azure-dev/main/schemas/v1.0/azure.yaml.json"
SKIP = re.compile(r"//\s*checkov:skip=(CKV\w+):\s*(.*)")
RESOURCE = re.compile(r"^resource\s+(\w+)\s+'([^'@]+)@")


def azd_problems(root: Path) -> list[str]:
    text = (root / "azure.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    problems = [f"azure.yaml: {'/'.join(map(str, error.path)) or '(top)'}: {error.message}"
                for error in Draft201909Validator(schema).iter_errors(document)]
    if f"$schema={SCHEMA_URL}" not in text.splitlines()[0]:
        problems.append("azure.yaml: the first line does not name azd's v1.0 schema")
    services = (document or {}).get("services") or {}
    api = services.get("api") or {}
    if (api.get("host"), api.get("language")) != ("function", "python"):
        problems.append("azure.yaml: services.api is not a Python Function App")
    if not (root / str(api.get("project", ".")) / "function_app.py").is_file():
        problems.append("azure.yaml: services.api.project does not hold function_app.py")
    return problems


def skips(infra: Path) -> list[dict[str, Any]]:
    """Every checkov skip in infra/: file, resource symbol and type, check, reason."""
    found = []
    for path in sorted(infra.rglob("*.bicep")):
        symbol = rtype = None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if match := RESOURCE.match(line):
                symbol, rtype = match.groups()
            if match := SKIP.search(line):
                found.append({"file": str(path.relative_to(infra)), "line": number,
                              "resource": f"{rtype}.{symbol}", "check": match[1],
                              "reason": match[2].strip()})
    return found


def checkov_failures(checkov: Path, infra: Path) -> set[tuple[str, str, str]]:
    """(file, resource, check) that checkov fails in a copy of infra/ without any skip."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "infra"
        shutil.copytree(infra, copy)
        for path in copy.rglob("*.bicep"):
            text = path.read_text(encoding="utf-8")
            path.write_text(SKIP.sub("// (skip removed)", text), encoding="utf-8")
        completed = subprocess.run(
            [str(checkov), "--directory", str(copy), "--framework", "bicep", "--skip-download",
             "--quiet", "--compact", "-o", "json"],
            capture_output=True, text=True, check=False, timeout=600)
        report = json.loads(completed.stdout)
        reports = report if isinstance(report, list) else [report]
        failed = set()
        for item in reports:
            for check in item.get("results", {}).get("failed_checks", []):
                file = str(Path(check["file_abs_path"]).relative_to(copy))
                failed.add((file, check["resource"], check["check_id"]))
        return failed
