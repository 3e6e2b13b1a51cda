"""The ADB emulator is faithful: Debian's real `adb` client and adb-shell both work against it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
from peers.adbd import A_AUTH, A_CNXN, AUTH_SIGNATURE, AUTH_TOKEN, HEADER, AdbDeviceEmulator, _checksum
from peers.sshd import free_port


def _free_port_outside_emulator_range() -> int:
    while True:  # adb treats 5555-5585 as emulator console/adb ports
        port = free_port()
        if not 5554 <= port <= 5586:
            return port


@pytest.fixture()
def real_adb(tmp_path):
    """Run the real adb client with a private HOME (keys) and a private server port."""
    if shutil.which("adb") is None:
        pytest.skip("the adb client is not installed (apt-get install adb)")
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(_free_port_outside_emulator_range()))

    def adb(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["adb", *args], env=env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"adb {args} failed: {proc.stdout}{proc.stderr}")
        return proc

    adb("start-server")  # creates $HOME/.android/adbkey{,.pub}
    adb.home = home
    yield adb
    adb("kill-server", check=False)


def test_real_adb_client(real_adb, tmp_path):
    emu = AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(real_adb.home / ".android/adbkey.pub").read_bytes()],
                            port=_free_port_outside_emulator_range())
    with emu:
        serial = emu.serial
        assert "connected to" in real_adb("connect", serial).stdout
        real_adb("-s", serial, "wait-for-device")
        devices = real_adb("devices", "-l").stdout
        assert f"{serial}" in devices and "device product:blox_emu model:Blox_Emulator" in devices
        assert real_adb("-s", serial, "shell", "echo", "hi").stdout == "hi\n"
        out = real_adb("-s", serial, "shell", "ls /nonexistent-dir; echo rc=$?").stdout
        assert "No such file" in out and out.endswith("rc=2\n")
        src = tmp_path / "payload.bin"
        src.write_bytes(os.urandom(700_000))  # several DATA chunks and WRTE packets
        real_adb("-s", serial, "push", str(src), "/data/local/tmp/dir with space/payload.bin")
        assert (emu.root / "data/local/tmp/dir with space/payload.bin").read_bytes() == src.read_bytes()
        real_adb("-s", serial, "pull", "/data/local/tmp/dir with space/payload.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        missing = real_adb("-s", serial, "pull", "/data/local/tmp/missing", str(tmp_path / "m"), check=False)
        assert missing.returncode != 0 and not (tmp_path / "m").exists()


def test_real_adb_client_unauthorised(real_adb, tmp_path):
    with AdbDeviceEmulator(tmp_path / "device", unknown_key="ignore", port=_free_port_outside_emulator_range()) as emu:
        real_adb("connect", emu.serial, check=False)
        proc = real_adb("-s", emu.serial, "shell", "echo", "hi", check=False)
        assert proc.returncode != 0 and "unauthorized" in (proc.stdout + proc.stderr)


def test_adb_shell_client(tmp_path):
    from adb_shell.adb_device import AdbDeviceTcp
    from adb_shell.auth.keygen import keygen
    from adb_shell.auth.sign_cryptography import CryptographySigner

    keygen(str(tmp_path / "adbkey"))
    with AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(tmp_path / "adbkey.pub").read_bytes()]) as emu:
        dev = AdbDeviceTcp("127.0.0.1", emu.port, default_transport_timeout_s=10)
        assert dev.connect(rsa_keys=[CryptographySigner(str(tmp_path / "adbkey"))], auth_timeout_s=5)
        assert dev.shell("echo hi; echo err >&2") == "hi\nerr\n"
        assert dev.exec_out("printf raw") == "raw"
        src = tmp_path / "f.bin"
        src.write_bytes(os.urandom(200_000))
        dev.push(str(src), "/data/local/tmp/f.bin")
        mode, size, _ = dev.stat("/data/local/tmp/f.bin")
        assert size == 200_000 and mode & 0o170000 == 0o100000
        assert dev.stat("/data/local/tmp/none") == (0, 0, 0)
        names = sorted(bytes(f.filename) for f in dev.list("/data/local/tmp"))
        assert names == [b".", b"..", b"f.bin"]
        dev.pull("/data/local/tmp/f.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        dev.close()


def _packet(cmd: int, arg0: int, arg1: int, data: bytes = b"", magic: int | None = None) -> bytes:
    magic = cmd ^ 0xFFFFFFFF if magic is None else magic
    return HEADER.pack(cmd, arg0, arg1, len(data), _checksum(data), magic) + data


def _read_packet(sock: socket.socket) -> tuple[int, int, int, bytes]:
    header = sock.recv(24, socket.MSG_WAITALL)
    cmd, arg0, arg1, length, check, magic = HEADER.unpack(header)
    assert magic == cmd ^ 0xFFFFFFFF
    data = sock.recv(length, socket.MSG_WAITALL) if length else b""
    assert _checksum(data) == check
    return cmd, arg0, arg1, data


def test_wire_level_auth_and_framing(tmp_path):
    with AdbDeviceEmulator(tmp_path / "device") as emu:
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
            s.sendall(_packet(A_CNXN, 0x01000000, 4096, b"host::\0"))
            cmd, arg0, _, token = _read_packet(s)
            assert (cmd, arg0, len(token)) == (A_AUTH, AUTH_TOKEN, 20)
            s.sendall(_packet(A_AUTH, AUTH_SIGNATURE, 0, b"\x00" * 256))  # a bad signature
            cmd, arg0, _, token2 = _read_packet(s)
            assert (cmd, arg0) == (A_AUTH, AUTH_TOKEN) and token2 != token  # a fresh challenge
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
            s.sendall(_packet(A_CNXN, 0x01000000, 4096, b"host::\0", magic=0))  # corrupt magic
            assert s.recv(24) == b""  # the device hangs up
