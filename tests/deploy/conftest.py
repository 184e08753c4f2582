"""Scratch checkouts for planting deployment mistakes (tests/infra/mutations.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.mutations import MUTATIONS, Mutation, scratch_copy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def planted(tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the deployment files with one mutation (by id) applied."""

    def plant(mutation_id: str) -> Path:
        (mutation,) = [m for m in MUTATIONS if m.id == mutation_id]
        root = scratch_copy(ROOT, tmp_path / mutation_id)
        mutation.apply(root)
        return root

    return plant


def caught_by(kind: str) -> list[Mutation]:
    return [mutation for mutation in MUTATIONS if mutation.caught_by == kind]
