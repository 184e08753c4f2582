"""infra/ checked against Azure's resource type definitions (the extract in azure_types.json).

What the Bicep compiler checks from the same definitions, offline: each resource's type and
apiVersion exist; each property path exists and is writable; each value has the declared type,
length, range and pattern; each required property is set; each module parameter is declared
by the module. Two checks are stricter than the compiler's warnings: a string literal outside
an enum's listed values fails even where the definition also allows "any string" (Azure's
extensible enums: the service accepts only the listed values in practice), and so does a
parameter whose @allowed values or @minValue/@maxValue reach outside the property's.
Values computed by expressions (function calls, operators) are not evaluated.
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.bicep import (
    BICEP_KEYS,
    INFRA,
    INTERPOLATION,
    Resource,
    Symbols,
    accessor_chain,
    bicep_files,
    decorator,
    is_expression,
    parse,
    resources,
    unquote,
    walk_values,
)

EXTRACT = Path(__file__).with_name("azure_types.json")
REQUIRED, READ_ONLY = 1, 2


@functools.cache
def extract() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXTRACT.read_text(encoding="utf-8"))
    return document


def resolve(ref: dict[str, str]) -> dict[str, Any]:
    definition: dict[str, Any] = extract()["types"][int(ref["$ref"][2:])]
    return definition


@dataclass(frozen=True)
class Unknown:
    """A value computed at deployment (an expression): its type is not checked."""


@dataclass(frozen=True)
class Param:
    name: str
    spec: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.spec.get("type"))


def value_of(raw: Any, symbols: Symbols, depth: int = 0) -> Any:
    """A literal as itself, a parameter as Param, a variable as its value, else Unknown."""
    if isinstance(raw, str):
        kind = symbols.kind(raw)
        if kind == "parameters":
            return Param(raw, symbols.parameters[raw])
        if kind == "variables" and depth < 10:
            return value_of(symbols.variables[raw]["value"], symbols, depth + 1)
        if kind is not None:
            return Unknown()
        return raw
    if is_expression(raw):
        return Unknown()
    return raw


def literal_strings(definition: dict[str, Any]) -> tuple[list[str], bool]:
    """The listed values of a string enum, and whether it also allows any string."""
    listed, open_ended = [], False
    for element in definition.get("elements", []):
        item = resolve(element)
        if item["$type"] == "StringLiteralType":
            listed.append(item["value"])
        elif item["$type"] == "StringType":
            open_ended = True
    return listed, open_ended


class Checker:
    def __init__(self) -> None:
        self.findings: list[str] = []

    def fail(self, where: str, text: str) -> None:
        self.findings.append(f"{where}: {text}")

    # Values against types.

    def check(self, definition: dict[str, Any], raw: Any, symbols: Symbols, where: str) -> None:
        value = value_of(raw, symbols)
        kind = definition["$type"]
        if isinstance(value, Unknown) or kind in {"AnyType", "ResourceFunctionType"}:
            return
        if isinstance(value, str) and INTERPOLATION.search(value):
            if kind not in {"StringType", "UnionType"}:
                self.fail(where, f"a string where the definition expects {kind}")
            return
        if isinstance(value, Param):
            self.check_parameter(definition, value, where)
            return
        if kind == "ObjectType":
            self.check_object(definition, value, symbols, where)
        elif kind == "DiscriminatedObjectType":
            self.check_discriminated(definition, value, symbols, where)
        elif kind == "ArrayType":
            if not isinstance(value, list):
                self.fail(where, f"{value!r} where the definition expects an array")
                return
            for position, item in enumerate(value):
                self.check(resolve(definition["itemType"]), item, symbols, f"{where}[{position}]")
        elif kind == "UnionType":
            self.check_union(definition, value, symbols, where)
        elif kind == "StringLiteralType":
            if value != definition["value"]:
                self.fail(where, f"{value!r} is not {definition['value']!r}")
        elif kind == "StringType":
            self.check_string(definition, value, where)
        elif kind == "IntegerType":
            self.check_integer(definition, value, where)
        elif kind == "BooleanType" and not isinstance(value, bool):
            self.fail(where, f"{value!r} where the definition expects a bool")

    def check_string(self, definition: dict[str, Any], value: Any, where: str) -> None:
        if not isinstance(value, str):
            self.fail(where, f"{value!r} where the definition expects a string")
            return
        if len(value) < definition.get("minLength", 0):
            self.fail(where, f"{value!r} is shorter than {definition['minLength']}")
        if "maxLength" in definition and len(value) > definition["maxLength"]:
            self.fail(where, f"{value!r} is longer than {definition['maxLength']}")

    def check_integer(self, definition: dict[str, Any], value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"{value!r} where the definition expects an integer")
            return
        if "minValue" in definition and value < definition["minValue"]:
            self.fail(where, f"{value} is below the minimum {definition['minValue']}")
        if "maxValue" in definition and value > definition["maxValue"]:
            self.fail(where, f"{value} is above the maximum {definition['maxValue']}")

    def check_union(self, definition: dict[str, Any], value: Any, symbols: Symbols,
                    where: str) -> None:
        listed, _ = literal_strings(definition)
        if listed and isinstance(value, str):
            if value not in listed:
                self.fail(where, f"{value!r} is not one of {listed}")
            return
        for element in definition["elements"]:
            trial = Checker()
            trial.check(resolve(element), value, symbols, where)
            if not trial.findings:
                return
        self.fail(where, f"{value!r} matches none of the types the definition allows")

    def check_parameter(self, definition: dict[str, Any], parameter: Param, where: str) -> None:
        expected = {"StringType": "string", "IntegerType": "int", "BooleanType": "bool",
                    "ArrayType": "array", "StringLiteralType": "string"}.get(definition["$type"])
        if definition["$type"] in {"ObjectType", "DiscriminatedObjectType"}:
            expected = "object"
        if definition["$type"] == "UnionType":
            listed, _ = literal_strings(definition)
            expected = "string" if listed else None
            allowed = decorator(parameter.spec, "allowed")
            if listed and allowed is not None:
                outside = [value for value in allowed if value not in listed]
                if outside:
                    self.fail(where, f"parameter {parameter.name} allows {outside}, "
                                     f"not among {listed}")
        if expected and parameter.type != expected:
            self.fail(where, f"parameter {parameter.name} is {parameter.type}, the definition "
                             f"expects {expected}")
        if definition["$type"] == "IntegerType":
            for bound, name, outside in (("minValue", "min_value", lambda p, d: p < d),
                                         ("maxValue", "max_value", lambda p, d: p > d)):
                if bound not in definition:
                    continue
                declared = decorator(parameter.spec, name)
                if declared is None or outside(declared, definition[bound]):
                    self.fail(where, f"parameter {parameter.name} can be outside "
                                     f"{bound} {definition[bound]} (@{name} {declared})")

    def properties_of(self, definition: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = dict(definition.get("properties") or {})
        return properties

    def check_object(self, definition: dict[str, Any], value: Any, symbols: Symbols,
                     where: str, *, extra: dict[str, Any] | None = None,
                     skip: frozenset[str] = frozenset()) -> None:
        if not isinstance(value, dict):
            self.fail(where, f"{value!r} where the definition expects an object")
            return
        properties = {**(extra or {}), **self.properties_of(definition)}
        additional = definition.get("additionalProperties")
        for raw_key, item in value.items():
            key = unquote(raw_key)
            if key in skip:
                continue
            if key in properties:
                flags = properties[key].get("flags", 0)
                if flags & READ_ONLY and not flags & REQUIRED:
                    self.fail(f"{where}.{key}", "is read-only")
                    continue
                self.check(resolve(properties[key]["type"]), item, symbols, f"{where}.{key}")
            elif additional is not None:
                self.check(resolve(additional), item, symbols, f"{where}.{key}")
            elif "${" in key:
                continue
            else:
                close = difflib.get_close_matches(key, list(properties), n=3)
                self.fail(f"{where}.{key}", f"unknown property (did you mean {close}?)")
        keys = {unquote(key) for key in value}
        for name, spec in properties.items():
            if spec.get("flags", 0) & REQUIRED and name not in keys:
                self.fail(where, f"required property {name!r} is missing")

    def check_discriminated(self, definition: dict[str, Any], value: Any, symbols: Symbols,
                            where: str, *, skip: frozenset[str] = frozenset()) -> None:
        if not isinstance(value, dict):
            self.fail(where, f"{value!r} where the definition expects an object")
            return
        discriminator = definition["discriminator"]
        chosen = value_of(value.get(discriminator), symbols)
        base = definition.get("baseProperties") or {}
        if not isinstance(chosen, str) or chosen not in definition["elements"]:
            if isinstance(chosen, str):
                self.fail(f"{where}.{discriminator}", f"{chosen!r} is not one of "
                                                      f"{sorted(definition['elements'])}")
            return
        self.check_object(resolve(definition["elements"][chosen]), value, symbols, where,
                          extra=base, skip=skip)

    # Resources, modules and property paths.

    def check_resource(self, resource: Resource, symbols: Symbols) -> None:
        entry = extract()["resources"].get(resource.key)
        if entry is None:
            close = sorted(key for key in extract()["resources"]
                           if key.split("@")[0].lower() == resource.type.lower())
            self.fail(resource.where, f"{resource.key} is not a published resource type and "
                                      f"API version (published here: {close or 'none'})")
            return
        body = resolve(resolve(entry["type"])["body"])
        if resource.existing:
            self.check_object({"properties": {}, "additionalProperties": None},
                              {k: v for k, v in resource.body.items() if k != "name"}, symbols,
                              resource.where, skip=BICEP_KEYS)
            return
        if body["$type"] == "DiscriminatedObjectType":
            self.check_discriminated(body, resource.body, symbols, resource.where,
                                     skip=BICEP_KEYS)
        else:
            self.check_object(body, resource.body, symbols, resource.where, skip=BICEP_KEYS)

    def check_modules(self, path: Path, document: dict[str, Any], infra: Path) -> None:
        for symbol, module in (document.get("modules") or {}).items():
            target = path.parent / module["detail"]["path"]
            where = f"{path.relative_to(infra)}:{symbol}"
            if not target.is_file():
                self.fail(where, f"module file {module['detail']['path']} does not exist")
                continue
            declared = parse(target).get("parameters") or {}
            config = module["config"]["config"] if "condition" in module["config"] else \
                module["config"]
            given = config.get("params") or {}
            for name in given:
                if name not in declared:
                    self.fail(f"{where}.params.{name}", "is not a parameter of "
                                                        f"{module['detail']['path']}")
            for name, spec in declared.items():
                if spec.get("default") is None and name not in given:
                    self.fail(where, f"parameter {name!r} of {module['detail']['path']} is "
                                     "required and not given")

    def check_paths(self, path: Path, document: dict[str, Any], infra: Path) -> None:
        """Every `symbol.a.b` read from a resource or module names a real property/output."""
        symbols = Symbols(document)
        where = str(path.relative_to(infra))
        chains: list[list[Any]] = []
        for node in walk_values(document):
            if is_expression(node):
                chain = accessor_chain(node)
                if len(chain) > 1:
                    chains.append(chain)
            elif isinstance(node, str):
                for inner in INTERPOLATION.findall(node):
                    parts = inner.split(".")
                    if len(parts) > 1 and all(part.isidentifier() for part in parts):
                        chains.append(parts)
        for chain in chains:
            head, *names = chain
            if not isinstance(head, str) or not names or not all(
                    isinstance(name, str) for name in names):
                continue
            kind = symbols.kind(head)
            if kind == "modules":
                module = symbols.modules[head]
                target = path.parent / module["detail"]["path"]
                if names[0] == "outputs" and len(names) > 1 and target.is_file():
                    outputs = parse(target).get("outputs") or {}
                    if names[1] not in outputs:
                        self.fail(f"{where}: {head}.outputs.{names[1]}",
                                  f"is not an output of {module['detail']['path']}")
            elif kind == "resources":
                resource = symbols.resources[head]
                entry = extract()["resources"].get(
                    f"{resource['type']}@{resource['api_version']}")
                if entry is not None:
                    self.check_path(resolve(resolve(entry["type"])["body"]), names,
                                    f"{where}: {head}.{'.'.join(names)}")

    def check_path(self, definition: dict[str, Any], names: list[str], where: str) -> None:
        for name in names:
            kind = definition["$type"]
            if kind == "DiscriminatedObjectType":
                properties = dict(definition.get("baseProperties") or {})
                for element in definition["elements"].values():
                    properties.update(resolve(element).get("properties") or {})
            elif kind == "ObjectType":
                properties = dict(definition.get("properties") or {})
                if name not in properties and definition.get("additionalProperties"):
                    definition = resolve(definition["additionalProperties"])
                    continue
            else:
                return  # an array index, a union, a string: not followed further
            if name not in properties:
                close = difflib.get_close_matches(name, list(properties), n=3)
                self.fail(where, f"{name!r} is not a property (did you mean {close}?)")
                return
            definition = resolve(properties[name]["type"])


def findings(infra: Path = INFRA) -> list[str]:
    """Everything in infra/ that Azure's type definitions reject."""
    checker = Checker()
    for path in bicep_files(infra):
        document = parse(path)
        symbols = Symbols(document)
        for resource in resources(infra):
            if resource.file == path:
                checker.check_resource(resource, symbols)
        checker.check_modules(path, document, infra)
        checker.check_paths(path, document, infra)
    return checker.findings
