"""Every app setting infra/ can set on the Function App, with each value it can take."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.infra.bicep import INFRA, body, parse

SETTING_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*|AzureWebJobsStorage(?:__\w+)?)$")


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every object in a parsed expression, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def app_settings(infra: Path = INFRA) -> dict[str, list[Any]]:
    """The `appsettings` resource in function.bicep is a union of the module's variables and
    its `monitorSettings` parameter, which main.bicep fills from its `monitorSettings`."""
    function = parse(infra / "app" / "function.bicep")
    union = body(function["resources"]["appSettings"])["properties"]["function"]
    assert union["type"] == "union"
    sources = set(union["parameters"].values())
    assert "monitorSettings" in sources
    main = parse(infra / "main.bicep")
    assert body(main["modules"]["functionApp"])["params"]["monitorSettings"] == "monitorSettings"

    expressions = [function["variables"][name]["value"]
                   for name in sorted(sources - {"monitorSettings"})]
    expressions.append(main["variables"]["monitorSettings"]["value"])
    settings: dict[str, list[Any]] = {}
    for expression in expressions:
        for key, value in walk(expression):
            if SETTING_NAME.match(key):
                settings.setdefault(key, []).append(value)
    return settings
