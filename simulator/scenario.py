"""Scenario files: a SimOrg saved as JSON so a demo or a bug report can be replayed exactly."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.model import SimOrg


def save_scenario(org: SimOrg, path: str | Path) -> None:
    """Write the org to `path` as a JSON scenario file."""
    Path(path).write_text(json.dumps(org.to_json(), separators=(",", ":")), encoding="utf-8")


def load_scenario(path: str | Path) -> SimOrg:
    """Read a JSON scenario file written by save_scenario (ValueError if it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"scenario file {path} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"scenario file {path} does not hold a JSON object")  # noqa: TRY004 (a bad file, not a bad argument)
    return SimOrg.from_json(data)
