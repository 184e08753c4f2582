"""What `azd deploy` packages: a working tree as a developer's looks after the tests and the
demo ran (caches, Azurite's files, virtual environments), less what .funcignore leaves out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.deploy.conftest import ROOT
from tests.unit.test_structure import PRODUCT, ignored_by_funcignore, tracked_files

SHIPPED_FILES = {"function_app.py", "host.json", "requirements.txt", ".funcignore"}
LEFTOVERS = ("__azurite_db_table__.json", "__blobstorage__/a", "__queuestorage__/b",
             ".azurite/table.json", "license_monitor/__pycache__/check.cpython-313.pyc",
             "orchestrators/__pycache__/starters.cpython-311.pyc", ".venv/bin/python",
             ".venv-3.11/bin/python", ".pytest_cache/v", ".hypothesis/x", "local.settings.json",
             ".azure/dev/.env", "docs/deploy.md", "node_modules/x/index.js")


def packaged(root: Path) -> list[str]:
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    found = []
    for directory, folders, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        folders[:] = [name for name in folders
                      if not ignored_by_funcignore(str(relative / name), patterns)]
        found += [str(relative / name) for name in files
                  if not ignored_by_funcignore(str(relative / name), patterns)]
    return sorted(path.removeprefix("./") for path in found)


def test_the_package_holds_only_the_product(tmp_path: Path) -> None:
    for name in tracked_files():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in LEFTOVERS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("left over", encoding="utf-8")
    files = packaged(tmp_path)
    assert "function_app.py" in files
    assert "license_monitor/check.py" in files
    outside = [path for path in files
               if path not in SHIPPED_FILES and path.split("/")[0] not in PRODUCT]
    assert outside == []
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
