"""Plant typical deployment mistakes one at a time and show that `bash scripts/test` fails.

    .venv/bin/python scripts/infra_mutations.py [mutation ids...]

Each mutation (tests/infra/mutations.py) is applied to a scratch copy of the repository's
tracked files (with this checkout's .venv*, node_modules linked in), and `bash scripts/test
--deploy-only` runs there: checkov and the offline deployment validation, the stages of
`bash scripts/test` that read the deployment files. A mutation counts as caught when that run
fails; the line it prints first names what caught it. The unchanged copy must pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.infra.mutations import MUTATIONS, Mutation  # noqa: E402

LINKED = (".venv", ".venv-3.11", ".venv-checkov", "node_modules")


def checkout(target: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,  # noqa: S607
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for name in LINKED:
        if (ROOT / name).exists():
            (target / name).symlink_to((ROOT / name).resolve())
    return target


def run(root: Path) -> tuple[int, str]:
    completed = subprocess.run(["bash", "scripts/test", "--deploy-only"], cwd=root,  # noqa: S607
                               capture_output=True, text=True, check=False)
    return completed.returncode, completed.stdout + completed.stderr


def evidence(output: str) -> str:
    """The first line that says what failed."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(("FAILED for resource", "Check: CKV")) or (
                text and not text.startswith(("==>", "types:", "rules:", "kql:", "bounds:",
                                              "azd:", "bicep scan", "Passed checks",
                                              "WARNING"))):
            return text[:160]
    return output.strip().splitlines()[-1][:160] if output.strip() else ""


def main() -> int:
    chosen = [m for m in MUTATIONS if not sys.argv[1:] or m.id in sys.argv[1:]]
    with tempfile.TemporaryDirectory() as scratch:
        base = checkout(Path(scratch) / "unchanged")
        status, output = run(base)
        if status != 0:
            print(f"the unchanged checkout already fails:\n{output}")
            return 1
        print("unchanged checkout: bash scripts/test --deploy-only passes")
        missed: list[Mutation] = []
        for mutation in chosen:
            root = Path(scratch) / mutation.id
            shutil.copytree(base, root, symlinks=True)
            mutation.apply(root)
            started = time.monotonic()
            status, output = run(root)
            caught = status != 0
            if not caught:
                missed.append(mutation)
            print(f"{'FAILS (caught)' if caught else 'PASSES (missed)'} {mutation.id:26} "
                  f"{mutation.file}: {mutation.what} [{time.monotonic() - started:.0f} s]")
            if caught:
                print(f"    {evidence(output)}")
            shutil.rmtree(root)
    print(f"{len(chosen) - len(missed)} of {len(chosen)} planted mistakes fail "
          "bash scripts/test")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
