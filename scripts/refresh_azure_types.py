"""Refresh tests/infra/azure_types.json: the Azure resource type definitions infra/ uses.

The offline deployment check (tests/unit/test_infra_types.py) validates every resource in
infra/ against Azure's published type definitions, the `types.json` files that the Bicep
compiler itself uses, from the Azure/bicep-types-az repository. This script keeps a small
extract of them in the repository: only the resource types and API versions infra/ declares,
only the types reachable from their bodies, without descriptions.

Usage (with a clone, or a bare mirror, of https://github.com/Azure/bicep-types-az):

    .venv/bin/python scripts/refresh_azure_types.py /path/to/bicep-types-az [--commit REV]

Run it after changing a resource's type or apiVersion in infra/; the extract names the commit
it was taken from.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.infra.bicep import declared_resource_types  # noqa: E402

OUTPUT = ROOT / "tests" / "infra" / "azure_types.json"
# What a type keeps in the extract (descriptions and other prose are dropped).
KEPT = {"$type", "name", "value", "properties", "additionalProperties", "itemType",
        "elements", "discriminator", "baseProperties", "minLength", "maxLength", "pattern",
        "minValue", "maxValue", "minItems", "maxItems", "body", "sensitive",
        "readableScopes", "writableScopes", "scopeType", "flags"}


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-C", str(repo), *args],  # noqa: S603, S607 (git)
                               capture_output=True, text=True, check=True)
    return completed.stdout


def locate(repo: Path, commit: str, resource: str) -> str:
    """The generated/ path of the types.json that defines `Type@apiVersion`."""
    rtype, api_version = resource.split("@")
    namespace = rtype.split("/")[0].lower()
    listing = git(repo, "ls-tree", "-r", "--name-only", commit, "generated/").splitlines()
    candidates = [path for path in listing
                  if path.endswith(f"/{namespace}/{api_version}/types.json")]
    for path in candidates:
        types = json.loads(git(repo, "show", f"{commit}:{path}"))
        if any(t.get("$type") == "ResourceType" and t.get("name", "").lower() == resource.lower()
               for t in types):
            return path
    raise SystemExit(f"{resource} is not defined in {repo} at {commit}.")


def deduplicate(types: list[dict[str, Any]], entries: dict[str, Any]
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Merge identical definitions (the same string type in every file, ...) until none are."""
    while True:
        first: dict[str, int] = {}
        keep: list[int] = []
        target: dict[int, int] = {}
        for position, definition in enumerate(types):
            key = json.dumps(definition, sort_keys=True)
            if key not in first:
                first[key] = len(keep)
                keep.append(position)
            target[position] = first[key]
        if len(keep) == len(types):
            return types, entries

        types = [_relink(types[position], target) for position in keep]
        entries = _relink(entries, target)


def _relink(value: Any, target: dict[int, int]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            return {"$ref": f"#/{target[int(value['$ref'][2:])]}"}
        return {key: _relink(item, target) for key, item in value.items()}
    if isinstance(value, list):
        return [_relink(item, target) for item in value]
    return value


def extract(repo: Path, commit: str, resources: list[str]) -> dict[str, Any]:
    merged: list[dict[str, Any]] = []
    index: dict[tuple[str, int], int] = {}
    entries: dict[str, Any] = {}

    def ref(path: str, types: list[dict[str, Any]], value: dict[str, str]) -> dict[str, str]:
        return {"$ref": f"#/{copy(path, types, int(value['$ref'][2:]))}"}

    def copy(path: str, types: list[dict[str, Any]], position: int) -> int:
        if (path, position) in index:
            return index[(path, position)]
        slot = index[(path, position)] = len(merged)
        merged.append({})
        source = types[position]
        kept: dict[str, Any] = {}
        for key, value in source.items():
            if key not in KEPT:
                continue
            if key in {"properties", "baseProperties"}:
                kept[key] = {name: {"type": ref(path, types, prop["type"]),
                                    "flags": prop.get("flags", 0)}
                             for name, prop in value.items()}
            elif key == "elements":
                kept[key] = ({name: ref(path, types, item) for name, item in value.items()}
                             if isinstance(value, dict)
                             else [ref(path, types, item) for item in value])
            elif key in {"additionalProperties", "itemType", "body"}:
                kept[key] = ref(path, types, value)
            else:
                kept[key] = value
        merged[slot] = kept
        return slot

    for resource in sorted(resources, key=str.lower):
        path = locate(repo, commit, resource)
        types = json.loads(git(repo, "show", f"{commit}:{path}"))
        position = next(i for i, t in enumerate(types) if t.get("$type") == "ResourceType"
                        and t["name"].lower() == resource.lower())
        entries[resource] = {"path": path, "type": {"$ref": f"#/{copy(path, types, position)}"}}
    merged, entries = deduplicate(merged, entries)
    return {
        "source": {
            "repository": "https://github.com/Azure/bicep-types-az",
            "commit": commit,
            "refreshed_by": "scripts/refresh_azure_types.py",
        },
        "resources": entries,
        "types": merged,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a clone or bare mirror of bicep-types-az")
    parser.add_argument("--commit", default="HEAD")
    arguments = parser.parse_args()
    commit = git(arguments.repo, "rev-parse", arguments.commit).strip()
    resources = sorted(declared_resource_types(), key=str.lower)
    document = extract(arguments.repo, commit, resources)
    # One type definition per line, so a refresh shows as a readable diff.
    head = {key: value for key, value in document.items() if key != "types"}
    lines = [json.dumps(item, sort_keys=True) for item in document["types"]]
    text = json.dumps(head, indent=1, sort_keys=True)[:-2]
    OUTPUT.write_text(text + ',\n "types": [\n' + ",\n".join(lines) + "\n ]\n}\n",
                      encoding="utf-8")
    print(f"{OUTPUT.relative_to(ROOT)}: {len(resources)} resource types, "
          f"{len(document['types'])} type definitions, from {commit[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
