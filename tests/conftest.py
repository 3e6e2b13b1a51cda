"""Shared fixtures: reference values from the Blox implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "blox-reference"
_LOCAL_COPY = Path(__file__).resolve().parent / "data" / "blox-reference" / "sample.json"


def _reference_path() -> Path:
    """The shared reference sample, or the copy kept in tests/data for clean clones."""
    shared = REFERENCE_DIR / "sample.json"
    return shared if shared.exists() else _LOCAL_COPY


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(_reference_path().read_text())
