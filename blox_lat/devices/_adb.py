"""ADB transport (adb-shell 0.4.4, no adb server needed): phones over TCP or USB.

adb-shell speaks the device protocol itself, so a benchmark host needs no Android SDK. Its
rough edges (SPEC section 5) are handled here:

- **No exit status** (legacy shell protocol): the command line ends with
  ``; printf '\\n<MARKER>%d\\n' $?`` with a fresh random marker, parsed by a regex anchored at
  the end of the output and removed from it (and never forwarded to ``on_output``).
- **Silence limits**: adb-shell fails a command that prints nothing for ``read_timeout_s``. We
  pass no transport timeout and a huge read timeout and enforce *our* overall ``timeout_s``
  inside the socket layer (:class:`_TcpLink`), so a runner that computes quietly for minutes
  is fine and a hung one is stopped on time.
- **Nagle**: adb-shell never sets ``TCP_NODELAY`` (~47 ms per command on loopback instead of
  ~2 ms). :class:`_TcpLink` replaces adb-shell's TCP transport: it sets ``TCP_NODELAY`` on
  every (re)connect, sends with a ``sendall`` loop (adb-shell's ``bulk_write`` ignores short
  writes on its non-blocking socket, which can corrupt large pushes) and reports EOF as an
  error instead of spinning until the read timeout.
- **After a timeout** the connection is closed and reopened, because adb-shell's packet store
  is left holding the abandoned stream.
- **Output**: the legacy shell merges stderr into stdout; ``CommandResult.stderr`` is empty.

A key pair is kept at ``~/.config/blox-lat/adbkey`` (created on first connect, mode 0600);
a phone that does not know it shows the "Allow USB debugging" prompt and the connection fails
with :class:`AuthenticationError` until the user accepts.
"""

from __future__ import annotations

import base64
import codecs
import logging
import os
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from blox_lat.devices._transport import (
    AuthenticationError,
    CommandResult,
    CommandTimeoutError,
    ConnectionLostError,
    RetryPolicy,
    Transport,
    TransportError,
    remote_command_line,
)

__all__ = ["AdbTransport", "default_adb_key_path"]

logger = logging.getLogger(__name__)

_NO_TIMEOUT_S = 10.0**7  # adb-shell's read timeout; our own deadline does the real work
_MAX_STDIN = 32 * 1024  # stdin travels base64-encoded in the OPEN packet


def default_adb_key_path() -> Path:
    return Path("~/.config/blox-lat/adbkey").expanduser()


class _DeadlineExceeded(Exception):
    """Raised from the socket layer when a command runs past its timeout."""


def _tcp_link_class() -> type:
    """Build the adb-shell transport subclass lazily (adb-shell is imported on use only)."""
    from adb_shell.exceptions import TcpTimeoutException
    from adb_shell.transport.base_transport import BaseTransport

    class _TcpLink(BaseTransport):
        """adb-shell TCP transport with TCP_NODELAY, full writes, EOF errors and a deadline."""

        def __init__(self, host: str, port: int) -> None:
            self.host, self.port = host, port
            self.sock: socket.socket | None = None
            self.deadline: float | None = None

        def connect(self, transport_timeout_s: float | None) -> None:
            self.close()
            sock = socket.create_connection((self.host, self.port), timeout=transport_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.sock = sock

        def close(self) -> None:
            sock, self.sock = self.sock, None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

        def _wait(self, transport_timeout_s: float | None, *, write: bool) -> None:
            if self.sock is None:
                raise ConnectionResetError("not connected")
            wait = transport_timeout_s
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise _DeadlineExceeded
                wait = left if wait is None else min(wait, left)
            r, w, _ = select.select([] if write else [self.sock], [self.sock] if write else [], [], wait)
            if not (r or w):
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    raise _DeadlineExceeded
                raise TcpTimeoutException(f"no data from {self.host}:{self.port} for {wait} s")

        def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
            self._wait(transport_timeout_s, write=False)
            assert self.sock is not None
            data = self.sock.recv(numbytes)
            if not data:
                raise ConnectionResetError(f"{self.host}:{self.port} closed the connection")
            return data

        def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
            view = memoryview(data)
            while view:
                self._wait(transport_timeout_s, write=True)
                assert self.sock is not None
                try:
                    view = view[self.sock.send(view) :]
                except BlockingIOError:
                    continue
            return len(data)

    return _TcpLink


def _forwardable(buf: bytearray, needle: bytes, sent: int) -> int:
    """How much of ``buf`` can go to ``on_output``: all but what may start the marker line."""
    found = buf.find(needle, sent)
    if found >= 0:
        return found
    for k in range(min(len(needle) - 1, len(buf) - sent), 0, -1):
        if buf.endswith(needle[:k]):
            return len(buf) - k
    return len(buf)


def _split_serial(serial: str | None) -> tuple[str, int] | None:
    """``host:port`` -> (host, port); a USB serial (or None) -> None."""
    if serial is None or ":" not in serial:
        return None
    host, _, port = serial.rpartition(":")
    if not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class AdbTransport(Transport):
    """A phone over ADB: ``serial="host:port"`` for TCP, a USB serial (or None) for USB.

    One command at a time per transport (calls are serialised with a lock).
    """

    kind: ClassVar[str] = "adb"

    def __init__(
        self,
        serial: str | None = None,
        key_path: str | Path | None = None,
        auth_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.serial = serial
        self.key_path = Path(key_path).expanduser() if key_path is not None else None
        self.auth_timeout_s = auth_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry = retry or RetryPolicy(attempts=3, base_delay_s=0.2, max_delay_s=2.0)
        self._tcp = _split_serial(serial)
        self._device: Any = None
        self._link: Any = None
        self._lock = threading.RLock()
        self._connected_once = False  # a later connect is a reconnect (logged as one)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "serial": self.serial, "connection": "tcp" if self._tcp else "usb"}

    def clone(self) -> AdbTransport | None:
        """A second, independent connection to the same device (TCP only: a USB interface can
        be claimed once), e.g. to push the next model while this one measures."""
        if self._tcp is None:
            return None
        return AdbTransport(self.serial, key_path=self.key_path, auth_timeout_s=self.auth_timeout_s,
                            connect_timeout_s=self.connect_timeout_s, retry=self.retry)

    # -- connection -------------------------------------------------------------------------
    def _signer(self) -> Any:
        from adb_shell.auth.keygen import keygen
        from adb_shell.auth.sign_cryptography import CryptographySigner

        path = self.key_path or default_adb_key_path()
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # create the file 0600 first so the private key is never readable by others
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            keygen(str(path))
        return CryptographySigner(str(path))

    def connect(self) -> None:
        with self._lock:
            if self._device is not None and self._device.available:
                return
            from adb_shell import exceptions as adb_exc
            from adb_shell.adb_device import AdbDevice

            signer = self._signer()
            if self._tcp is not None:
                self._link = _tcp_link_class()(*self._tcp)
                device = AdbDevice(self._link)
            else:
                device = self._usb_device()
            prompted = []
            start = time.perf_counter()
            try:
                device.connect(
                    rsa_keys=[signer],
                    transport_timeout_s=self.connect_timeout_s,
                    auth_timeout_s=self.auth_timeout_s,
                    read_timeout_s=self.connect_timeout_s,
                    auth_callback=lambda _dev: prompted.append(True),
                )
            except adb_exc.DeviceAuthError as exc:
                device.close()
                raise AuthenticationError(self._auth_message()) from exc
            except (OSError, adb_exc.TcpTimeoutException, adb_exc.AdbTimeoutError,
                    adb_exc.InvalidResponseError, adb_exc.InvalidCommandError,
                    adb_exc.InvalidChecksumError, adb_exc.UsbReadFailedError,
                    adb_exc.UsbWriteFailedError) as exc:
                device.close()
                if prompted:
                    raise AuthenticationError(self._auth_message()) from exc
                raise ConnectionLostError(f"cannot reach ADB device {self.serial}: {exc}") from exc
            self._device = device
            logger.info("%s ADB device %s in %.2f s", "reconnected to" if self._connected_once else "connected to",
                        self.serial or "(USB)", time.perf_counter() - start)
            self._connected_once = True

    def _auth_message(self) -> str:
        key = self.key_path or default_adb_key_path()
        return (
            f"ADB device {self.serial or '(USB)'} has not authorised this computer's key {key}.pub. "
            "Unlock the phone, accept the \"Allow USB debugging\" prompt (tick \"Always allow from "
            "this computer\") and connect again; if no prompt appears, revoke USB debugging "
            "authorisations in Developer options and reconnect."
        )

    def _usb_device(self) -> Any:
        from adb_shell import exceptions as adb_exc
        from adb_shell.adb_device import AdbDeviceUsb

        try:
            return AdbDeviceUsb(serial=self.serial)
        except adb_exc.InvalidTransportError as exc:
            raise TransportError(
                "ADB over USB needs libusb: `pip install 'adb-shell[usb]'` and the libusb-1.0 system "
                "library; or use ADB over TCP (`adb tcpip 5555`, then serial HOST:5555)"
            ) from exc
        except adb_exc.UsbDeviceNotFoundError as exc:
            raise ConnectionLostError(f"no USB ADB device {self.serial or ''} found: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            device, self._device = self._device, None
            if device is not None:
                try:
                    device.close()
                except Exception:  # noqa: BLE001 - closing a dead link must not raise
                    pass

    def _dev(self) -> Any:
        if self._device is None or not self._device.available:
            self.connect()
        return self._device

    def _lost(self, what: str, exc: BaseException) -> ConnectionLostError:
        logger.info("lost ADB device %s during %s: %r", self.serial, what, exc)
        self.close()
        return ConnectionLostError(f"lost ADB device {self.serial} during {what}: {exc!r}")

    def _link_errors(self) -> tuple[type[BaseException], ...]:
        from adb_shell import exceptions as e

        return (OSError, EOFError, e.TcpTimeoutException, e.AdbTimeoutError, e.AdbConnectionError,
                e.InvalidResponseError, e.InvalidCommandError, e.InvalidChecksumError,
                e.UsbReadFailedError, e.UsbWriteFailedError)

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
        line = remote_command_line(argv)
        if stdin is not None:
            if len(stdin) > _MAX_STDIN:
                raise TransportError(f"stdin over ADB is limited to {_MAX_STDIN} bytes; push a file instead")
            line = f"echo {base64.b64encode(stdin).decode()} | base64 -d | {line}"
        if cwd is not None:
            line = f"cd {shlex.quote(cwd)} && {line}"
        marker = f"__BLOXLAT_RC_{secrets.token_hex(8)}__"
        command = f"{line}; printf '\\n{marker}%d\\n' $?"
        tail_re = re.compile(rf"\n{marker}(\d+)\n\Z")
        needle = f"\n{marker}".encode()
        with self._lock:
            start = time.perf_counter()
            device = self._dev()
            buf = bytearray()
            sent = 0
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            if self._link is not None:
                self._link.deadline = None if timeout_s is None else time.monotonic() + timeout_s
            try:
                for chunk in device.streaming_shell(
                    command, transport_timeout_s=None if self._link else timeout_s,
                    read_timeout_s=_NO_TIMEOUT_S, decode=False,
                ):
                    buf += chunk
                    if on_output is not None:
                        safe = _forwardable(buf, needle, sent)
                        if safe > sent:
                            on_output(decoder.decode(bytes(buf[sent:safe])))
                            sent = safe
            except _DeadlineExceeded:
                logger.info("timed out after %s s on ADB device %s, resetting the connection: %s",
                            timeout_s, self.serial, shlex.join(argv))
                self._reset_after_timeout()
                raise CommandTimeoutError(
                    f"command {argv!r} on ADB device {self.serial} did not finish within {timeout_s} s; "
                    "the connection was reset"
                ) from None
            except self._link_errors() as exc:
                raise self._lost(f"command {argv!r}", exc) from exc
            finally:
                if self._link is not None:
                    self._link.deadline = None
            text = bytes(buf)
            match = tail_re.search(text.decode("utf-8", "replace"))
            if match is None:
                raise TransportError(
                    f"command {argv!r} on ADB device {self.serial} ended without its exit-status "
                    f"marker; output tail: {text[-500:].decode('utf-8', 'replace')!r}"
                )
            output = text.decode("utf-8", "replace")[: match.start()]
            if on_output is not None:
                end = text.rfind(needle)
                rest = decoder.decode(bytes(buf[sent:end]), final=True) if end > sent else ""
                if rest:
                    on_output(rest)
            status, duration_s = int(match.group(1)), time.perf_counter() - start
            logger.debug("exit %d in %.3f s on ADB device %s: %s", status, duration_s, self.serial, shlex.join(argv))
            return CommandResult(argv=argv, exit_status=status, stdout=output, stderr="", duration_s=duration_s)

    def _reset_after_timeout(self) -> None:
        """adb-shell keeps the abandoned stream's packets: reconnect to get a clean link."""
        self.close()
        try:
            self.connect()
        except ConnectionLostError:
            pass  # the next call reconnects

    # -- files ------------------------------------------------------------------------------
    def push(self, local: Path, remote: str) -> None:
        """Push with the sync protocol; a dropped connection is retried (adbd deletes partial files)."""
        local = Path(local)
        if not local.is_file():
            raise TransportError(f"cannot push {local}: no such file")
        start = time.perf_counter()
        self._file_op(lambda dev: dev.push(str(local), remote, read_timeout_s=_NO_TIMEOUT_S), f"push {local} -> {remote}")
        logger.debug("pushed %s -> ADB device %s:%s (%d bytes) in %.3f s", local, self.serial, remote,
                     local.stat().st_size, time.perf_counter() - start)

    def exists(self, remote_path: str) -> bool:
        """The sync protocol's STAT (mode 0 = missing): cheaper than a shell round trip."""
        found: list[bool] = []
        self._file_op(lambda dev: found.append(dev.stat(remote_path, read_timeout_s=_NO_TIMEOUT_S)[0] != 0), f"stat {remote_path}")
        return found[0]

    def pull(self, remote: str, local: Path) -> None:
        local = Path(local)
        if not local.parent.is_dir():
            raise TransportError(f"cannot pull into {local}: {local.parent} is not a directory")
        part = local.with_name(f".{local.name}.part")
        try:
            start = time.perf_counter()
            self._file_op(lambda dev: dev.pull(remote, str(part), read_timeout_s=_NO_TIMEOUT_S), f"pull {remote} -> {local}")
            part.replace(local)
            logger.debug("pulled ADB device %s:%s -> %s (%d bytes) in %.3f s", self.serial, remote, local,
                         local.stat().st_size, time.perf_counter() - start)
        finally:
            part.unlink(missing_ok=True)

    def _file_op(self, op: Callable[[Any], object], what: str) -> None:
        from adb_shell import exceptions as adb_exc

        last: ConnectionLostError | None = None
        with self._lock:
            for attempt in range(self.retry.attempts):
                if attempt:
                    logger.info("retrying %s on ADB device %s (attempt %d of %d) after: %s", what, self.serial,
                                attempt + 1, self.retry.attempts, last)
                    time.sleep(self.retry.delay_s(attempt - 1))
                try:
                    op(self._dev())
                    return
                except (adb_exc.AdbCommandFailureException, adb_exc.PushFailedError) as exc:
                    raise TransportError(f"{what} on ADB device {self.serial} failed: {exc}") from exc
                except ConnectionLostError as exc:
                    last = exc
                except self._link_errors() as exc:
                    last = self._lost(what, exc)
        assert last is not None
        raise last
