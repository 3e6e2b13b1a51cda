"""SnpeRunner over the real AdbTransport against the ADB emulator, with stand-in SNPE tools.

tests/fakesnpe/bin/aarch64-android/snpe-net-run plays the device tool (the emulator runs it on
this host), tests/fakesnpe/bin/x86_64-linux-clang/snpe-diagview the host tool; the real SDK and
a real phone are unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from peers.adbd import AdbDeviceEmulator

from blox_lat.devices import ProfileError
from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._profiles import get_device
from blox_lat.devices._transport import ConnectionLostError
from blox_lat.exporters import Artifact, ArtifactKey
from blox_lat.harness._protocol import TimingProtocol
from blox_lat.harness._runners import ModelFailedError, ModelTimeoutError, Runner, RunnerUnavailableError
from blox_lat.harness._snpe_runner import SnpeRunner, parse_snpe_version, snpe_input_raw

FAKE_ROOT = Path(__file__).resolve().parent / "fakesnpe"
PROTOCOL = TimingProtocol(groups=3, runs_per_group=10, warmup_min_runs=5, warmup_min_s=0.0)
NASTY_WORKDIR = "data/local/tmp/blox a b;c"


def fake_total_us(i: int) -> int:
    """What the snpe-net-run stand-in logs for inference i (0-based, input-list order)."""
    return 1500 + (i * 7919) % 500


class CountingAdb(AdbTransport):
    """AdbTransport that remembers every push (remote path)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pushed: list[str] = []

    def push(self, local, remote):
        self.pushed.append(remote)
        super().push(local, remote)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()
    return path


@pytest.fixture()
def emu(tmp_path, key):
    with AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(key.parent / "adbkey.pub").read_bytes()]) as e:
        yield e


@pytest.fixture()
def adb(emu, key):
    with CountingAdb(emu.serial, key_path=key) as t:
        yield t


@pytest.fixture()
def netrun_log(tmp_path, monkeypatch):
    """Calls of the device stand-in (the emulator's shell inherits this process's environment)."""
    path = tmp_path / "netrun.jsonl"
    monkeypatch.setenv("SNPE_FAKE_NETRUN_LOG", str(path))
    for name in ("SNPE_FAKE_NETRUN", "SNPE_FAKE_FAIL"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture()
def artifact(tmp_path):
    path = tmp_path / "store" / "model.dlc"
    path.parent.mkdir()
    body = b"FAKEDLC1 int8 0123\ncalibrated on 16 inputs\nhtp cache for sm8350\n"
    path.write_bytes(body)
    return Artifact(key=ArtifactKey(model_hash="m0", format="dlc", batch=1), path=path,
                    sha256=hashlib.sha256(body).hexdigest(), bytes=len(body))


def runner_for(emu, adb, workdir=NASTY_WORKDIR, **kwargs) -> SnpeRunner:
    return SnpeRunner(adb, workdir=emu.device_path(workdir), snpe_root=kwargs.pop("snpe_root", FAKE_ROOT), **kwargs)


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_measure_returns_the_timed_inferences(emu, adb, artifact, netrun_log):
    runner = runner_for(emu, adb)
    assert isinstance(runner, Runner)
    raw = runner.measure(artifact, get_device("sd888"), PROTOCOL)
    warm, timed = 5, 30
    assert raw.warmup_runs == warm
    assert raw.samples_ns == tuple(fake_total_us(i) * 1000 for i in range(warm, warm + timed))
    assert raw.facts["snpe_version"] == "2.99.0.fake" and raw.facts["snpe_sdk_version"] == "2.99.0.fake"
    assert (raw.facts["runtime"], raw.facts["perf_profile"], raw.facts["warmup_runs"]) == ("dsp", "burst", warm)
    assert raw.facts["warmup_s"] == pytest.approx(sum(fake_total_us(i) for i in range(warm)) / 1e6)
    assert raw.started_at <= raw.finished_at

    (call,) = calls(netrun_log)  # one invocation for every inference of the model
    argv = call["argv"]
    assert argv[argv.index("--container") + 1] == f"{runner.workdir}/models/{artifact.sha256}.dlc"
    assert argv[argv.index("--input_list") + 1] == "input_list.txt"
    assert argv[argv.index("--perf_profile") + 1] == "burst" and "--use_dsp" in argv and "--use_gpu" not in argv
    assert argv[argv.index("--profiling_level") + 1] == "basic"
    assert call["input_lines"] == ["input.raw"] * (warm + timed)
    assert call["cwd"].startswith(runner.workdir + "/runs/")
    # ';' in the workdir: the DSP folder is named relative to the run folder, then the system ones
    adsp = call["adsp_library_path"].split(";")
    assert adsp[1:] == ["/system/lib/rfsa/adsp", "/vendor/lib/rfsa/adsp", "/dsp"]
    assert os.path.normpath(os.path.join(call["cwd"], adsp[0])) == f"{runner.sdk_dir}/dsp"
    assert call["ld_library_path"] == f"{runner.sdk_dir}/lib"  # no ':' in it: absolute
    # the SDK landed where the manifest says, and the per-model run folder is gone
    sdk = Path(runner.sdk_dir)
    assert sorted(p.relative_to(sdk).as_posix() for p in sdk.rglob("*") if p.is_file()) == [
        ".complete", "bin/snpe-net-run", "dsp/libSnpeHtpV68Skel.so", "lib/libSNPE.so",
        "lib/libSnpeHtpV68Stub.so", "lib/libc++_shared.so"]
    assert not any(Path(runner.workdir, "runs").iterdir())
    assert not list(Path(runner.workdir).rglob("*.part"))


def test_absolute_library_paths_and_gpu_and_cpu_flags(emu, adb, artifact, netrun_log):
    runner = runner_for(emu, adb, workdir="data/local/tmp/blox-lat")
    gpu = get_device("sd888").__class__(**{**_profile_fields("sd888"), "name": "sd888-gpu",
                                           "options": {"runtime": "gpu", "perf_profile": "sustained_high_performance"}})
    cpu = get_device("sd888").__class__(**{**_profile_fields("sd888"), "name": "sd888-cpu",
                                           "options": {"runtime": "cpu", "perf_profile": "burst"}})
    runner.measure(artifact, gpu, PROTOCOL)
    raw = runner.measure(artifact, cpu, PROTOCOL)
    assert raw.facts["runtime"] == "cpu"
    first, second = calls(netrun_log)
    assert "--use_gpu" in first["argv"] and "sustained_high_performance" in first["argv"]
    assert not {"--use_gpu", "--use_dsp"} & set(second["argv"])
    assert first["adsp_library_path"].split(";")[0] == f"{runner.sdk_dir}/dsp"


def _profile_fields(name: str) -> dict:
    p = get_device(name)
    return {k: getattr(p, k) for k in ("name", "transport", "runtime", "format", "batch", "input_size",
                                       "precision", "options", "connection", "description")}


def test_sdk_pushed_once_per_device(emu, adb, artifact, netrun_log, key):
    first = runner_for(emu, adb)
    first.measure(artifact, get_device("sd888"), PROTOCOL)
    sdk_pushes = [p for p in adb.pushed if p.startswith(first.sdk_dir)]
    assert len(sdk_pushes) == 6  # 5 files + the stamp (via .part)
    model_pushes = [p for p in adb.pushed if "/models/" in p]
    assert len(model_pushes) == 1
    for path in Path(first.sdk_dir).rglob("*"):  # mark device-side files: a re-push resets mtime
        os.utime(path, (12345, 12345))
    with CountingAdb(emu.serial, key_path=key) as other:
        second = SnpeRunner(other, workdir=first.workdir, snpe_root=FAKE_ROOT)
        assert second.sdk_dir == first.sdk_dir
        raw = second.measure(artifact, get_device("sd888"), PROTOCOL)
        raw_again = second.measure(artifact, get_device("sd888"), PROTOCOL)
        assert raw.samples_ns == raw_again.samples_ns
        # only the per-run input and list travel; no SDK file, no model
        assert {p.rsplit("/", 1)[1] for p in other.pushed} == {"input.raw", "input_list.txt"}
        assert second.pushes == 0
    assert all(p.stat().st_mtime == 12345 for p in Path(first.sdk_dir).rglob("*") if p.is_file())


def test_interrupted_upload_is_redone(emu, adb, artifact, netrun_log, key):
    first = runner_for(emu, adb)
    first.measure(artifact, get_device("sd888"), PROTOCOL)
    sdk = Path(first.sdk_dir)
    (sdk / ".complete").unlink()  # as if the upload had stopped before the stamp
    (sdk / "lib" / "libSNPE.so").unlink()
    (sdk / "lib" / "junk.part").write_bytes(b"partial")
    with CountingAdb(emu.serial, key_path=key) as other:
        second = SnpeRunner(other, workdir=first.workdir, snpe_root=FAKE_ROOT)
        second.measure(artifact, get_device("sd888"), PROTOCOL)
        assert len([p for p in other.pushed if p.startswith(second.sdk_dir)]) == 6
    assert (sdk / "lib" / "libSNPE.so").read_bytes() == (FAKE_ROOT / "lib/aarch64-android/libSNPE.so").read_bytes()
    assert not (sdk / "lib" / "junk.part").exists() and (sdk / ".complete").is_file()


def test_another_sdk_gets_another_folder(emu, adb, artifact, netrun_log, tmp_path):
    root = tmp_path / "sdk"
    shutil.copytree(FAKE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    a = runner_for(emu, adb, snpe_root=root)
    (root / "lib/aarch64-android/libSNPE.so").write_text("a newer fake libSNPE.so\n")
    b = runner_for(emu, adb, snpe_root=root)
    assert a.sdk_dir != b.sdk_dir and a.sdk_dir.startswith(a.workdir + "/snpe-")
    assert len(b.sdk_dir.rsplit("snpe-", 1)[1]) == 16


def test_missing_snpe_root(monkeypatch, emu, adb):
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(RunnerUnavailableError, match=r"SNPE_ROOT is not set.*set SNPE_ROOT"):
        SnpeRunner(adb, workdir=emu.device_path("w"))
    monkeypatch.setenv("SNPE_ROOT", "/nonexistent/snpe")
    with pytest.raises(RunnerUnavailableError, match=r"SNPE_ROOT='/nonexistent/snpe' is not a folder"):
        SnpeRunner(adb, workdir=emu.device_path("w"))
    monkeypatch.setenv("SNPE_ROOT", str(FAKE_ROOT))  # the default comes from the environment
    assert SnpeRunner(adb, workdir=emu.device_path("w")).root == FAKE_ROOT


@pytest.mark.parametrize("remove, named", [
    ("bin/aarch64-android/snpe-net-run", r"\$SNPE_ROOT/bin/aarch64-android/snpe-net-run is missing"),
    ("lib/aarch64-android", r"\$SNPE_ROOT/lib/aarch64-android is missing"),
    ("lib/hexagon-v68", r"\$SNPE_ROOT/lib/hexagon-v68/unsigned is missing"),
    ("bin/x86_64-linux-clang/snpe-diagview", r"\$SNPE_ROOT/bin/x86_64-linux-clang/snpe-diagview is missing"),
])
def test_missing_sdk_files(tmp_path, emu, adb, remove, named):
    root = tmp_path / "sdk"
    shutil.copytree(FAKE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(RunnerUnavailableError, match=named) as info:
        SnpeRunner(adb, workdir=emu.device_path("w"), snpe_root=root)
    assert f"SNPE_ROOT='{root}'" in str(info.value)


def test_no_dsp_arch_uploads_no_skeletons_but_refuses_dsp(tmp_path, emu, adb, artifact, netrun_log):
    runner = runner_for(emu, adb, dsp_arch=None)
    assert not any(f.remote.startswith("dsp/") for f in runner.sdk.files)
    with pytest.raises(RunnerUnavailableError, match="dsp_arch=None"):
        runner.measure(artifact, get_device("sd888"), PROTOCOL)


def test_failing_snpe_net_run(emu, adb, artifact, netrun_log, monkeypatch):
    monkeypatch.setenv("SNPE_FAKE_NETRUN", "fail")
    runner = runner_for(emu, adb)
    with pytest.raises(ModelFailedError) as info:
        runner.measure(artifact, get_device("sd888"), PROTOCOL)
    assert "snpe-net-run exited with status 1" in info.value.reason
    assert "Layer 3 (Conv2d) is not supported by the DSP runtime" in info.value.reason
    assert "Loading network on the DSP runtime" in info.value.reason
    assert not any(Path(runner.workdir, "runs").iterdir())
    monkeypatch.delenv("SNPE_FAKE_NETRUN")
    assert len(runner.measure(artifact, get_device("sd888"), PROTOCOL).samples_ns) == 30  # runner still usable


@pytest.mark.parametrize("mode, message", [
    ("short", r"logged 34 inference times, expected 35 \(5 warm-up \+ 3 groups x 10\)"),
    ("nolog", r"wrote no SNPEDiag log"),
])
def test_wrong_sample_count_or_no_log(emu, adb, artifact, netrun_log, monkeypatch, mode, message):
    monkeypatch.setenv("SNPE_FAKE_NETRUN", mode)
    with pytest.raises(ModelFailedError, match=message):
        runner_for(emu, adb).measure(artifact, get_device("sd888"), PROTOCOL)


def test_failing_diagview(emu, adb, artifact, netrun_log, monkeypatch):
    monkeypatch.setenv("SNPE_FAKE_FAIL", "snpe-diagview")
    with pytest.raises(ModelFailedError, match=r"snpe-diagview failed \(exit status 3\).*SNPE_FAKE_FAIL"):
        runner_for(emu, adb).measure(artifact, get_device("sd888"), PROTOCOL)


def test_hanging_snpe_net_run_times_out(emu, adb, artifact, netrun_log, monkeypatch):
    runner = runner_for(emu, adb, timeout_s=1.5)
    runner.measure(artifact, get_device("sd888"), PROTOCOL)  # upload outside the timed part
    survived = emu.root.parent / "survived"
    monkeypatch.setenv("SNPE_FAKE_NETRUN", "hang")
    monkeypatch.setenv("SNPE_FAKE_NETRUN_HANG_S", "2.5")
    monkeypatch.setenv("SNPE_FAKE_NETRUN_SURVIVED", str(survived))
    start = time.monotonic()
    with pytest.raises(ModelTimeoutError, match="within 1.5 s"):
        runner.measure(artifact, get_device("sd888"), PROTOCOL)
    assert time.monotonic() - start < 10
    monkeypatch.delenv("SNPE_FAKE_NETRUN")
    assert len(runner.measure(artifact, get_device("sd888"), PROTOCOL).samples_ns) == 30
    assert not any(Path(runner.workdir, "runs").iterdir())
    time.sleep(max(0.0, start + 3.0 - time.monotonic()))  # outlive the hang: the tool was stopped
    assert not survived.exists()


def test_lost_device_is_not_a_model_failure(emu, adb, artifact, netrun_log):
    runner = runner_for(emu, adb)
    runner.measure(artifact, get_device("sd888"), PROTOCOL)
    emu.stop()
    with pytest.raises(ConnectionLostError):
        runner.measure(artifact, get_device("sd888"), PROTOCOL)


def test_input_raw_layout():
    raw = snpe_input_raw(1, 32)
    assert len(raw) == 1 * 32 * 32 * 3 * 4 and raw == snpe_input_raw(1, 32)
    nhwc = np.frombuffer(raw, dtype=np.float32).reshape(1, 32, 32, 3)
    nchw = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert np.array_equal(nhwc, nchw.transpose(0, 2, 3, 1))  # same tensor as the local runtimes, channel last
    assert nhwc[0, 5, 7, 2] == nchw[0, 2, 5, 7]
    assert len(snpe_input_raw(2, 16)) == 2 * 16 * 16 * 3 * 4 and snpe_input_raw(1, 32, seed=1) != raw


def test_input_file_on_the_device(emu, adb, artifact, netrun_log, monkeypatch):
    """The bytes snpe-net-run reads are snpe_input_raw(1, 32): check them mid-run via the stand-in."""
    runner = runner_for(emu, adb)
    seen = {}
    original = adb.run

    def spy(argv, **kwargs):
        if "--input_list" in argv:
            seen["raw"] = (Path(kwargs["cwd"]) / "input.raw").read_bytes()
            seen["list"] = (Path(kwargs["cwd"]) / "input_list.txt").read_text()
        return original(argv, **kwargs)

    monkeypatch.setattr(adb, "run", spy)
    runner.measure(artifact, get_device("sd888"), PROTOCOL)
    assert seen["raw"] == snpe_input_raw(1, 32)
    assert seen["list"] == "input.raw\n" * 35


def test_probe(emu, adb, monkeypatch):
    from blox_lat.harness import _snpe_runner

    dirs = tuple(emu.device_path(d) for d in ("system/lib/rfsa/adsp", "vendor/lib/rfsa/adsp", "dsp"))
    monkeypatch.setattr(_snpe_runner, "DSP_SYSTEM_LIBRARY_DIRS", dirs)  # Android's folders, in the sandbox
    Path(dirs[1]).mkdir(parents=True)
    (Path(dirs[1]) / "libadsprpc_fake.so").write_bytes(b"x")
    runner = runner_for(emu, adb)
    facts = runner.probe()
    assert facts["sdk_uploaded"] and facts["snpe_net_run_ok"] and facts["snpe_version"] == "2.99.0.fake"
    assert facts["dsp_library_dirs"] == {dirs[1]: ["libadsprpc_fake.so"], dirs[2]: None}
    assert facts["dsp_available"] is True
    assert json.loads(json.dumps(facts)) == facts
    assert runner.describe()["sdk_dir"] == runner.sdk_dir and runner.describe()["transport"]["kind"] == "adb"


def test_probe_without_dsp_libraries_and_broken_binary(emu, adb, tmp_path):
    root = tmp_path / "sdk"
    shutil.copytree(FAKE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "bin/aarch64-android/snpe-net-run").write_text("#!/bin/sh\necho 'CANNOT LINK EXECUTABLE' >&2\nexit 1\n")
    facts = runner_for(emu, adb, snpe_root=root).probe()
    assert facts["sdk_uploaded"] and not facts["snpe_net_run_ok"] and facts["snpe_version"] is None
    assert facts["dsp_available"] is False
    assert "CANNOT LINK EXECUTABLE" in facts["snpe_version_output"]


@pytest.mark.parametrize("text, version", [
    ("SNPE v2.12.0.230626174329_59328\n", "2.12.0.230626174329_59328"),
    ("  SNPE v1.68.0\n", "1.68.0"),
    ("error: SNPE v2.1.0 not found\n", None),
    ("SNPE v2.12.0\nsomething else\n", None),
    ("", None),
])
def test_parse_snpe_version(text, version):
    assert parse_snpe_version(text) == version


def test_bad_profile_options(emu, adb, artifact):
    runner = runner_for(emu, adb)
    fields = _profile_fields("sd888")
    cls = get_device("sd888").__class__
    # unknown SNPE options are refused when the profile is made, before any runner sees them
    with pytest.raises(ProfileError, match="turbo"):
        cls(**{**fields, "options": {"runtime": "dsp", "perf_profile": "turbo"}})
    with pytest.raises(ProfileError, match="npu"):
        cls(**{**fields, "options": {"runtime": "npu"}})
    with pytest.raises(RunnerUnavailableError, match="uses runtime 'onnxruntime'"):
        runner.measure(artifact, get_device("cpu"), PROTOCOL)
