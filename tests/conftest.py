"""Shared fixtures: reference values from the Blox implementation; a real one-node Slurm."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "blox-reference"
_LOCAL_COPY = Path(__file__).resolve().parent / "data" / "blox-reference" / "sample.json"


def _reference_path() -> Path:
    """The shared reference sample, or the copy kept in tests/data for clean clones."""
    shared = REFERENCE_DIR / "sample.json"
    return shared if shared.exists() else _LOCAL_COPY


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(_reference_path().read_text())


@pytest.fixture(scope="session")
def slurm():
    """A one-node Slurm on localhost for the session (tests skip first where it cannot run)."""
    root = Path(tempfile.mkdtemp(prefix="blox-lat-slurm-"))  # not under pytest's 0700 folders: munge reads it
    cluster = SlurmCluster(root)
    old = os.environ.get("SLURM_CONF")
    try:
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        left = cluster.daemons_left()
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"daemons left behind: {left}"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A bad-input case's folder, also its working directory (tests/test_bad_inputs.py and the
    files that reuse its cases)."""
    d = tmp_path / "case"
    d.mkdir()
    monkeypatch.chdir(d)
    return d
