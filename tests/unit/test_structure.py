"""The shape the product promises: what is deployed, what the domain imports, what it holds."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("license_monitor", "activities", "orchestrators", "function_app.py")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return [path for path in listed if (REPO / path).exists()]


def ignored_by_funcignore(path: str, patterns: list[str]) -> bool:
    """.funcignore follows .gitignore: a pattern names a file or folder at any depth."""
    parts = path.split("/")
    for pattern in patterns:
        anchored = pattern.strip("/")
        if "/" in anchored:
            if fnmatch.fnmatch(path, anchored) or path.startswith(anchored + "/"):
                return True
        elif any(fnmatch.fnmatch(part, anchored) for part in parts):
            return True
    return False


def deployed_files() -> list[str]:
    patterns = [line.strip() for line in (REPO / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    return [path for path in tracked_files() if not ignored_by_funcignore(path, patterns)]


def test_deployment_holds_no_simulator_demo_tests_or_benchmarks() -> None:
    deployed = deployed_files()
    assert "function_app.py" in deployed
    assert "license_monitor/check.py" in deployed
    assert "requirements.txt" in deployed
    for path in deployed:
        top = path.split("/")[0]
        assert top not in {"simulator", "tests", "benchmarks", "scripts", "node_modules"}, path
        assert "demo" not in Path(path).name, path
        assert "simulator" not in path, path


def test_importing_the_product_does_not_import_the_simulator() -> None:
    code = (
        "import sys, importlib, pkgutil, license_monitor\n"
        "for m in pkgutil.walk_packages(license_monitor.__path__, 'license_monitor.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        "import function_app\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('simulator', 'tests')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


def _python_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = REPO / root
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _defined_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not (
                node.name.startswith("__") and node.name.endswith("__")):
            names.append(node.name)
    return names


def _used_names(path: Path) -> set[str]:
    """Names a file uses (calls, attributes, references), not the ones it only defines."""
    tree = ast.parse(path.read_text())
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


def test_every_domain_function_is_used_by_the_product_not_only_by_tests() -> None:
    product_files = _python_files(*PRODUCT)
    used: set[str] = set()
    for path in product_files:
        used |= _used_names(path)
    # Entry points the runtime calls by protocol rather than by name in our code.
    called_by_protocol = {"main", "to_dict", "from_dict", "default"}
    unused = sorted(
        f"{path.relative_to(REPO)}:{name}"
        for path in _python_files("license_monitor")
        for name in _defined_functions(path)
        if name not in used and name not in called_by_protocol
    )
    assert unused == []


def test_state_is_one_small_module_per_concern() -> None:
    modules = {path.stem: len(path.read_text().splitlines())
               for path in (REPO / "license_monitor" / "state").glob("*.py")}
    assert {"alerts", "rosters", "samples", "billing", "retention", "table"} <= set(modules)
    assert max(modules.values()) <= 400, modules
