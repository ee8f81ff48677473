"""Shared pytest fixtures. The shared oracles and helpers are in tests/oracles.py (importable as
``oracles`` because ``pythonpath`` in pyproject.toml lists tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A ring file path in the test's own temporary directory (nothing there yet)."""
    return str(tmp_path / "bids.ring")
