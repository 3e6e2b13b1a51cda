"""Output checks and leftovers: a release OUT that cannot be written is one line before any work;
temporary folders of killed builds and exports are removed by the next run, never those of a
builder that is still running (on this host: its process is alive; on another host: it is young)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import blox_lat.dataset as ds
from blox_lat._leftovers import owner_tag
from blox_lat.cli.main import cli
from blox_lat.dataset import _synthetic as syn
from blox_lat.exporters import ArtifactStore


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stale-in")
    syn.write_journal(root / "cpu", "cpu", [0, 1, 2], samples=20)
    return root


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)


@pytest.mark.parametrize("out", ["afile/1.0.0", "/proc/blox-lat-nowhere/1.0.0", "/sys/blox-lat-nowhere/1.0.0"])
def test_unwritable_out_is_one_line_exit_2_before_any_work(inputs, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    calls = []
    monkeypatch.setattr("blox_lat.dataset._build.discover", lambda *a: calls.append(a) or [])
    res = CliRunner().invoke(cli, ["dataset", "build", "--from", str(inputs / "cpu"), "--out", out,
                                   "--version", "1.0.0", "--no-static"])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("blox-lat: error:") and "--out" in res.output
    assert calls == []  # refused before reading any input


def test_killed_build_leftovers_are_removed_by_the_next_build(inputs, tmp_path):
    dead = tmp_path / f".0.9.0.partial-{owner_tag(_dead_pid())}"
    legacy_old = tmp_path / ".0.8.0.partial-12345"
    other_old = tmp_path / ".0.7.0.partial-77@another-node"
    other_young = tmp_path / ".0.6.0.partial-77@another-node-b"
    running = tmp_path / f".0.5.0.partial-{owner_tag()}"
    legacy_young = tmp_path / ".0.4.0.partial-54321"
    for d in (dead, legacy_old, other_old, other_young, running, legacy_young):
        (d / "sections").mkdir(parents=True)
        (d / "sections" / "static.parquet").write_bytes(b"x" * 10)
    _age(legacy_old, 2 * 86400)
    _age(other_old, 2 * 86400)
    _age(running, 2 * 86400)  # old, but its process (this one) is alive
    ds.build([inputs / "cpu"], tmp_path / "1.0.0", "1.0.0", static=False)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["1.0.0", other_young.name, running.name, legacy_young.name])


def test_killed_export_leftovers_are_removed_by_the_next_store(tmp_path):
    root = tmp_path / "store"
    ArtifactStore(root)
    dead = root / f".tmp-{owner_tag(_dead_pid())}-abc"
    legacy_old = root / ".tmp-k2j3h4"
    legacy_young = root / ".tmp-young1"
    running = root / f".tmp-{owner_tag()}-xyz"
    for d in (dead, legacy_old, legacy_young, running):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"x" * 10)
    (root / "objects" / "ab").mkdir(parents=True)
    torn = root / "objects" / "ab" / f".abcd.onnx.{owner_tag(_dead_pid())}.123.tmp"
    torn.write_bytes(b"half")
    _age(legacy_old, 2 * 86400)
    _age(running, 2 * 86400)
    ArtifactStore(root).clean_stale()
    left = sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-"))
    assert left == sorted([legacy_young.name, running.name])
    assert not torn.exists()
