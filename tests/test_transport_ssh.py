"""SshTransport against a real OpenSSH server on loopback (tests/peers/sshd.py)."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from peers.sshd import SshServer, sshd_available

from blox_lat.devices._ssh import SshTransport
from blox_lat.devices._transport import (
    AuthenticationError,
    CommandTimeoutError,
    ConnectionLostError,
    HostKeyError,
    RetryPolicy,
    with_reconnect,
)

pytestmark = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))
NASTY = "a b; rm -rf x"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with SshServer(tmp_path_factory.mktemp("sshd")) as srv:
        yield srv


def _transport(srv: SshServer, **kw) -> SshTransport:
    args = dict(host=srv.host, port=srv.port, user=srv.user, key_path=srv.client_key, known_hosts=srv.known_hosts)
    args.update(kw)
    return SshTransport(**args)


@pytest.fixture()
def ssh(server):
    with _transport(server) as t:
        yield t


def test_round_trip(ssh, tmp_path):
    r = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (r.exit_status, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert ssh.run(["printf", "%s", NASTY]).stdout == NASTY
    assert ssh.run(["printf", "%s", "$HOME `id` \"q\""]).stdout == "$HOME `id` \"q\""
    assert ssh.run(["cat"], stdin=b"in\x00put").stdout == "in\x00put"
    assert ssh.describe() == {"kind": "ssh", "host": ssh.host, "port": ssh.port, "user": ssh.user}


def test_files_in_a_directory_with_space_and_semicolon(ssh, tmp_path):
    remote_dir = str(tmp_path / "remote a b;c")
    ssh.mkdir_p(remote_dir)
    assert ssh.run(["pwd"], cwd=remote_dir).stdout.strip() == remote_dir
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(1_500_000))
    ssh.push(src, remote_dir + "/model.bin")
    assert ssh.exists(remote_dir + "/model.bin")
    assert not ssh.exists(remote_dir + "/model.bin.part")
    assert ssh.sha256(remote_dir + "/model.bin") == hashlib.sha256(src.read_bytes()).hexdigest()
    ssh.pull(remote_dir + "/model.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert (tmp_path / "x").exists() is False  # nothing was run by the quoted names


def test_streaming(ssh):
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    r = ssh.run(["sh", "-c", "echo first; sleep 0.6; echo second"],
                on_output=lambda s: seen.append((time.monotonic() - start, s)))
    assert r.stdout == "first\nsecond\n"
    assert seen[0][1] == "first\n" and seen[0][0] < 0.5
    assert "".join(s for _, s in seen) == "first\nsecond\n"  # the PID line is not forwarded


def test_timeout_kills_the_remote_process(ssh):
    with pytest.raises(CommandTimeoutError):
        ssh.run(["sleep", "31.4159"], timeout_s=0.5)
    deadline = time.monotonic() + 5
    while ssh.run(["pgrep", "-f", "sleep 31.4159"]).exit_status == 0:
        assert time.monotonic() < deadline, "remote process survived the timeout"
    assert ssh.run(["true"]).exit_status == 0  # still usable


def test_tcp_nodelay(ssh):
    sock = ssh._client.get_transport().sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_server_killed_and_restarted_mid_sequence(tmp_path):
    with SshServer(tmp_path / "sshd") as srv, _transport(srv) as t:
        assert t.run(["echo", "1"]).stdout == "1\n"
        srv.stop()  # kills the live connection too
        with pytest.raises(ConnectionLostError):
            t.run(["echo", "2"])
        sleeps = []

        def sleep(s):  # the server comes back while we back off
            sleeps.append(s)
            if len(sleeps) == 2:
                srv.start()

        r = with_reconnect(t, lambda tr: tr.run(["echo", "3"]), RetryPolicy(5, 0.01, 0.02), sleep=sleep)
        assert r.stdout == "3\n" and len(sleeps) == 2


def test_wrong_key_is_an_authentication_error(server):
    with pytest.raises(AuthenticationError, match="authorized_keys"):
        _transport(server, key_path=server.wrong_key).connect()


def test_unknown_host_key_then_trust_on_first_use(server, tmp_path):
    kh = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(HostKeyError) as info:
        _transport(server, known_hosts=kh).connect()
    assert str(kh) in str(info.value) and "trust_new_host" in str(info.value)
    assert not kh.exists()
    with _transport(server, known_hosts=kh, trust_new_host=True) as t:
        assert t.run(["true"]).exit_status == 0
    assert f"[{server.host}]:{server.port} ssh-ed25519 " in kh.read_text()
    with _transport(server, known_hosts=kh) as t:  # recorded: strict mode now accepts it
        assert t.run(["true"]).exit_status == 0


def test_changed_host_key_is_refused(server, tmp_path):
    kh = tmp_path / "known_hosts"
    other = Path(f"{server.wrong_key}.pub").read_text().split()
    kh.write_text(f"[{server.host}]:{server.port} {other[0]} {other[1]}\n")
    with pytest.raises(HostKeyError, match="CHANGED"):
        _transport(server, known_hosts=kh, trust_new_host=True).connect()


def test_unreachable_is_connection_lost(tmp_path):
    from peers.sshd import free_port

    (tmp_path / "k").write_text("not used: the TCP connect fails first")
    t = SshTransport("127.0.0.1", free_port(), key_path=tmp_path / "k", known_hosts=tmp_path / "kh")
    with pytest.raises(ConnectionLostError, match="cannot reach"):
        t.connect()


@pytest.mark.parametrize("bad", [65536, 99999, 0, -22, "ssh", 22.5, True])
def test_port_out_of_range_is_refused_not_wrapped(server, bad):
    """A socket takes a port modulo 65536: server.port + 65536 used to reach this very sshd."""
    from blox_lat.devices._transport import TransportError

    port = server.port + 65536 if bad == 65536 else bad
    with pytest.raises(TransportError, match=rf"port must be an integer in 1\.\.65535, got {port!r}"):
        _transport(server, port=port).connect()


def test_killed_process_is_gone_when_kill_returns(ssh):
    """kill() waits until sshd has reaped the process: a busy machine took a while to end a
    SIGKILLed Python, and a caller checking (or starting the next worker) saw it still run."""
    import sys

    for _ in range(3):
        proc = ssh.start([sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"])
        pid = int(proc.read_line(30.0))
        assert proc.pid == pid  # `exec` kept the PID the wrapper reported
        proc.kill()
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text().lower()
        assert not proc.alive()
