"""LocalTransport round trip, plus the transport-independent pieces (CommandResult, retry)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from blox_lat.devices._local import LocalTransport
from blox_lat.devices._transport import (
    CommandFailedError,
    CommandResult,
    CommandTimeoutError,
    ConnectionLostError,
    RetryPolicy,
    Transport,
    TransportError,
    remote_command_line,
    with_reconnect,
)
from blox_lat.errors import BloxLatError

NASTY = "a b; rm -rf x"


@pytest.fixture()
def local():
    with LocalTransport() as t:
        yield t


def test_is_a_transport_with_real_abstract_methods():
    assert issubclass(LocalTransport, Transport)
    assert {"connect", "run", "push", "pull", "close", "describe"} <= Transport.__abstractmethods__
    with pytest.raises(TypeError):
        Transport()  # type: ignore[abstract]


def test_exit_status_and_separate_streams(local):
    r = local.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.exit_status, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert r.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    with pytest.raises(CommandFailedError) as info:
        r.check()
    assert "status 3" in str(info.value) and "err" in str(info.value)
    assert isinstance(info.value, BloxLatError) and info.value.result is r


def test_argument_arrives_verbatim(local, tmp_path):
    (tmp_path / "x").mkdir()
    r = local.run(["printf", "%s", NASTY], cwd=str(tmp_path))
    assert r.stdout == NASTY and (tmp_path / "x").exists()


def test_stdin_and_cwd(local, tmp_path):
    d = tmp_path / "dir with space;semi"
    d.mkdir()
    assert local.run(["pwd"], cwd=str(d)).stdout.strip() == str(d)
    assert local.run(["cat"], stdin=b"payload\x00").stdout == "payload\x00"


def test_streaming_output_arrives_before_the_end(local):
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    r = local.run(["sh", "-c", "echo first; sleep 0.5; echo second"],
                  on_output=lambda s: seen.append((time.monotonic() - start, s)))
    assert r.stdout == "first\nsecond\n"
    assert seen[0][1] == "first\n" and seen[0][0] < 0.4


def test_timeout_kills_the_whole_process_group(local, tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandTimeoutError):
        local.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout_s=0.5)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:  # gone, or a zombie waiting for a reaper: either way it no longer runs
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except FileNotFoundError:
            break
        time.sleep(0.01)
    else:
        pytest.fail("grandchild survived the timeout")


def test_push_pull_and_helpers(local, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    remote_dir = tmp_path / "remote dir;x"
    local.mkdir_p(str(remote_dir))
    assert local.exists(str(remote_dir)) and not local.exists(str(remote_dir / "nope"))
    local.push(src, str(remote_dir / "f.bin"))
    import hashlib

    assert local.sha256(str(remote_dir / "f.bin")) == hashlib.sha256(src.read_bytes()).hexdigest()
    local.pull(str(remote_dir / "f.bin"), tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    with pytest.raises(TransportError):
        local.pull(str(remote_dir / "missing"), tmp_path / "x")


def test_missing_program_and_empty_argv(local):
    with pytest.raises(TransportError):
        local.run(["/nonexistent/program"])
    with pytest.raises(TransportError):
        local.run([])


def test_remote_command_line_quotes_every_element():
    line = remote_command_line(["echo", NASTY, "$HOME", "it's"], cwd="/data/a b;c")
    assert line == "cd '/data/a b;c' && echo 'a b; rm -rf x' '$HOME' 'it'\"'\"'s'"


def test_command_result_is_frozen():
    r = CommandResult(("true",), 0, "", "", 0.1)
    assert r.check() is r and r.ok
    with pytest.raises(AttributeError):
        r.exit_status = 1  # type: ignore[misc]


class _Flaky(LocalTransport):
    def __init__(self, failures: int, reconnect_failures: int = 0) -> None:
        super().__init__()
        self.failures, self.reconnect_failures = failures, reconnect_failures
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1
        if self.connects > 1 and self.reconnect_failures:
            self.reconnect_failures -= 1
            raise ConnectionLostError("still down")

    def op(self, _t: Transport) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionLostError("dropped")
        return "done"


def test_with_reconnect_backs_off_exponentially():
    t, sleeps = _Flaky(failures=2, reconnect_failures=1), []
    assert with_reconnect(t, t.op, RetryPolicy(5, 0.1, 0.3), sleep=sleeps.append) == "done"
    assert sleeps == [0.1, 0.2, 0.3]  # capped at max_delay_s


def test_with_reconnect_gives_up_and_does_not_retry_other_errors():
    t = _Flaky(failures=10)
    with pytest.raises(ConnectionLostError, match="gave up after 3 attempts"):
        with_reconnect(t, t.op, RetryPolicy(3, 0, 0), sleep=lambda s: None)
    calls = []

    def failing(_t):
        calls.append(1)
        raise CommandTimeoutError("slow")

    with pytest.raises(CommandTimeoutError):
        with_reconnect(t, failing, RetryPolicy(3, 0, 0), sleep=lambda s: None)
    assert len(calls) == 1


def test_retry_policy_validates():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
