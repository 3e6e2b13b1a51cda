"""The host check (issue 23): ``sample_host`` on a fake /proc and on this host, with busy
processes started here; ``devices check cpu``; ``measure``'s warning, ``--on-busy`` and the
``host_state`` of its journal's environment line.

The real-host tests start one CPU-bound process per core this process may use and always
kill them. The quiet test runs on a host shared with other work: it judges one core, the
least busy, and skips (saying who was busy) when other work holds that core at the time.
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

from blox_lat.cli.main import cli
from blox_lat.devices import HostState, get_device, sample_host
from blox_lat.harness import (
    HostBusyError,
    check_host,
    collect_environment,
    read_journal,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
TINY = ["0:1", "--runs", "10", "--warmup-runs", "1", "--warmup-s", "0"]


# -- a fake /proc and /sys --------------------------------------------------------------------

def _write_proc(root: Path, cores: dict[int, tuple[int, int]], procs: dict[int, tuple[str, int, str]]) -> None:
    """``cores``: cpu -> (busy ticks, idle ticks); ``procs``: pid -> (name, ticks, allowed list)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{c} {busy} 0 0 {idle} 0 0 0 0 0 0" for c, (busy, idle) in sorted(cores.items())]
    (root / "stat").write_text("\n".join(lines) + "\nintr 0\n")
    (root / "loadavg").write_text("1.50 0.75 0.25 2/100 999\n")
    (root / "meminfo").write_text("MemTotal:       8000000 kB\nMemAvailable:   6000000 kB\n")
    for pid, (name, ticks, allowed) in procs.items():
        rest = ["R"] + ["0"] * 50
        rest[11], rest[12], rest[36] = str(ticks), "0", "1"
        (root / str(pid)).mkdir(exist_ok=True)
        (root / str(pid) / "stat").write_text(f"{pid} ({name}) " + " ".join(rest) + "\n")
        (root / str(pid) / "status").write_text(f"Name:\t{name}\nCpus_allowed_list:\t{allowed}\n")
        (root / str(pid) / "cmdline").write_text(f"{name}\0--flag\0")


def _fake_sample(tmp_path: Path, before: tuple, after: tuple, cpus=(0, 1), window_s: float = 1.0,
                 sys_root: Path | None = None) -> HostState:
    proc = tmp_path / "proc"
    _write_proc(proc, *before)
    times = iter([0.0, window_s])
    return sample_host(window_s, cpus, proc=proc, sys=sys_root or tmp_path / "nosys", exclude=(),
                       sleep=lambda s: _write_proc(proc, *after), clock=lambda: next(times))


def test_a_quiet_fake_host_is_quiet_and_names_nobody(tmp_path):
    idle = {0: (0, 0), 1: (0, 0)}
    later = {0: (2, 98), 1: (1, 99)}  # 2 % and 1 % busy
    state = _fake_sample(tmp_path, (idle, {7: ("sshd", 10, "0-1")}), (later, {7: ("sshd", 11, "0-1")}))
    assert state.verdict == "quiet" and not state.busy and state.processes == ()
    assert state.core_busy == {0: 0.02, 1: 0.01}
    assert "no other process used 5 % of a core" in state.reason
    assert state.load_average == (1.5, 0.75, 0.25)
    assert (state.memory_available_kb, state.memory_total_kb) == (6000000, 8000000)
    # /sys is absent here: none of its facts is invented
    assert state.governors is None and state.frequency_khz is None and state.turbo is None
    assert state.temperatures_c is None


def test_a_busy_fake_host_names_the_processes_that_may_run_on_the_judged_cores(tmp_path):
    before = ({0: (0, 0), 1: (0, 0)}, {123: ("python", 0, "0-1"), 124: ("burn", 0, "0"), 125: ("new", 0, "1")})
    after = ({0: (98, 2), 1: (95, 5)},
             {123: ("python", CLK_TCK * 98 // 100, "0-1"), 124: ("burn", CLK_TCK, "0"), 126: ("born", CLK_TCK // 2, "1")})
    state = _fake_sample(tmp_path, before, after)
    assert state.busy
    assert [(p.pid, p.name) for p in state.processes] == [(124, "burn"), (123, "python"), (126, "born")]
    assert state.processes[1].cpus_allowed == (0, 1) and state.processes[1].cmdline == "python --flag"
    assert state.reason.startswith("3 other processes used 2.5 cores and may run on the 2 cores (0-1)")
    assert "pid 123 python (98 %)" in state.reason and "cpu0 98 %, cpu1 95 %" in state.reason
    # judging core 1 only: 'burn' is pinned to core 0 and cannot disturb it
    state1 = _fake_sample(tmp_path / "one", before, after, cpus=(1,))
    assert [p.pid for p in state1.processes] == [123, 126] and state1.cpus == (1,)
    assert set(state1.core_busy) == {1}


def test_a_core_busy_with_no_visible_process_is_busy_and_says_so(tmp_path):
    state = _fake_sample(tmp_path, ({0: (0, 0)}, {}), ({0: (60, 40)}, {}), cpus=(0,))
    assert state.busy and "no process this view of /proc shows" in state.reason


def test_nothing_readable_is_unknown_not_quiet(tmp_path):
    state = sample_host(0.0, (0,), proc=tmp_path / "absent", sys=tmp_path / "absent", exclude=(),
                        sleep=lambda s: None)
    assert state.verdict == "unknown" and state.core_busy is None and state.load_average is None
    assert state.memory_available_kb is None


def test_sys_facts_are_read_where_present(tmp_path):
    sysroot = tmp_path / "sys"
    cpu0 = sysroot / "devices/system/cpu/cpu0/cpufreq"
    cpu0.mkdir(parents=True)
    (cpu0 / "scaling_governor").write_text("performance\n")
    (cpu0 / "scaling_cur_freq").write_text("2400000\n")
    (sysroot / "devices/system/cpu/intel_pstate").mkdir(parents=True)
    (sysroot / "devices/system/cpu/intel_pstate/no_turbo").write_text("1\n")
    zone = sysroot / "class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("x86_pkg_temp\n")
    (zone / "temp").write_text("45000\n")
    state = _fake_sample(tmp_path, ({0: (0, 0)}, {}), ({0: (0, 100)}, {}), cpus=(0,), sys_root=sysroot)
    assert state.governors == {0: "performance"} and state.frequency_khz == {0: 2400000}
    assert state.turbo is False and state.temperatures_c == {"thermal_zone0:x86_pkg_temp": 45.0}
    data = json.loads(json.dumps(state.to_dict()))
    assert data["governors"] == {"0": "performance"} and data["verdict"] == "quiet"


# -- the policy, with a scripted sampler --------------------------------------------------------

def _state(tmp_path: Path, busy: bool) -> HostState:
    after = {0: (90, 10)} if busy else {0: (1, 99)}
    return _fake_sample(tmp_path / str(time.monotonic_ns()), ({0: (0, 0)}, {}), (after, {}), cpus=(0,))


def test_check_host_warn_stop_wait_and_remote(tmp_path):
    local = [get_device("cpu")]
    busy, quiet = _state(tmp_path, True), _state(tmp_path, False)
    warned = check_host(local, None, "warn", sample=lambda w, c: busy)
    assert warned.warning.startswith("busy host: ") and "--affinity" in warned.warning
    assert check_host(local, None, "warn", sample=lambda w, c: quiet).warning is None
    with pytest.raises(HostBusyError, match="not started"):
        check_host(local, None, "stop", sample=lambda w, c: busy)
    with pytest.raises(HostBusyError):  # an SSH device's host is checked too: tests/test_host_check_ssh.py
        check_host([get_device("gtx1080ti")], None, "stop", sample=lambda w, c: busy)
    phone = check_host([get_device("sd888")], None, "stop")  # an ADB phone's is said to be not checked
    assert phone.state.verdict == "not checked" and phone.warning is None and "not checked" in phone.state.reason
    assert check_host([], None, "stop") is None

    now = [0.0]
    samples = iter([busy, busy, quiet])
    waited = check_host(local, [0], "wait", sample=lambda w, c: next(samples), pause_s=4.0,
                        sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert waited.state.quiet and waited.waited_s == 8.0 and waited.warning is None
    now[0] = 0.0
    gave_up = check_host(local, [0], "wait", sample=lambda w, c: busy, wait_s=10.0, pause_s=4.0,
                         sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert gave_up.state.busy and gave_up.waited_s == 10.0 and "after waiting 10 s" in gave_up.warning
    assert gave_up.to_dict()["on_busy"] == "wait"


def test_environment_records_host_state_only_when_asked(tmp_path):
    plain = collect_environment(device="cpu", campaign_id="c")
    assert "host_state" not in plain
    inside = collect_environment(device="cpu", campaign_id="c", extra={"unit": "cpu"}, host_state={"verdict": "busy"})
    assert list(inside)[-2:] == ["host_state", "env_id"] and inside["host_state"] == {"verdict": "busy"}


# -- the real host --------------------------------------------------------------------------------

@pytest.fixture
def burners() -> Iterator[list[int]]:
    """One CPU-bound process per core this process may use, killed however the test ends."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in os.sched_getaffinity(0):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(0.5)  # running before any window opens
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


def test_check_names_the_busy_processes_through_the_console_script(burners):
    exe = Path(sys.executable).with_name("blox-lat")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "blox_lat"]
    proc = subprocess.run([*argv, "devices", "check", "cpu", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # a busy host is reported, not failed
    data = json.loads(proc.stdout)
    host = data["host"]
    assert data["ok"] and host["verdict"] == "busy", host
    assert set(burners) <= {p["pid"] for p in host["processes"]}, host["reason"]
    assert all(f"pid {pid} python" in host["reason"] for pid in burners)
    assert host["cpus"] == sorted(os.sched_getaffinity(0))
    assert {"load_average", "memory_available_kb", "governors", "turbo", "temperatures_c", "core_busy"} <= set(host)


def test_check_text_output_says_busy(burners):
    result = CliRunner().invoke(cli, ["devices", "check", "cpu"])
    assert result.exit_code == 0, result.output
    host_line = next(line for line in result.output.splitlines() if " host " in line)
    assert host_line.startswith("BUSY") and f"pid {burners[0]} python" in host_line
    assert "load average" in result.output and "governor" in result.output


def test_measure_warns_before_the_first_model_and_records_it(tmp_path, store, burners):
    out = tmp_path / "camp"
    result = CliRunner().invoke(cli, ["measure", *TINY, "--out", str(out), "--store", str(store)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("blox-lat: warning: busy host")]
    assert len(warnings) == 1, result.output
    assert result.output.index(warnings[0]) < result.output.index("[1/1]")
    assert "--affinity" in warnings[0] and f"pid {burners[0]} python" in warnings[0]
    env = next(iter(read_journal(out, kind="environment")))
    assert env["host_state"]["verdict"] == "busy" and env["host_state"]["on_busy"] == "warn"
    assert set(burners) <= {p["pid"] for p in env["host_state"]["processes"]}


def test_measure_on_busy_stop_exits_1_and_measures_nothing(tmp_path, store, burners):
    out = tmp_path / "camp"
    result = CliRunner().invoke(cli, ["measure", *TINY, "--out", str(out), "--store", str(store), "--on-busy", "stop"])
    assert result.exit_code == 1, result.output
    assert "busy host" in result.output and "not started (--on-busy stop)" in result.output
    assert not (out / "journal.jsonl").exists()


def test_measure_json_carries_the_host_and_keeps_stderr_empty(tmp_path, store, burners):
    result = CliRunner().invoke(cli, ["measure", *TINY, "--out", str(tmp_path / "c"), "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)  # stdout and stderr together: only the JSON
    assert data["host"]["verdict"] == "busy" and data["measured"] == 1


def test_measure_on_a_quiet_core_does_not_warn(tmp_path, store):
    """Judge one core, the least busy; skip, naming who was busy, when other work holds it."""
    look = sample_host(1.0)
    if look.core_busy is None:
        pytest.skip("per-core times are unreadable here")
    core = min(look.core_busy, key=look.core_busy.get)
    before = sample_host(1.0, [core])
    if before.busy:
        pytest.skip(f"this shared host is busy with other work now: {before.reason}")
    out = tmp_path / "camp"
    result = CliRunner().invoke(cli, ["measure", *TINY, "--out", str(out), "--store", str(store),
                                      "--affinity", str(core)])
    assert result.exit_code == 0, result.output
    warning = next((line for line in result.output.splitlines() if "warning: busy host" in line), None)
    if warning is not None:  # other work began between the look and the campaign: not ours to judge
        pytest.skip(f"other work started on core {core} meanwhile: {warning}")
    env = next(iter(read_journal(out, kind="environment")))
    assert env["host_state"]["verdict"] == "quiet" and env["host_state"]["cpus"] == [core]
