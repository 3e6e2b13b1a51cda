"""Exit statuses of ``measure`` and ``train``: 0 all ok, 1 some failed, 2 bad input (one line,
before any work), 130 interrupted.

Everything is real: the worker, the artifact store, the journal, a synthetic CIFAR-100 archive.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.harness import read_journal

#: a folder nobody may create, not even root (permission bits do not stop root)
UNWRITABLE = "/sys/blox-lat-exit-status/out"
FAST = ["--runs", "10", "--warmup-s", "0.01"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("blox-lat: error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_measure_exits_1_when_every_model_failed(tmp_path, store):
    """A worker killed by --timeout fails its model; the campaign goes on and says so."""
    out = tmp_path / "camp"
    result = _run("measure", "0", *FAST, "--timeout", "0.01", "--out", str(out), "--store", str(store))
    assert result.exit_code == 1, result.output
    assert "1 model(s) failed" in result.output
    (record,) = read_journal(out, kind="measurement")
    assert record["status"] != "ok" and record["reason"]


def test_measure_exits_0_when_all_ok(tmp_path, store):
    result = _run("measure", "0", *FAST, "--out", str(tmp_path / "camp"), "--store", str(store), "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("partly", [False, True])
def test_affinity_outside_the_machine_is_refused_before_any_work(tmp_path, partly):
    """Absent CPUs alone failed every model; mixed with present ones they were silently dropped."""
    absent = max(os.sched_getaffinity(0)) + 1
    cpus = f"{min(os.sched_getaffinity(0))},{absent}" if partly else str(absent)
    out, fresh_store = tmp_path / "camp", tmp_path / "store"
    result = _run("measure", "0", *FAST, "--affinity", cpus, "--out", str(out), "--store", str(fresh_store))
    _one_line_error(result, "--affinity", f"CPU {absent} is not available", "sched_getaffinity")
    assert not out.exists() and not fresh_store.exists()  # no campaign, no export


def test_affinity_on_the_machine_still_measures(tmp_path, store):
    cpu = min(os.sched_getaffinity(0))
    result = _run("measure", "0", *FAST, "--affinity", str(cpu), "--out", str(tmp_path / "c"), "--store", str(store))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("where", ["unwritable", "under-a-file"])
def test_measure_out_not_writable_is_one_line_before_any_work(tmp_path, where):
    (tmp_path / "file").write_text("x\n")
    out = UNWRITABLE if where == "unwritable" else str(tmp_path / "file" / "camp")
    fresh_store = tmp_path / "store"
    result = _run("measure", "0", *FAST, "--out", out, "--store", str(fresh_store))
    _one_line_error(result, "--out", out)
    assert not fresh_store.exists()  # checked before the first export
    assert (tmp_path / "file").read_text() == "x\n"


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    from blox_lat.training._synthetic import write_synthetic_cifar100

    return write_synthetic_cifar100(tmp_path_factory.mktemp("cifar"), n_train=300, n_test=100, classes=10, seed=0)


@pytest.mark.parametrize("command", ["normal", "distill", "finetune"])
def test_train_out_not_writable_is_one_line_before_any_work(tmp_path, cifar, command):
    teacher = tmp_path / "teacher.pt"  # never read: --out is checked first
    extra = {"normal": [], "distill": ["--teacher", str(teacher)],
             "finetune": ["--teacher", str(teacher), "--library", str(tmp_path / "lib")]}[command]
    result = _run("train", command, "0", "--data", str(cifar), "--out", UNWRITABLE, "--epochs", "1",
                  "--device", "cpu", "--limit-train", "64", "--limit-eval", "32", *extra)
    _one_line_error(result, "--out", UNWRITABLE)


def test_measure_help_documents_the_exit_statuses():
    result = _run("measure", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for rule in ("0 every model measured", "1 some model failed", "2 bad input", "130 interrupted"):
        assert rule in text, text
