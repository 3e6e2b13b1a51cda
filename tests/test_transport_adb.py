"""AdbTransport (adb-shell) against the ADB wire-protocol emulator (tests/peers/adbd.py)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
import time

import pytest
from peers.adbd import AdbDeviceEmulator

from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._transport import (
    AuthenticationError,
    CommandTimeoutError,
    ConnectionLostError,
    RetryPolicy,
    with_reconnect,
)

NASTY = "a b; rm -rf x"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()  # creates the key pair
    return path


@pytest.fixture()
def emu(tmp_path, key):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    getprop = bin_dir / "getprop"
    getprop.write_text('#!/bin/sh\n[ "$1" = ro.product.model ] && echo Blox_Emulator\n')
    getprop.chmod(0o755)
    with AdbDeviceEmulator(tmp_path / "device", trusted_keys=[(key.parent / "adbkey.pub").read_bytes()],
                           bin_dir=bin_dir) as e:
        yield e


@pytest.fixture()
def adb(emu, key):
    with AdbTransport(emu.serial, key_path=key) as t:
        yield t


def test_key_is_created_private(tmp_path):
    path = tmp_path / "cfg" / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "cfg" / "adbkey.pub").exists()


def test_round_trip(adb):
    r = adb.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (r.exit_status, r.stdout, r.stderr) == (7, "out\nerr\n", "")  # legacy shell merges
    assert adb.run(["printf", "%s", NASTY]).stdout == NASTY  # no trailing newline survives too
    assert adb.run(["getprop", "ro.product.model"]).stdout == "Blox_Emulator\n"
    assert adb.run(["cat"], stdin=b"in\x00put").stdout == "in\x00put"
    assert adb.run(["sh", "-c", "exit 255"]).exit_status == 255
    assert adb.describe() == {"kind": "adb", "serial": adb.serial, "connection": "tcp"}


def test_output_that_looks_like_a_marker_is_not_an_exit_status(adb):
    r = adb.run(["sh", "-c", "printf '\\n__BLOXLAT_RC_0000000000000000__0\\n'; exit 5"])
    assert r.exit_status == 5 and "__BLOXLAT_RC_0000000000000000__0" in r.stdout


def test_streaming_never_shows_the_marker(adb):
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    r = adb.run(["sh", "-c", "echo first; sleep 0.6; echo second"],
                on_output=lambda s: seen.append((time.monotonic() - start, s)))
    assert "".join(s for _, s in seen) == r.stdout == "first\nsecond\n"
    assert seen[0][0] < 0.5


def test_files_in_a_directory_with_space_and_semicolon(adb, emu, tmp_path):
    remote_dir = emu.device_path("data/local/tmp/blox a b;c")
    adb.mkdir_p(remote_dir)
    assert adb.run(["pwd"], cwd=remote_dir).stdout.strip() == remote_dir
    src = tmp_path / "model.dlc"
    src.write_bytes(os.urandom(1_500_000))
    adb.push(src, remote_dir + "/model.dlc")
    assert adb.sha256(remote_dir + "/model.dlc") == hashlib.sha256(src.read_bytes()).hexdigest()
    adb.pull(remote_dir + "/model.dlc", tmp_path / "back.dlc")
    assert (tmp_path / "back.dlc").read_bytes() == src.read_bytes()
    assert not (emu.root / "x").exists()


def test_android_paths_map_into_the_sandbox(adb, emu, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    adb.push(src, "/data/local/tmp/f")
    assert (emu.root / "data/local/tmp/f").read_bytes() == b"hello"


def test_tcp_nodelay(adb):
    assert adb._link.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_timeout_resets_the_connection_and_kills_the_command(adb, emu):
    marker = emu.root / "survived"
    with pytest.raises(CommandTimeoutError):
        adb.run(["sh", "-c", f"sleep 2; touch {marker}"], timeout_s=0.5)
    assert adb.run(["echo", "ok"]).stdout == "ok\n"  # reconnected, clean packet store
    time.sleep(2.5)  # outlive the killed command's sleep to show it never reached `touch`
    assert not marker.exists()


@pytest.mark.slow
def test_command_silent_for_12_s_succeeds(adb):
    """adb-shell's default read_timeout_s (10 s) must not fail a quiet runner."""
    r = adb.run(["sh", "-c", "sleep 12; echo done"], timeout_s=30)
    assert (r.exit_status, r.stdout) == (0, "done\n") and r.duration_s >= 12


def test_dropped_connection_during_push_is_retried(adb, emu, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(7_000_000))
    emu.drop_after_bytes = 3_000_000
    dest = emu.device_path("data/local/tmp/big.bin")
    adb.push(src, dest)
    assert emu.drops == 1
    assert (emu.root / "data/local/tmp/big.bin").read_bytes() == src.read_bytes()


def test_with_reconnect_after_the_device_drops(adb, emu):
    assert adb.run(["true"]).exit_status == 0
    emu.drop_all()
    r = with_reconnect(adb, lambda t: t.run(["echo", "back"]), RetryPolicy(3, 0, 0))
    assert r.stdout == "back\n"


def test_unauthorised_key_denied(tmp_path):
    with AdbDeviceEmulator(tmp_path / "d", unknown_key="reject") as emu:
        with pytest.raises(AuthenticationError, match="Allow USB debugging"):
            AdbTransport(emu.serial, key_path=tmp_path / "k" / "adbkey").connect()


def test_unauthorised_key_prompt_never_answered(tmp_path):
    with AdbDeviceEmulator(tmp_path / "d", unknown_key="ignore") as emu:
        t = AdbTransport(emu.serial, key_path=tmp_path / "k" / "adbkey", auth_timeout_s=0.5)
        with pytest.raises(AuthenticationError, match="Allow USB debugging"):
            t.connect()


def test_accepted_prompt_then_key_is_remembered(tmp_path):
    with AdbDeviceEmulator(tmp_path / "d", unknown_key="accept") as emu:
        with AdbTransport(emu.serial, key_path=tmp_path / "k" / "adbkey") as t:
            assert t.run(["true"]).exit_status == 0
        emu.unknown_key = "reject"  # a second connection must authenticate by signature
        with AdbTransport(emu.serial, key_path=tmp_path / "k" / "adbkey") as t:
            assert t.run(["true"]).exit_status == 0


def test_unreachable_is_connection_lost(tmp_path):
    from peers.sshd import free_port

    with pytest.raises(ConnectionLostError):
        AdbTransport(f"127.0.0.1:{free_port()}", key_path=tmp_path / "adbkey").connect()


def test_two_transports_at_once(emu, key):
    results = {}

    def work(name):
        with AdbTransport(emu.serial, key_path=key) as t:
            results[name] = t.run(["sh", "-c", f"sleep 0.3; echo {name}"]).stdout

    threads = [threading.Thread(target=work, args=(n,)) for n in ("one", "two")]
    start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {"one": "one\n", "two": "two\n"}
    assert time.monotonic() - start < 1.5
