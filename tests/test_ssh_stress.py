"""Stress SshTransport against the real loopback sshd: no output may ever be lost.

OpenSSH may send a channel's exit status before its last data and EOF; a reader that stops at
the exit status drops output now and then (an empty round trip, a truncated 200 KB output) and
closes a channel that the transport thread is still feeding. Single round trips rarely show
it, so these tests repeat each kind of exchange hundreds of times and count every loss.
"""

from __future__ import annotations

import random

import pytest
from peers.sshd import SshServer, sshd_available

from blox_lat.devices._ssh import SshTransport
from blox_lat.devices._transport import TransportError

pytestmark = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))

ROUND_TRIPS = 100
LARGE_OUTPUTS = 30
SEQ_LAST = 40_000  # `seq 1 40000` prints 228,894 bytes
SEQ_TEXT = "".join(f"{i}\n" for i in range(1, SEQ_LAST + 1))


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    with SshServer(tmp_path_factory.mktemp("sshd")) as srv, SshTransport(
        srv.host, srv.port, user=srv.user, key_path=srv.client_key, known_hosts=srv.known_hosts
    ) as t:
        yield t


def test_stdin_round_trips_lose_nothing(ssh):
    rng = random.Random(1234)
    lost = []
    for i in range(ROUND_TRIPS):
        # past 64 KiB (sshd's read size) the exit status can overtake the tail of the output
        payload = "".join(rng.choices("abcdefghij\n", k=rng.choice((1, 70_000, 70_000, 100_000))))
        result = ssh.run(["cat"], stdin=payload.encode())
        if (result.exit_status, result.stdout, result.stderr) != (0, payload, ""):
            lost.append((i, len(payload), result.exit_status, len(result.stdout), result.stderr[:80]))
    assert not lost, (f"{len(lost)} of {ROUND_TRIPS} round trips came back wrong "
                      f"(i, bytes sent, status, bytes back, stderr): {lost[:5]}")


def test_large_outputs_arrive_whole_on_both_streams(ssh):
    wrong = []
    for i in range(LARGE_OUTPUTS):
        # stdout echoes 200 KB of stdin (the shape that loses data most often), stderr is generated
        payload = SEQ_TEXT[i:] + SEQ_TEXT[:i]
        result = ssh.run(["sh", "-c", f"cat; seq 1 {SEQ_LAST} >&2; exit 3"], stdin=payload.encode())
        if (result.exit_status, result.stdout, result.stderr) != (3, payload, SEQ_TEXT):
            wrong.append((i, result.exit_status, len(result.stdout), len(result.stderr)))
    assert not wrong, (f"{len(wrong)} of {LARGE_OUTPUTS} outputs of {len(SEQ_TEXT)} bytes were wrong "
                       f"(i, status, stdout bytes, stderr bytes): {wrong[:5]}")


def test_streamed_output_equals_the_result(ssh):
    for _ in range(5):
        seen: list[str] = []
        result = ssh.run(["seq", "1", str(SEQ_LAST)], on_output=seen.append)
        assert result.stdout == SEQ_TEXT and "".join(seen) == SEQ_TEXT


def test_a_process_ending_after_its_last_output_loses_none_of_it(ssh):
    """A long-lived process (as the runner's ``--serve`` worker) that answers, prints a final
    burst and exits: every line arrives, then the end is a plain TransportError, not a lost
    connection."""
    script = 'while read x; do echo "$x"; done; i=0; while [ $i -lt 300 ]; do printf "%0999d\\n" $i; i=$((i+1)); done'
    for _ in range(5):
        proc = ssh.start(["sh", "-c", script])
        try:
            for n in range(30):
                proc.send(f"request {n}\n".encode())
                assert proc.read_line(10.0) == f"request {n}"
            proc.chan.shutdown_write()  # EOF on the process's stdin: it prints its burst and exits
            lines = []
            with pytest.raises(TransportError) as info:
                while True:
                    lines.append(proc.read_line(10.0))
            assert type(info.value) is TransportError, info.value  # not ConnectionLostError
            assert lines == [f"{i:0999d}" for i in range(300)]
            assert not proc.alive()
        finally:
            proc.kill()
    assert ssh.run(["echo", "still usable"]).stdout == "still usable\n"
