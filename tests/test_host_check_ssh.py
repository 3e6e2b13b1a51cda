"""The host check of an SSH device (issue 23) against a real OpenSSH server on loopback
(tests/peers/sshd.py): there the remote host IS this machine, so a CPU-bound process started
here, pinned to one core, is what the remote sample must find on that core and must not blame
on another. Also: names and paths that need quoting, a remote whose /proc cannot be read, an
unreachable host, ``devices check --json`` for an SSH device, and the same facts parsed from the
same files whether read here or over SSH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from peers.sshd import SshServer, free_port, sshd_available
from test_host_check import _write_proc

from blox_lat.cli.main import cli
from blox_lat.devices import SshTransport, get_device, sample_host, sample_remote_host
from blox_lat.harness import check_host

pytestmark = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))

WINDOW_S = 0.5
#: a program name and a folder that a shell would split, expand or run if they were not quoted
NAME = "burn 'q' (x);y"
FOLDER = "a b;c $(touch PWNED) `id`"
CPUS = sorted(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SshServer]:
    with SshServer(tmp_path_factory.mktemp("sshd")) as srv:
        yield srv


@pytest.fixture()
def ssh(server) -> Iterator[SshTransport]:
    with SshTransport(server.host, server.port, server.user, server.client_key, server.known_hosts) as t:
        yield t


def _connection(srv: SshServer, tmp_path: Path) -> dict[str, str]:
    return {"host": srv.host, "port": str(srv.port), "user": srv.user, "key": str(srv.client_key),
            "known_hosts": str(srv.known_hosts), "python": sys.executable, "workdir": str(tmp_path / "w d")}


@pytest.fixture()
def burner(tmp_path) -> Iterator[tuple[int, int]]:
    """(pid, core): a CPU-bound Python named ``NAME`` (a link in ``FOLDER``) pinned to the last
    core this process may use, killed however the test ends."""
    folder = tmp_path / FOLDER
    folder.mkdir()
    exe = folder / NAME
    exe.symlink_to(sys.executable)
    core = CPUS[-1]
    proc = subprocess.Popen([str(exe), "-c", "while True: pass"])
    try:
        os.sched_setaffinity(proc.pid, {core})
        time.sleep(0.3)  # running before any window opens
        yield proc.pid, core
    finally:
        proc.kill()
        proc.wait()
    assert not list(tmp_path.rglob("PWNED"))  # nothing in the quoted names ran


def test_a_busy_core_is_busy_over_ssh_and_names_the_process_as_the_local_sample_does(ssh, burner):
    pid, core = burner
    remote = sample_remote_host(ssh, WINDOW_S, [core])
    assert remote.verdict == "busy", remote.reason
    assert remote.cpus == (core,) and remote.core_busy[core] >= 0.25
    found = {p.pid: p for p in remote.processes}
    assert pid in found, remote.reason
    assert found[pid].name == NAME and found[pid].cpus_allowed == (core,) and found[pid].cores > 0.5
    assert FOLDER in found[pid].cmdline and f"pid {pid} {NAME}" in remote.reason
    local = sample_host(WINDOW_S, [core])  # the same host read here: the same process, the same name
    assert {p.pid: p.name for p in local.processes}[pid] == NAME
    assert remote.cpu_count == os.cpu_count() and remote.memory_total_kb == local.memory_total_kb


def test_check_host_of_an_ssh_device_warns_on_the_busy_core_and_not_on_a_free_one(server, tmp_path, burner):
    """The burner moves to the core other work uses most; the least used one is judged quiet."""
    if len(CPUS) < 2:
        pytest.skip("one core only: no free core to judge")
    pid, _ = burner
    look = sample_host(WINDOW_S, CPUS)
    other = min(CPUS, key=lambda c: (look.core_busy or {}).get(c, 0.0) if c != CPUS[-1] else 2.0)
    core = next(c for c in reversed(CPUS) if c != other)
    os.sched_setaffinity(pid, {core})
    time.sleep(0.2)
    device, connection = get_device("gtx1080ti"), _connection(server, tmp_path)
    busy = check_host([device], [core], "warn", connection=connection, window_s=WINDOW_S)
    assert busy.state.busy and busy.warning.startswith("busy host: ") and f"pid {pid} " in busy.warning
    assert busy.to_dict()["verdict"] == "busy" and busy.to_dict()["on_busy"] == "warn"
    quiet = check_host([device], [other], "warn", connection=connection, window_s=WINDOW_S)
    assert pid not in {p.pid for p in quiet.state.processes}  # pinned elsewhere: never blamed here
    if quiet.state.busy:  # other people's work on this shared host, seen here as well: not ours to judge
        again = sample_host(WINDOW_S, [other])
        if again.busy:
            pytest.skip(f"core {other} is busy with other work: {again.reason}")
    assert quiet.state.verdict == "quiet" and quiet.warning is None, quiet.state.reason


def test_a_remote_without_a_readable_proc_is_unknown_and_facts_are_none(ssh, tmp_path):
    state = sample_remote_host(ssh, WINDOW_S, proc=str(tmp_path / FOLDER / "proc"), sys=str(tmp_path / FOLDER / "sys"))
    assert state.verdict == "unknown" and "could not be read" in state.reason
    assert state.core_busy is None and state.processes == () and state.load_average is None
    assert state.memory_available_kb is None and state.governors is None and state.temperatures_c is None
    assert not list(tmp_path.rglob("PWNED"))


def test_an_unreachable_ssh_host_is_unknown_not_a_traceback(tmp_path):
    connection = {"host": "127.0.0.1", "port": str(free_port()), "key": str(tmp_path / "no key"),
                  "known_hosts": str(tmp_path / "known_hosts")}
    check = check_host([get_device("gtx1080ti")], None, "stop", connection=connection, window_s=WINDOW_S)
    assert check.state.verdict == "unknown" and check.warning is None
    assert "the host of device 'gtx1080ti' could not be read" in check.state.reason


def test_a_fake_tree_at_a_path_needing_quotes_parses_as_it_does_here(ssh, tmp_path):
    proc = tmp_path / FOLDER / "proc"
    _write_proc(proc, {0: (50, 50), 1: (10, 90)}, {77: ("odd ) name (", 5, "0-1")})
    remote = sample_remote_host(ssh, WINDOW_S, [0, 1], proc=str(proc), sys=str(tmp_path / FOLDER / "sys"))
    local = sample_host(0.0, [0, 1], proc=proc, sys=tmp_path / FOLDER / "sys", exclude=())
    assert remote.load_average == local.load_average == (1.5, 0.75, 0.25)
    assert (remote.memory_available_kb, remote.memory_total_kb) == (local.memory_available_kb, 8000000)
    assert remote.cpu_count == 2 and remote.verdict == local.verdict and remote.processes == local.processes == ()
    assert not list(tmp_path.rglob("PWNED"))


def test_devices_check_json_carries_the_ssh_host(server, tmp_path, burner):
    pid, core = burner
    args = ["devices", "check", "gtx1080ti", "--affinity", str(core), "--window", str(WINDOW_S), "--json"]
    for key, value in _connection(server, tmp_path).items():
        args += ["--connect", f"{key}={value}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    host = data["host"]
    assert data["ok"] and host["verdict"] == "busy" and host["cpus"] == [core], host
    assert set(host) == set(sample_host(0.1, [core]).to_dict())  # the local check's shape
    burn = next(p for p in host["processes"] if p["pid"] == pid)
    assert burn["name"] == NAME and burn["cpus_allowed"] == [core] and isinstance(burn["cores"], float)
    assert isinstance(host["load_average"], list) and host["memory_total_kb"] > 0


def test_devices_check_text_says_not_checked_when_a_step_failed(server, tmp_path):
    args = ["devices", "check", "gtx1080ti", "--window", str(WINDOW_S)]
    for key, value in {**_connection(server, tmp_path), "python": "/nonexistent/python3"}.items():
        args += ["--connect", f"{key}={value}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    host_line = next(line for line in result.output.splitlines() if " host " in line)
    assert host_line.startswith("--") and "not checked: not sampled: the runtime step failed" in host_line
