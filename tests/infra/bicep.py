"""infra/ read with pycep-parser (the parser checkov uses): resources, references, paths.

pycep writes a string literal and a reference to a symbol the same way (a bare string), so a
value is a reference when it names a parameter, variable, resource or module of its file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
# Keys of a resource body that are Bicep's own, not the resource type's.
BICEP_KEYS = frozenset({"parent", "scope", "dependsOn"})
INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")


def bicep_files(infra: Path = INFRA) -> list[Path]:
    return sorted(infra.rglob("*.bicep"))


@functools.cache
def _parse(path: Path, text: str) -> dict[str, Any]:
    document: dict[str, Any] = BicepParser().parse(text=text)
    return document


def parse(path: Path) -> dict[str, Any]:
    """One Bicep file as pycep's document (cached by content, so edits are seen)."""
    return _parse(path, path.read_text(encoding="utf-8"))


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's (or module's) body; pycep nests it one level deeper under `if`."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "condition" in config else config


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def is_expression(value: Any) -> bool:
    """pycep's function calls and operators, as opposed to object literals."""
    return (isinstance(value, dict) and len(value) == 1
            and next(iter(value)) in {"function", "operator"}
            and isinstance(next(iter(value.values())), dict))


def accessor_chain(value: Any) -> list[Any]:
    """a.b.c as [a, 'b', 'c'] (the first item may be an expression); [value] otherwise."""
    if is_expression(value) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return accessor_chain(operands["operand_1"]) + accessor_chain(operands["operand_2"])
    return [value]


@dataclass(frozen=True)
class Resource:
    file: Path
    where: str
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.type}@{self.api_version}"


def resources(infra: Path = INFRA) -> list[Resource]:
    found = []
    for path in bicep_files(infra):
        for symbol, resource in parse(path)["resources"].items():
            found.append(Resource(path, f"{path.relative_to(infra)}:{symbol}", symbol,
                                  resource["type"], resource["api_version"],
                                  bool(resource.get("existing")), body(resource)))
    return found


def declared_resource_types(infra: Path = INFRA) -> set[str]:
    return {resource.key for resource in resources(infra)}


class Symbols:
    """The names one file declares, for telling references from literals."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.parameters: dict[str, Any] = document.get("parameters") or {}
        self.variables: dict[str, Any] = document.get("variables") or {}
        self.resources: dict[str, Any] = document.get("resources") or {}
        self.modules: dict[str, Any] = document.get("modules") or {}

    def kind(self, name: str) -> str | None:
        for kind in ("parameters", "variables", "resources", "modules"):
            if name in getattr(self, kind):
                return kind
        return None


def walk_values(node: Any) -> Iterator[Any]:
    """Every value (dicts, lists, strings, expressions) in a parsed tree, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_values(item)


def decorator(parameter: dict[str, Any], name: str) -> Any:
    for item in parameter.get("decorators") or []:
        if item.get("type") == name:
            return item.get("argument", True)
    return None
