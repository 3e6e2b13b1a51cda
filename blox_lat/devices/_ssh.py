"""SSH transport (paramiko): key authentication, strict host keys, SFTP for files.

Why it looks the way it does:

- Host keys are checked against a known_hosts file (default ``~/.ssh/known_hosts``, read only in
  :meth:`SshTransport.connect`, never at import) and an unknown key is *rejected*
  (:class:`HostKeyError`). ``trust_new_host=True`` is the explicit opt-in that records the key
  on first use and appends it to that file; paramiko's ``AutoAddPolicy`` would accept any key
  silently and save nothing.
- ``TCP_NODELAY`` is set on the socket: small request/response messages otherwise wait for
  Nagle's algorithm and delayed ACKs.
- Each command line is built by quoting every argv element; it is prefixed with a line that
  reports the remote shell's PID on stderr and then ``exec``\\ s the command, so that a timeout can
  kill the remote process instead of leaving it running and skewing later latency measurements.
  That line is stripped from the output.
- A command is done when its channel has reached EOF *and* reported its exit status: OpenSSH
  may send the status before the last data. Readers wait on a :class:`threading.Event` fed by
  the channel's buffers, not on ``select()`` over ``Channel.fileno()``, whose OS pipe races
  with ``close()`` (see :func:`_data_event`).
- A socket error or EOF mid-command becomes :class:`ConnectionLostError` so that
  :func:`~blox_lat.devices._transport.with_reconnect` can recover.
"""

from __future__ import annotations

import logging
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from blox_lat.devices._options import check_port
from blox_lat.devices._process import RemoteProcess
from blox_lat.devices._transport import (
    AuthenticationError,
    CommandResult,
    CommandTimeoutError,
    ConnectionLostError,
    HostKeyError,
    Transport,
    TransportError,
    remote_command_line,
)

if TYPE_CHECKING:
    import paramiko

__all__ = ["SshTransport"]

logger = logging.getLogger(__name__)

_PID_MARK = "__BLOXLAT_PID="
_PID_RE = re.compile(rf"\A{_PID_MARK}(\d+)\n")
_POLL_S = 0.5
_STATUS_AFTER_EOF_S = 10.0
_KILL_WAIT_S = 5.0


def _import_paramiko() -> Any:
    try:
        import paramiko
    except ImportError as exc:  # pragma: no cover - paramiko is a declared dependency
        raise TransportError("the SSH transport needs paramiko: pip install paramiko") from exc
    return paramiko


class SshTransport(Transport):
    """Run commands on ``user@host:port`` with key authentication."""

    kind: ClassVar[str] = "ssh"

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        key_path: str | Path | None = None,
        known_hosts: str | Path | None = None,
        trust_new_host: bool = False,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        try:
            self.port = check_port(port)  # a socket would wrap 99999 round to another port
        except ValueError as exc:
            raise TransportError(f"ssh://{host}: {exc}") from None
        self.user = user
        self.key_path = Path(key_path).expanduser() if key_path is not None else None
        self._known_hosts = Path(known_hosts) if known_hosts is not None else None
        self.trust_new_host = trust_new_host
        self.connect_timeout_s = connect_timeout_s
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.RLock()
        self._connected_once = False  # a later connect is a reconnect (logged as one)

    @property
    def known_hosts(self) -> Path:
        return (self._known_hosts or Path("~/.ssh/known_hosts")).expanduser()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": self.host, "port": self.port, "user": self.user}

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return
            logger.info("the SSH connection to %s is closed; reconnecting", self._where())
            self.close()
        paramiko = _import_paramiko()
        client = paramiko.SSHClient()
        known_hosts = self.known_hosts
        if known_hosts.exists():
            client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(
            _TrustAndSavePolicy(known_hosts) if self.trust_new_host else _RejectPolicy(known_hosts)
        )
        if self.key_path is not None and not self.key_path.is_file():
            raise AuthenticationError(f"SSH key {self.key_path} does not exist; pass the private key file")
        logger.debug("connecting to %s (key %s, known_hosts %s)", self._where(),
                     self.key_path or "default keys/agent", known_hosts)
        start = time.perf_counter()
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=str(self.key_path) if self.key_path else None,
                look_for_keys=self.key_path is None,
                allow_agent=self.key_path is None,
                timeout=self.connect_timeout_s,
                banner_timeout=self.connect_timeout_s,
                auth_timeout=self.connect_timeout_s,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"the host key of {self._where()} has CHANGED (expected {exc.expected_key.get_name()} "
                f"{exc.expected_key.get_base64()[:16]}..., got {exc.key.get_base64()[:16]}...). This can "
                f"be an attack. If the device was reinstalled, remove the old entry with "
                f"`ssh-keygen -R '{self._host_entry()}' -f {known_hosts}` and connect again."
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            key = self.key_path or "your default SSH keys/agent"
            raise AuthenticationError(
                f"{self._where()} rejected {key}: add the matching public key to "
                f"~/.ssh/authorized_keys of user {self.user or '(default)'} on the device "
                f"({exc})"
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise ConnectionLostError(f"cannot reach {self._where()}: {exc}") from exc
        transport = client.get_transport()
        assert transport is not None
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_keepalive(15)
        self._client = client
        logger.info("%s %s in %.2f s", "reconnected to" if self._connected_once else "connected to",
                    self._where(), time.perf_counter() - start)
        self._connected_once = True

    def close(self) -> None:
        sftp, client, self._sftp, self._client = self._sftp, self._client, None, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception:  # noqa: BLE001 - closing a dead link must not raise
                pass
        if client is not None:
            client.close()

    def _where(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def _host_entry(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _transport(self) -> Any:
        if self._client is None:
            self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLostError(f"the SSH connection to {self._where()} is closed")
        return transport

    # -- commands ---------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        cwd: str | None = None,
        on_output: Callable[[str], None] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        wrapped = _wrapped(argv, cwd)
        start = time.perf_counter()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            chan = self._transport().open_session(timeout=self.connect_timeout_s)
            chan.exec_command(wrapped)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err, pid = _collect(chan, deadline, on_output)
        except (OSError, EOFError) as exc:
            logger.info("lost %s while running %s: %s", self._where(), shlex.join(argv), exc)
            raise ConnectionLostError(f"lost {self._where()} while running {argv!r}: {exc}") from exc
        except _Timeout as exc:
            logger.info("timed out after %s s on %s, killing pid %s: %s", timeout_s, self._where(),
                        exc.pid, shlex.join(argv))
            self._kill_remote(exc.pid)
            raise CommandTimeoutError(
                f"command {argv!r} on {self._where()} did not finish within {timeout_s} s; killed"
            ) from None
        except Exception as exc:
            if type(exc).__module__.startswith("paramiko"):
                raise ConnectionLostError(f"lost {self._where()} while running {argv!r}: {exc}") from exc
            raise
        status = chan.exit_status if chan.status_event.is_set() else -1
        transport = self._client.get_transport() if self._client else None
        if status == -1 and (transport is None or not transport.is_active()):
            raise ConnectionLostError(f"lost {self._where()} while running {argv!r} (pid {pid})")
        chan.close()
        duration_s = time.perf_counter() - start
        logger.debug("exit %d in %.3f s on %s: %s", status, duration_s, self._where(), shlex.join(argv))
        return CommandResult(
            argv=argv,
            exit_status=status,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=duration_s,
        )

    supports_processes: ClassVar[bool] = True
    #: pushes may run on another thread while a command runs (separate channels)
    concurrent_ops: ClassVar[bool] = True

    def start(self, argv: Sequence[str], *, cwd: str | None = None) -> Any:
        """A long-lived remote process on its own exec channel (stdin/stdout kept open)."""
        argv = tuple(str(a) for a in argv)
        wrapped = _wrapped(argv, cwd)
        try:
            chan = self._transport().open_session(timeout=self.connect_timeout_s)
            chan.exec_command(wrapped)
        except (OSError, EOFError) as exc:
            raise ConnectionLostError(f"lost {self._where()} while starting {argv!r}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("paramiko"):
                raise ConnectionLostError(f"lost {self._where()} while starting {argv!r}: {exc}") from exc
            raise
        logger.debug("started on %s: %s", self._where(), shlex.join(argv))
        return SshProcess(self, chan)

    def _kill_remote(self, pid: int | None) -> None:
        if pid is None:
            return
        try:
            chan = self._transport().open_session(timeout=self.connect_timeout_s)
            chan.exec_command(f"kill -KILL {pid}")
            chan.status_event.wait(self.connect_timeout_s)
            chan.close()
        except Exception:  # noqa: BLE001 - best effort: the link may be what failed
            pass

    # -- files ------------------------------------------------------------------------------
    def _sftp_client(self) -> Any:
        if self._sftp is None:
            self._sftp = self._transport().open_sftp_client()
        return self._sftp

    def push(self, local: Path, remote: str) -> None:
        """Upload to ``remote + '.part'`` then rename, so a reader never sees half a file."""
        local = Path(local)
        if not local.is_file():
            raise TransportError(f"cannot push {local}: no such file")
        part = remote + ".part"
        start = time.perf_counter()
        self._sftp_op(lambda s: (s.put(str(local), part), s.posix_rename(part, remote)), f"push {local} -> {remote}")
        logger.debug("pushed %s -> %s:%s (%d bytes) in %.3f s", local, self._where(), remote,
                     local.stat().st_size, time.perf_counter() - start)

    def exists(self, remote_path: str) -> bool:
        """SFTP ``stat`` on the open session: no new exec channel (~100 ms each) per check."""
        found: list[bool] = []

        def stat(sftp: Any) -> None:
            try:
                sftp.stat(remote_path)
                found.append(True)
            except FileNotFoundError:
                found.append(False)

        self._sftp_op(stat, f"stat {remote_path}")
        return found[0]

    def pull(self, remote: str, local: Path) -> None:
        local = Path(local)
        part = local.with_name(f".{local.name}.part")
        try:
            start = time.perf_counter()
            self._sftp_op(lambda s: s.get(remote, str(part)), f"pull {remote} -> {local}")
            part.replace(local)
            logger.debug("pulled %s:%s -> %s (%d bytes) in %.3f s", self._where(), remote, local,
                         local.stat().st_size, time.perf_counter() - start)
        finally:
            part.unlink(missing_ok=True)

    def _sftp_op(self, op: Callable[[Any], object], what: str) -> None:
        with self._sftp_lock:  # one SFTP session, one request stream: a prefetch thread waits
            self._sftp_op_locked(op, what)

    def _sftp_op_locked(self, op: Callable[[Any], object], what: str) -> None:
        try:
            op(self._sftp_client())
        except (FileNotFoundError, PermissionError) as exc:
            raise TransportError(f"{what} on {self._where()} failed: {exc}") from exc
        except (OSError, EOFError) as exc:
            transport = self._client.get_transport() if self._client else None
            if transport is not None and transport.is_active() and isinstance(exc, OSError) and exc.errno:
                raise TransportError(f"{what} on {self._where()} failed: {exc}") from exc
            logger.info("lost %s during %s: %s", self._where(), what, exc)
            raise ConnectionLostError(f"lost {self._where()} during {what}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("paramiko"):
                raise ConnectionLostError(f"lost {self._where()} during {what}: {exc}") from exc
            raise


def _wrapped(argv: tuple[str, ...], cwd: str | None) -> str:
    """The command line sent for ``argv``: it reports the remote shell's PID on stderr, then
    ``exec`` keeps that PID for the command, so a timeout can kill exactly this process."""
    return f"printf '{_PID_MARK}%s\\n' \"$$\" >&2; " + (
        f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}" if cwd else f"exec {remote_command_line(argv)}"
    )


def _collect(
    chan: Any, deadline: float | None, on_output: Callable[[str], None] | None
) -> tuple[bytes, bytes, int | None]:
    """stdout, stderr and the remote PID once the channel has reached EOF *and* reported its
    exit status: OpenSSH may send the status before the last data, so either alone is not
    the end of the output."""
    ready = _data_event(chan)
    out = bytearray()
    err = _PidStripper(on_output)
    while True:
        ready.clear()  # before looking: data fed from now on sets it again
        at_eof = chan.eof_received or chan.closed  # read before draining: data precedes EOF
        while chan.recv_ready():
            data = chan.recv(65536)
            out += data
            if on_output is not None:
                on_output(data.decode("utf-8", "replace"))
        while chan.recv_stderr_ready():
            err.feed(chan.recv_stderr(65536))
        if at_eof and chan.status_event.is_set():  # a close without a status sets it too
            return bytes(out), err.finish(), err.pid
        wait = _POLL_S
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                chan.close()
                raise _Timeout(err.pid)
            wait = min(wait, remaining)
        # after EOF the buffers stay "ready" (closed): what is missing is the exit status
        (chan.status_event if at_eof else ready).wait(wait)


def _data_event(chan: Any) -> threading.Event:
    """An event set whenever ``chan`` has stdout or stderr data or reaches EOF.

    ``select()`` on a channel needs ``Channel.fileno()``, an OS pipe that paramiko's transport
    thread writes to on every packet and that ``Channel.close()`` closes: a write racing with the
    close lands on a closed or reused descriptor (``OSError: [Errno 9] Bad file descriptor``
    inside paramiko, then a dead link). An event has no descriptor. Both buffers share it, so a
    reader clears it, then checks both buffers, then waits.
    """
    event = threading.Event()
    chan.in_buffer.set_event(event)
    chan.in_stderr_buffer.set_event(event)
    return event


class _PidStripper:
    """Collects a command's stderr, less the first line: the wrapper's PID report."""

    def __init__(self, on_output: Callable[[str], None] | None) -> None:
        self.on_output = on_output
        self.pid: int | None = None
        self._err = bytearray()
        self._pid_done = False

    def feed(self, data: bytes) -> None:
        self._err += data
        if self._pid_done:
            self._emit(data)
        elif b"\n" in self._err:
            self._pid_done = True
            match = _PID_RE.match(self._err.decode("utf-8", "replace"))
            if match:
                self.pid = int(match.group(1))
                del self._err[: len(match.group(0))]
            self._emit(bytes(self._err))

    def finish(self) -> bytes:
        if not self._pid_done:  # ended before the PID line was complete: pass it all on
            self._pid_done = True
            self._emit(bytes(self._err))
        return bytes(self._err)

    def _emit(self, data: bytes) -> None:
        if self.on_output is not None and data:
            self.on_output(data.decode("utf-8", "replace"))


class _Timeout(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


class _RejectPolicy:
    """Refuse an unknown host key with a message that names the file and the opt-in."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise HostKeyError(
            f"unknown SSH host key for {hostname} ({key.get_name()}): it is not in "
            f"{self.known_hosts}. Verify the device and add its key (e.g. `ssh-keyscan -p PORT HOST "
            f">> {self.known_hosts}`), or opt in to trusting it on first use with "
            f"trust_new_host=True (CLI: --trust-new-host), which records it in {self.known_hosts}."
        )


class _TrustAndSavePolicy:
    """Trust-on-first-use: accept the unknown key, remember it and append it to known_hosts."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        from paramiko.hostkeys import HostKeyEntry

        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.known_hosts.open("a") as fh:
            fh.write(HostKeyEntry([hostname], key).to_line())


class SshProcess(RemoteProcess):
    """A process on an SSH exec channel; its PID comes first on stderr (for ``kill``)."""

    def __init__(self, transport: SshTransport, chan: Any) -> None:
        super().__init__()
        self.transport, self.chan = transport, chan
        self.pid: int | None = None
        self._err = bytearray()
        self._ready = _data_event(chan)

    def _drain_stderr(self) -> None:
        while self.chan.recv_stderr_ready():
            self._err += self.chan.recv_stderr(65536)
        if self.pid is None and b"\n" in self._err:
            match = _PID_RE.match(self._err.decode("utf-8", "replace"))
            if match:
                self.pid = int(match.group(1))
                del self._err[: len(match.group(0))]

    def send(self, data: bytes) -> None:
        try:
            self.chan.sendall(data)
        except (OSError, EOFError) as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException) -> Exception:
        t = self.transport._client.get_transport() if self.transport._client else None
        if t is None or not t.is_active():
            return ConnectionLostError(f"lost {self.transport._where()}: {exc}")
        return TransportError(f"the remote process ended: {self.stderr_tail()}")

    def _ended(self) -> bytes:
        """The channel is at EOF: a process that exited reports a status; a session that was
        killed with the server (or a dropped link) does not, and that is a lost connection.
        The status may follow the EOF by a while on a busy device (an interpreter's shutdown
        after it closed stdout), hence the generous wait; a dying link ends it at once."""
        self.chan.status_event.wait(_STATUS_AFTER_EOF_S)
        t = self.transport._client.get_transport() if self.transport._client else None
        if t is None or not t.is_active() or not self.chan.status_event.is_set():
            raise ConnectionLostError(f"lost {self.transport._where()} during a request "
                                      "(the session ended without an exit status)")
        return b""

    def _recv(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._ready.clear()  # before looking: data fed from now on sets it again
            at_eof = self.chan.eof_received or self.chan.closed  # before draining: data precedes EOF
            self._drain_stderr()
            if self.chan.recv_ready():
                return self.chan.recv(65536)
            if at_eof:
                return self._ended()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                t = self.transport._client.get_transport() if self.transport._client else None
                if t is None or not t.is_active():
                    raise ConnectionLostError(f"lost {self.transport._where()} during a request")
                return None
            self._ready.wait(remaining)

    def alive(self) -> bool:
        return not (self.chan.closed or self.chan.exit_status_ready())

    def stderr_tail(self) -> str:
        try:
            self._drain_stderr()
        except Exception:  # noqa: BLE001 - a dead channel has no more stderr
            pass
        return " | ".join(self._err.decode("utf-8", "replace").strip().splitlines()[-5:])

    def kill(self) -> None:
        try:
            self._drain_stderr()
        except Exception:  # noqa: BLE001
            pass
        self.transport._kill_remote(self.pid)
        if self.pid is not None:  # gone for sure once sshd has reaped it and ended the session
            self.chan.status_event.wait(_KILL_WAIT_S)
        self.chan.close()
