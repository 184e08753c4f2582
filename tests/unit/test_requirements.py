"""The pins install on every Python the project supports, each with the right azure-functions.

azure-functions 1.x requires Python < 3.13, 2.x requires >= 3.13; azure-functions-runtime
(runtime versioning) exists for 3.13+ only. Environment markers pick per interpreter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def pins(python: str) -> dict[str, str]:
    """name -> pinned version of every requirement that applies on `python` (e.g. "3.13")."""
    applied: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(
                {"python_version": python, "python_full_version": f"{python}.0"}):
            continue
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{text} is not pinned"
        assert requirement.name not in applied, f"{requirement.name} is pinned twice on {python}"
        applied[requirement.name] = specifier.version
    return applied


@pytest.mark.parametrize(("python", "major", "runtime"), [
    ("3.11", "1", None), ("3.12", "1", None), ("3.13", "2", "1.3.0"),
])
def test_each_python_gets_the_azure_functions_it_can_install(python: str, major: str,
                                                              runtime: str | None) -> None:
    applied = pins(python)
    assert applied["azure-functions"].split(".")[0] == major
    assert applied.get("azure-functions-runtime") == runtime
    assert "azure-functions-durable" in applied
