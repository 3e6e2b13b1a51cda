"""Runners: real onnxruntime and TorchScript timings in worker processes; crash/hang isolation."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from blox_lat import space as sp
from blox_lat.devices import LocalTransport, get_device
from blox_lat.harness import (
    LocalWorkerRunner,
    Measurement,
    ModelFailedError,
    ModelTimeoutError,
    Runner,
    RunnerUnavailableError,
    TimingProtocol,
    TransportRunner,
    WorkerCrashedError,
    get_runner,
)

FAST = TimingProtocol(groups=3, runs_per_group=5, warmup_min_runs=10, warmup_min_s=0.05)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def onnx_artifact(store):
    from blox_lat.exporters import export

    return export(sp.resolve("0"), "onnx", store=store)


def _check_raw(raw, protocol=FAST):
    assert len(raw.samples_ns) == protocol.total_runs
    assert all(isinstance(s, int) and s > 0 for s in raw.samples_ns)
    assert raw.warmup_runs >= protocol.warmup_min_runs
    m = Measurement.from_ns(raw.samples_ns, runs_per_group=protocol.runs_per_group,
                            warmup_runs=raw.warmup_runs, started_at=raw.started_at,
                            finished_at=raw.finished_at)
    # a Blox model at batch 1 on a CPU takes between 0.05 ms and 1 s
    assert 0.05 < m.latency_ms < 1000
    return m


def test_onnxruntime_fp32_and_worker_reuse(onnx_artifact):
    profile = get_device("cpu")
    with LocalWorkerRunner(timeout_s=120) as runner:
        assert isinstance(runner, Runner)
        first = runner.measure(onnx_artifact, profile, FAST)
        pid = runner.worker_pid
        second = runner.measure(onnx_artifact, profile, FAST)
        assert runner.worker_pid == pid and runner.workers_started == 1
    _check_raw(first)
    _check_raw(second)
    assert first.facts["runtime"] == "onnxruntime" and first.facts["threads"] == 1
    assert first.facts["pid"] != os.getpid()  # timed in the worker, not here


def test_onnxruntime_int8(store):
    from blox_lat.exporters import export

    artifact = export(sp.resolve("1"), "onnx-int8", store=store)
    with LocalWorkerRunner(timeout_s=120) as runner:
        raw = runner.measure(artifact, get_device("cpu-int8"), FAST)
    _check_raw(raw)


def test_torchscript_cpu(store):
    from blox_lat.exporters import export

    artifact = export(sp.resolve("2"), "torchscript", store=store)
    with LocalWorkerRunner(timeout_s=180) as runner:
        raw = runner.measure(artifact, get_device("cpu-torchscript"), FAST)
    _check_raw(raw)
    assert raw.facts["runtime"] == "torchscript" and raw.facts["device"] == "cpu"


def test_torchscript_cuda_path(store):
    """With a GPU: a real CUDA measurement. Without: a clean per-model failure naming CUDA."""
    import torch

    from blox_lat.exporters import export

    artifact = export(sp.resolve("2"), "torchscript", store=store)
    profile = replace(get_device("cpu-torchscript"), name="cuda-test", options={"device": "cuda"})
    with LocalWorkerRunner(timeout_s=180) as runner:
        if not torch.cuda.is_available():
            with pytest.raises(ModelFailedError, match="cuda"):
                runner.measure(artifact, profile, FAST)
            pytest.skip("no CUDA device: the CUDA path failed cleanly as expected")
        raw = runner.measure(artifact, profile, FAST)
    _check_raw(raw)
    assert raw.facts["device"] == "cuda"


def test_corrupt_artifact_fails_that_model_only(tmp_path, onnx_artifact):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model")
    with LocalWorkerRunner(timeout_s=60) as runner:
        with pytest.raises(ModelFailedError) as info:
            runner.measure(SimpleNamespace(path=bad), get_device("cpu"), FAST)
        assert "onnx" in info.value.reason.lower() or "protobuf" in info.value.reason.lower()
        _check_raw(runner.measure(onnx_artifact, get_device("cpu"), FAST))  # same worker goes on


def test_hanging_model_times_out_and_worker_is_replaced(onnx_artifact):
    slow = TimingProtocol(groups=1, runs_per_group=5, warmup_min_runs=10, warmup_min_s=60.0)
    with LocalWorkerRunner(timeout_s=2.0) as runner:
        started = time.monotonic()
        with pytest.raises(ModelTimeoutError, match="timed out"):
            runner.measure(onnx_artifact, get_device("cpu"), slow)
        assert time.monotonic() - started < 20
        _check_raw(runner.measure(onnx_artifact, get_device("cpu"), FAST))
        assert runner.workers_started == 2


def test_crashing_worker_fails_that_model_only(onnx_artifact):
    long = TimingProtocol(groups=1, runs_per_group=5, warmup_min_runs=10, warmup_min_s=30.0)
    with LocalWorkerRunner(timeout_s=60) as runner:
        runner.probe()  # worker is up
        pid = runner.worker_pid
        killer = threading.Timer(1.0, os.kill, args=(pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(WorkerCrashedError, match="SIGKILL"):
            runner.measure(onnx_artifact, get_device("cpu"), long)
        killer.join()
        _check_raw(runner.measure(onnx_artifact, get_device("cpu"), FAST))


def test_affinity_is_applied(onnx_artifact):
    cpu = sorted(os.sched_getaffinity(0))[0]
    with LocalWorkerRunner(timeout_s=60, affinity=[cpu]) as runner:
        raw = runner.measure(onnx_artifact, get_device("cpu"), FAST)
    assert raw.facts["affinity"] == [cpu]


def test_bad_affinity_fails_the_model(onnx_artifact):
    with LocalWorkerRunner(timeout_s=60, affinity=[100000]) as runner:
        with pytest.raises(ModelFailedError, match="cannot pin"):
            runner.measure(onnx_artifact, get_device("cpu"), FAST)


def test_transport_runner_over_local_transport(tmp_path, onnx_artifact):
    import sys

    runner = TransportRunner(LocalTransport(), workdir=str(tmp_path / "device"), python=sys.executable,
                             timeout_s=120)
    try:
        raw = runner.measure(onnx_artifact, get_device("cpu"), FAST)
    finally:
        runner.close()
    _check_raw(raw)
    assert (tmp_path / "device" / f"{onnx_artifact.sha256}.onnx").is_file()  # pushed
    assert runner.describe()["transport"]["kind"] == "local"


def test_get_runner_for_profiles():
    runner = get_runner(get_device("cpu"))
    assert isinstance(runner, LocalWorkerRunner)
    runner.close()
    from blox_lat.devices import ProfileError

    with pytest.raises(ProfileError, match="needs an SSH host"):
        get_runner(get_device("gtx1080ti"))
    remote = get_runner(get_device("gtx1080ti"), connection={"host": "gpu-box", "user": "me"})
    assert isinstance(remote, TransportRunner)
    assert remote.describe()["transport"] == {"kind": "ssh", "host": "gpu-box", "port": 22, "user": "me"}
    assert remote.workdir == "/tmp/blox-lat"
    remote.close()


def test_sd888_without_the_snpe_sdk_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RunnerUnavailableError, match="SNPE_ROOT"):
        get_runner(get_device("sd888"))
