"""What `azd deploy` packages: the working tree as it is on disk (with caches, Azurite's files
and virtual environments around), less what .funcignore leaves out."""

from __future__ import annotations

import os
from pathlib import Path

from tests.deploy.conftest import ROOT
from tests.unit.test_structure import PRODUCT, ignored_by_funcignore

SHIPPED_FILES = {"function_app.py", "host.json", "requirements.txt", ".funcignore"}


def packaged(root: Path) -> list[str]:
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    found = []
    for directory, folders, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        folders[:] = [name for name in folders if name != ".git" and not ignored_by_funcignore(
            str(relative / name), patterns)]
        found += [str(relative / name) for name in files
                  if not ignored_by_funcignore(str(relative / name), patterns)]
    return sorted(path.removeprefix("./") for path in found)


def test_the_package_holds_only_the_product(tmp_path: Path) -> None:
    # What a developer's checkout has lying around after the tests and the demo ran.
    (ROOT / "license_monitor" / "__pycache__").mkdir(exist_ok=True)
    leftovers = [ROOT / "__azurite_db_table__.json", ROOT / "__blobstorage__" / "x",
                 ROOT / "license_monitor" / "__pycache__" / "deploy_probe.cpython-313.pyc"]
    for path in leftovers:
        path.parent.mkdir(exist_ok=True)
        path.write_text("left over", encoding="utf-8")
    try:
        files = packaged(ROOT)
    finally:
        for path in leftovers:
            path.unlink()
        (ROOT / "__blobstorage__").rmdir()
    assert "function_app.py" in files
    assert "license_monitor/check.py" in files
    outside = [path for path in files
               if path not in SHIPPED_FILES and path.split("/")[0] not in PRODUCT]
    assert outside == []
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
