"""Long-lived processes on a device: one interpreter per campaign instead of one per model.

Starting a Python interpreter and opening an SSH exec channel each cost ~40-170 ms, paid per
model by a one-shot runner. A transport that can keep a process open (:attr:`Transport.
supports_processes`: local and SSH; adb-shell has no public stdin for shell streams) returns a
:class:`RemoteProcess` from ``start(argv)``: lines go in on its stdin and come back on its
stdout, so the runner worker (``--serve``) answers one request per model with no start-up.
"""

from __future__ import annotations

import abc
import os
import select
import signal
import subprocess
import time

from blox_lat.devices._transport import CommandTimeoutError, TransportError

__all__ = ["LocalProcess", "RemoteProcess"]


class RemoteProcess(abc.ABC):
    """A started process: ``send`` bytes to stdin, ``read_line`` from stdout, ``kill``."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @abc.abstractmethod
    def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def _recv(self, timeout_s: float) -> bytes | None:
        """Up to 64 KiB of stdout; ``b""`` at EOF; ``None`` when nothing came within timeout."""

    @abc.abstractmethod
    def alive(self) -> bool: ...

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the process for sure (a model that hangs must not keep the device busy)."""

    @abc.abstractmethod
    def stderr_tail(self) -> str: ...

    def read_line(self, timeout_s: float | None) -> str:
        """The next stdout line; :class:`CommandTimeoutError` past ``timeout_s``,
        :class:`TransportError` if the process ended first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            chunk = self._recv(wait)
            if chunk == b"":
                raise TransportError(f"the process ended: {self.stderr_tail() or '(no output)'}")
            if chunk:
                self._buf += chunk
            elif deadline is not None and time.monotonic() >= deadline:
                raise CommandTimeoutError(f"no answer within {timeout_s} s")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line.decode("utf-8", "replace")


class LocalProcess(RemoteProcess):
    def __init__(self, argv: list[str], cwd: str | None, env: dict[str, str] | None) -> None:
        super().__init__()
        try:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]!r}: {exc}") from exc
        os.set_blocking(self.proc.stderr.fileno(), False)  # type: ignore[union-attr]
        self._err = bytearray()

    def send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError) as exc:
            raise TransportError(f"the process ended: {self.stderr_tail()}") from exc

    def _recv(self, timeout_s: float) -> bytes | None:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return os.read(fd, 65536) if ready else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        try:
            self._err += self.proc.stderr.read() or b""  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass
        return " | ".join(self._err.decode("utf-8", "replace").strip().splitlines()[-5:])

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass

