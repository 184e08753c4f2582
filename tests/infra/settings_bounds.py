"""The Bicep parameters of integer settings against the app's own ranges.

license_monitor/settings.py's INTEGER_RANGES is the one source of truth: a Bicep parameter
that fills an integer app setting must carry exactly its @minValue and @maxValue, so `azd up`
refuses at the prompt what the app would refuse at start. The ranges are read from the file's
source (the mutation script checks copies of it that are not importable).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tests.infra.bicep import Symbols, decorator, parse


def integer_ranges(settings_py: Path) -> dict[str, tuple[int, int]]:
    """INTEGER_RANGES as written in settings.py (literals, + - * of literals)."""
    tree = ast.parse(settings_py.read_text(encoding="utf-8"))

    def number(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp):
            left, right = number(node.left), number(node.right)
            operations = {ast.Mult: left * right, ast.Add: left + right, ast.Sub: left - right}
            if type(node.op) in operations:
                return operations[type(node.op)]
        raise ValueError(f"INTEGER_RANGES holds a value that is not a plain number: "
                         f"{ast.unparse(node)}")

    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "INTEGER_RANGES":
            value = node.value
            assert isinstance(value, ast.Dict)
            ranges = {}
            for key, bounds in zip(value.keys, value.values, strict=True):
                assert isinstance(key, ast.Constant)
                assert isinstance(bounds, ast.Tuple)
                low, high = (number(item) for item in bounds.elts)
                ranges[str(key.value)] = (low, high)
            return ranges
    raise ValueError(f"{settings_py} defines no INTEGER_RANGES")


def setting_parameters(main_bicep: Path) -> dict[str, str]:
    """App setting -> the main.bicep parameter it is filled from (SETTING: string(param))."""
    document = parse(main_bicep)
    mapping = {}
    for setting, value in document["variables"]["monitorSettings"]["value"].items():
        if isinstance(value, str):
            mapping[setting] = value
        elif isinstance(value, dict) and value.get("function", {}).get("type") == "string":
            mapping[setting] = next(iter(value["function"]["parameters"].values()))
    return mapping


def bound_problems(root: Path) -> tuple[list[str], int]:
    """What disagrees, and how many settings were compared."""
    ranges = integer_ranges(root / "license_monitor" / "settings.py")
    main = root / "infra" / "main.bicep"
    parameters = Symbols(parse(main)).parameters
    mapping = setting_parameters(main)
    azd_defaults = json.loads((root / "infra" / "main.parameters.json").read_text("utf-8"))
    problems, compared = [], 0
    for setting, parameter in sorted(mapping.items()):
        spec = parameters.get(parameter)
        if spec is None:
            continue
        if setting not in ranges:
            if spec.get("type") == "int":
                problems.append(f"{parameter} fills {setting}, which settings.py does not "
                                "read as an integer")
            continue
        compared += 1
        low, high = ranges[setting]
        if spec.get("type") != "int":
            problems.append(f"{parameter} ({setting}) is {spec.get('type')}, not int")
            continue
        declared = (decorator(spec, "min_value"), decorator(spec, "max_value"))
        if declared != (low, high):
            problems.append(f"{parameter} ({setting}) allows {declared[0]}..{declared[1]} in "
                            f"Bicep, the app {low}..{high}")
        default = spec.get("default")
        if default is not None and not low <= default <= high:
            problems.append(f"{parameter} ({setting}) defaults to {default}, outside "
                            f"{low}..{high}")
        mapped = azd_defaults["parameters"].get(parameter, {}).get("value", "")
        match = re.fullmatch(r"\$\{[A-Z_]+=(-?\d+)\}", str(mapped))
        if match and default is not None and int(match[1]) != default:
            problems.append(f"{parameter} ({setting}) defaults to {default} in Bicep and "
                            f"{match[1]} in main.parameters.json")
    # A setting with a range but no parameter keeps the app's default in Azure: nothing to
    # compare.
    return problems, compared
