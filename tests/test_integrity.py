"""Integrity and provenance (issue 13, defect 5): artifacts are checked before they are timed,
releases detect a flipped bit in a section or an edited manifest, paths read from files stay in
their folder, Blox imports reject impossible latencies, and pickles are unpickled restricted."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from blox_lat.exporters import ArtifactStore, export
from blox_lat.harness import read_journal


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(Path(path).read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    Path(path).chmod(0o644)
    Path(path).write_bytes(bytes(data))


# -- artifacts -----------------------------------------------------------------------------------


def test_store_get_verify_evicts_a_flipped_artifact(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    art = export(0, "onnx", store=store, verify=False)
    assert store.get(art.key, verify=True) == art
    _flip(art.path)
    assert store.get(art.key) is not None  # the cheap lookup only checks the size
    assert store.get(art.key, verify=True) is None  # the digest check finds it and evicts it
    assert not art.path.exists() and store.get(art.key) is None
    again = export(0, "onnx", store=store, verify=False)  # re-exported
    assert again.sha256 == _sha(again.path) == art.sha256


def test_export_reexports_a_flipped_artifact(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    art = export(1, "onnx", store=store, verify=False)
    _flip(art.path)
    again = export(1, "onnx", store=store, verify=False)
    assert _sha(again.path) == again.sha256 == art.sha256


def test_measure_times_the_checked_file_and_records_its_digest(tmp_path):
    """End to end: a byte-flipped .onnx in the store is re-exported before it is timed, and the
    journal record carries the digest of the file that was timed."""
    store = tmp_path / "store"
    base = [sys.executable, "-m", "blox_lat", "measure", "2", "--device", "cpu", "--runs", "10",
            "--warmup-runs", "1", "--warmup-s", "0", "--store", str(store), "--json"]
    res = subprocess.run([*base, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (onnx,) = (store / "objects").glob("*/*.onnx")
    good = _sha(onnx)
    _flip(onnx)
    res = subprocess.run([*base, "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (rec,) = [r for r in read_journal(tmp_path / "b") if r["kind"] == "measurement"]
    assert rec["status"] == "ok"
    assert rec["artifact"]["sha256"] == _sha(onnx) == good
