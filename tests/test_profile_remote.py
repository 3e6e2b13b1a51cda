"""``blox-lat profile`` over the same runners as ``measure``: a real OpenSSH server on loopback and
the ADB device emulator. The device is this host: the runner bundle (which carries the
profiler) is pushed and run with this interpreter, so the onnxruntime profiles are real."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from peers.adbd import AdbDeviceEmulator
from peers.sshd import SshServer, sshd_available

from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.devices._adb import AdbTransport
from blox_lat.profile import PROFILES_NAME, pieces_of_blocks, read_profiles

needs_sshd = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))
ODD_DIR = "remote dir; echo x"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


def _check(out: Path, models: list[str], fmt_op: str) -> None:
    records = read_profiles(out)
    assert [r.model_index for r in records] == [sp.resolve(m).index for m in models]
    for rec in records:
        assert rec.ok, rec.reason
        arch = sp.resolve(rec.model_hash)
        assert rec.load_ms > 0 and rec.first_inference_ms > 0 and rec.peak_memory_mib > 0
        assert [b.piece for b in rec.blocks] == pieces_of_blocks(arch.blocks)
        assert fmt_op in {x.op_type for x in rec.layers} and all(x.piece for x in rec.layers)
        assert rec.facts.get("pid")  # the worker's facts travel back with the profile


def _ssh_toml(srv: SshServer, tmp_path: Path, fmt: str) -> Path:
    conn = {"host": srv.host, "port": srv.port, "user": srv.user, "key": str(srv.client_key),
            "known_hosts": str(srv.known_hosts), "python": sys.executable, "workdir": str(tmp_path / ODD_DIR)}
    lines = ["[devices.loop]", 'transport = "ssh"', 'runtime = "onnxruntime"', f'format = "{fmt}"',
             f'precision = "{"int8" if fmt == "onnx-int8" else "fp32"}"', "options = { threads = 1 }",
             "[devices.loop.connection]"] + [f"{k} = {json.dumps(v)}" for k, v in conn.items()]
    path = tmp_path / "loop.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_sshd
def test_profile_over_real_sshd_resumes_and_refuses_a_wrong_key(tmp_path, store):
    with SshServer(tmp_path / "sshd") as srv:
        toml = _ssh_toml(srv, tmp_path, "onnx-int8")
        base = ["profile", "0,73948", "--device-file", str(toml), "--device", "loop", "--runs", "10",
                "--store", str(store.root), "--out", str(tmp_path / "p"), "--json"]
        r = CliRunner().invoke(cli, base)
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["profiled"] == 2
        _check(tmp_path / "p", ["0", "73948"], "QLinearConv")
        remote = tmp_path / ODD_DIR
        assert sum(p.suffix == ".onnx" for p in remote.iterdir()) == 2 and any(remote.glob("*.pyz"))
        again = CliRunner().invoke(cli, base)
        assert again.exit_code == 0 and json.loads(again.output)["skipped"] == 2

        bad = CliRunner().invoke(cli, base[:-3] + ["--out", str(tmp_path / "bad"), "--connect",
                                                   f"key={srv.wrong_key}"])
        assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0, bad.output
        assert "authorized_keys" in bad.output and "Traceback" not in bad.output
        assert not (tmp_path / "bad" / PROFILES_NAME).exists()


@pytest.fixture(scope="module")
def adb_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()
    return path


def test_profile_over_the_adb_emulator(tmp_path, store, adb_key):
    with AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(adb_key.parent / "adbkey.pub").read_bytes()]) as emu:
        workdir = emu.device_path(f"data/local/tmp/{ODD_DIR}")
        toml = tmp_path / "board.toml"
        toml.write_text(
            "[devices.board]\ntransport = \"adb\"\nruntime = \"onnxruntime\"\nformat = \"onnx\"\n"
            "options = { threads = 1 }\n[devices.board.connection]\n"
            f"serial = {json.dumps(emu.serial)}\nkey = {json.dumps(str(adb_key))}\n"
            f"python = {json.dumps(sys.executable)}\nworkdir = {json.dumps(workdir)}\n")
        args = ["profile", "0,1", "--device-file", str(toml), "--device", "board", "--runs", "10",
                "--store", str(store.root), "--out", str(tmp_path / "p"), "--json"]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        models = json.loads(r.output)["models"]
        assert all(m["blocks"] and m["layers"] and m["load_ms"] > 0 for m in models)
        assert sum(p.suffix == ".onnx" for p in emu.map_path(workdir).iterdir()) == 2
    _check(tmp_path / "p", ["0", "1"], "Conv")


FAKE_SNPE = Path(__file__).resolve().parent / "fakesnpe"


def test_profile_on_snpe_over_adb_with_stand_in_tools(tmp_path, store, adb_key, monkeypatch):
    """SNPE's per-layer rows (the stand-in snpe-net-run logs cycles for the layers the DLC
    stand-in keeps from the ONNX names) become layers mapped to blocks; the real SDK is unverified."""
    from blox_lat.harness import TimingProtocol
    from blox_lat.harness._snpe_runner import SnpeRunner
    from blox_lat.profile import profile_models

    monkeypatch.setenv("SNPE_ROOT", str(FAKE_SNPE))
    for name in ("SNPE_FAKE_NETRUN", "SNPE_FAKE_FAIL"):
        monkeypatch.delenv(name, raising=False)
    proto = TimingProtocol(groups=2, runs_per_group=5, warmup_min_runs=2, warmup_min_s=0.0)
    with AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(adb_key.parent / "adbkey.pub").read_bytes()]) as emu:
        runner = SnpeRunner(AdbTransport(emu.serial, key_path=adb_key),
                            workdir=emu.device_path("data/local/tmp/blox snpe"), snpe_root=FAKE_SNPE)
        summary = profile_models(["0"], "sd888", out=tmp_path / "p", runs=4, protocol=proto, store=store,
                                 runner=runner)
    (rec,) = summary.records
    assert rec.ok, rec.reason
    arch = sp.resolve("0")
    assert rec.load_ms == pytest.approx(251.502)  # the Init row, in ms
    assert rec.first_inference_ms == pytest.approx(1.5)  # the stand-in's first inference: 1500 us
    assert rec.peak_memory_mib is None and rec.memory_how is None  # SNPE reports no memory figure
    assert rec.latency_ms == pytest.approx(1.75, abs=0.3) and len(rec.measurement["samples_ms"]) == 10
    assert {x.provider for x in rec.layers} == {"DSP"} and "Conv" in {x.op_type for x in rec.layers}
    assert all(x.mapped_by == "name" for x in rec.layers)
    assert [b.piece for b in rec.blocks] == pieces_of_blocks(arch.blocks)
    # cycles are shared out over each inference's forward time: the layers add up to it
    forward_ms = [(1500 + (i * 7919) % 500 - 250) / 1e3 for i in range(2, 6)]
    assert rec.layers_ms == pytest.approx(sum(forward_ms) / 4, rel=1e-3)
