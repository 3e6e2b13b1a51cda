"""``blox-lat devices check`` / ``devices list`` against the real peers, and the fact parsers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from peers.adbd import AdbDeviceEmulator
from peers.sshd import SshServer, sshd_available

from blox_lat.cli.main import cli
from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._adb_devices import parse_adb_devices
from blox_lat.devices._facts import _parse, wait_until_cool


def _board_toml(tmp_path, emu, key, python=sys.executable):
    path = tmp_path / "board.toml"
    path.write_text(
        "[devices.board]\ntransport = \"adb\"\nruntime = \"onnxruntime\"\nformat = \"onnx\"\n"
        f"[devices.board.connection]\nserial = {json.dumps(emu.serial)}\nkey = {json.dumps(str(key))}\n"
        f"python = {json.dumps(python)}\nworkdir = {json.dumps(emu.device_path('data/local/tmp/a b;c'))}\n"
    )
    return path


@pytest.fixture()
def key(tmp_path):
    path = tmp_path / "keys" / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()
    return path


def test_check_adb_board_passes_every_step(tmp_path, key):
    with AdbDeviceEmulator(tmp_path / "dev", trusted_keys=[(key.parent / "adbkey.pub").read_bytes()]) as emu:
        r = CliRunner().invoke(cli, ["devices", "check", "board", "--device-file", str(_board_toml(tmp_path, emu, key)),
                                     "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["ok"] is True
    assert [s["step"] for s in data["steps"]] == ["profile", "connect", "file round trip", "runtime", "device facts"]
    assert "onnxruntime" in data["steps"][3]["detail"]


def test_check_stops_at_the_failing_step(tmp_path, key):
    with AdbDeviceEmulator(tmp_path / "dev", trusted_keys=[(key.parent / "adbkey.pub").read_bytes()]) as emu:
        toml = _board_toml(tmp_path, emu, key, python="/nonexistent/python3")
        r = CliRunner().invoke(cli, ["devices", "check", "board", "--device-file", str(toml)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("ok   profile") and lines[1].startswith("ok   connect")
    assert lines[2].startswith("ok   file round trip") and lines[3].startswith("FAIL runtime")
    assert lines[-1].startswith("blox-lat: error: device 'board' failed the runtime step")


def test_check_unauthorised_adb_key(tmp_path, key):
    with AdbDeviceEmulator(tmp_path / "dev") as emu:
        r = CliRunner().invoke(cli, ["devices", "check", "board", "--device-file", str(_board_toml(tmp_path, emu, key))])
    assert r.exit_code == 2
    assert "FAIL connect" in r.output and "Allow USB debugging" in r.output.strip().splitlines()[-1]


@pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))
def test_check_ssh_host(tmp_path):
    with SshServer(tmp_path / "sshd") as srv:
        args = ["devices", "check", "gtx1080ti", "--connect", f"host={srv.host}", "--connect", f"port={srv.port}",
                "--connect", f"user={srv.user}", "--connect", f"key={srv.client_key}",
                "--connect", f"known_hosts={srv.known_hosts}", "--connect", f"python={sys.executable}",
                "--connect", f"workdir={tmp_path / 'w d'}", "--json"]
        r = CliRunner().invoke(cli, args)
    text = r.output if r.exit_code == 0 else r.output[: r.output.rindex("blox-lat: error")]
    data = json.loads(text)
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["connect"]["ok"] and steps["file round trip"]["ok"]
    assert steps["runtime"]["ok"]  # torch is importable by this interpreter (CUDA is not checked here)


def test_parse_adb_devices():
    text = ("List of devices attached\n"
            "R58M12ABCDE            device usb:1-1 product:o1sxeea model:SM_G991B device:o1s transport_id:3\n"
            "192.168.1.20:5555      unauthorized transport_id:4\n"
            "emulator-5554          no permissions (user in plugdev group; are your udev rules wrong?) usb:2-1\n\n")
    devices = parse_adb_devices(text)
    assert [(d.serial, d.state) for d in devices] == [
        ("R58M12ABCDE", "device"), ("192.168.1.20:5555", "unauthorized"),
        ("emulator-5554", "no permissions (user in plugdev group; are your udev rules wrong?)")]
    assert devices[0].details["model"] == "SM_G991B"


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb client is not installed")
def test_devices_list_shows_an_adb_device_seen_by_the_real_client(tmp_path):
    with AdbDeviceEmulator(tmp_path / "dev", port=0, unknown_key="accept") as emu:
        serial = emu.serial
        port = 47000 + emu.port % 1000  # the adb server treats 5555-5585 as emulators; use our own server port
        env = {"ANDROID_ADB_SERVER_PORT": str(port), "HOME": str(tmp_path)}
        adb = ["adb", "-P", str(port)]
        try:
            subprocess.run([*adb, "connect", emu.serial], check=True, capture_output=True, timeout=60, env={**env, "PATH": "/usr/bin:/bin"})
            r = subprocess.run([sys.executable, "-m", "blox_lat", "devices", "list", "--json"], capture_output=True,
                               text=True, timeout=120, env={**__import__("os").environ, **env})
        finally:
            subprocess.run([*adb, "kill-server"], capture_output=True, timeout=60, env={**env, "PATH": "/usr/bin:/bin"})
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    adb_rows = [row for row in rows if row["kind"] == "adb-device"]
    assert any(row["serial"] == serial and row["state"] == "device" for row in adb_rows), r.stdout + r.stderr
    assert any(row["kind"] == "profile" and row["name"] == "sd888" for row in rows)


def test_android_facts_parse():
    out = ("P ro.product.model SM-G991B\nP ro.board.platform lahaina\nP ro.soc.model SM8350\n"
           "P ro.build.fingerprint samsung/o1sxeea/o1s:13/TP1A/G991BXXU5:user/release-keys\n"
           "T thermal_zone0 cpu-0-0-usr 41200\nT thermal_zone1 gpu-usr 39800\nT thermal_zone9 battery 31\n"
           "F cpu0 1804800 schedutil\nF cpu7 2841600 performance\n")
    facts = _parse(out)
    assert facts["model"] == "SM-G991B" and facts["soc"] == "SM8350" and facts["platform"] == "lahaina"
    assert facts["temperatures_c"] == {"thermal_zone0:cpu-0-0-usr": 41.2, "thermal_zone1:gpu-usr": 39.8,
                                       "thermal_zone9:battery": 31.0}
    assert facts["cpu_freq_khz"] == {"cpu0": 1804800, "cpu7": 2841600}
    host = _parse("U Linux 6.1.0 x86_64\nG NVIDIA GeForce GTX 1080 Ti, 535.54.03\nV CUDA Version: 12.2\n")
    assert host["gpus"] == [{"name": "NVIDIA GeForce GTX 1080 Ti", "driver": "535.54.03"}]
    assert host["cuda_driver_version"] == "12.2"


class _HotPhone:
    """A transport whose thermal zones cool by 2 degrees per poll."""

    kind = "adb"

    def __init__(self, start_c):
        self.temp = start_c

    def run(self, argv, timeout_s=None, **kw):
        from blox_lat.devices._transport import CommandResult

        out = f"T thermal_zone0 cpu {int(self.temp * 1000)}\n"
        self.temp -= 2
        return CommandResult(argv=tuple(argv), exit_status=0, stdout=out, stderr="", duration_s=0.0)


def test_wait_until_cool_waits_then_gives_up_at_the_timeout():
    sleeps, now = [], [0.0]

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    cool = wait_until_cool(_HotPhone(50), 45, timeout_s=60, poll_s=5, sleep=sleep, clock=lambda: now[0])
    assert cool["cool"] and cool["hottest_c"] == 44 and len(sleeps) == 3
    now[0], sleeps[:] = 0.0, []
    hot = wait_until_cool(_HotPhone(90), 45, timeout_s=12, poll_s=5, sleep=sleep, clock=lambda: now[0])
    assert not hot["cool"] and hot["waited_s"] == 12
