"""How blox-lat talks to a machine: run a command, copy files, reconnect after a drop.

A :class:`Transport` is the only thing the harness knows about a device's link. Three
implementations exist (``local``, ``ssh``, ``adb``); they share these rules:

- Commands are argument lists. Remote transports build the command line by quoting *every*
  element with :func:`shlex.quote` (and ``cd <quoted cwd> &&``), so a path with spaces or ``;``
  arrives verbatim and nothing is ever re-split by a shell on our side.
- A command's exit status is data (:class:`CommandResult`); :meth:`CommandResult.check` turns a
  non-zero status into :class:`CommandFailedError` carrying the output tail.
- Link failures are typed: :class:`ConnectionLostError` (retry after reconnecting, see
  :func:`with_reconnect`), :class:`AuthenticationError` / :class:`HostKeyError` (the user must act;
  retrying cannot help), :class:`CommandTimeoutError`.

Timing inferences across a round trip is wrong (SPEC section 5: ~100 ms per SSH command); the
transport only moves artefacts and launches runners that time themselves on the device.
"""

from __future__ import annotations

import abc
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from blox_lat.errors import BloxLatError

__all__ = [
    "AuthenticationError",
    "CommandFailedError",
    "CommandResult",
    "CommandTimeoutError",
    "ConnectionLostError",
    "HostKeyError",
    "RetryPolicy",
    "Transport",
    "TransportError",
    "remote_command_line",
    "with_reconnect",
]

_TAIL_CHARS = 2000


class TransportError(BloxLatError):
    """A command could not be run or a file could not be moved on the device."""


class CommandFailedError(TransportError):
    """A remote command exited with a non-zero status; ``result`` holds its full output."""

    def __init__(self, message: str, result: CommandResult) -> None:
        super().__init__(message)
        self.result = result


class AuthenticationError(TransportError):
    """The device refused our key. Retrying cannot help; the message says what to do."""


class HostKeyError(TransportError):
    """The SSH server's host key is unknown or has changed (possible man in the middle)."""


class ConnectionLostError(TransportError):
    """The link dropped or the peer cannot be reached now; reconnecting may help."""


class CommandTimeoutError(TransportError):
    """A command ran past its timeout and was killed (remote: its connection was reset)."""


def _tail(text: str, limit: int = _TAIL_CHARS) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


@dataclass(frozen=True)
class CommandResult:
    """What one command did: argv, exit status, decoded output and wall time (seconds)."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> CommandResult:
        """Return self, or raise :class:`CommandFailedError` with the output tail."""
        if self.exit_status != 0:
            parts = [f"command {shlex.join(self.argv)!r} exited with status {self.exit_status}"]
            if self.stdout.strip():
                parts.append("stdout tail:\n" + _tail(self.stdout.rstrip()))
            if self.stderr.strip():
                parts.append("stderr tail:\n" + _tail(self.stderr.rstrip()))
            raise CommandFailedError("\n".join(parts), self)
        return self


def remote_command_line(argv: Sequence[str], cwd: str | None = None) -> str:
    """The POSIX shell command line that runs ``argv`` verbatim (optionally in ``cwd``).

    Every element is quoted, so ``["echo", "a b; rm -rf x"]`` prints ``a b; rm -rf x`` and
    runs nothing else.
    """
    if not argv:
        raise TransportError("cannot run an empty command: argv must name a program")
    line = shlex.join(str(a) for a in argv)
    if cwd is not None:
        line = f"cd {shlex.quote(cwd)} && {line}"
    return line


_SHA256_RE = re.compile(r"\A([0-9a-f]{64})(?:\s|\Z)")


class Transport(abc.ABC):
    """A link to one machine. Use as a context manager: ``with transport: transport.run(...)``."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the link (idempotent: connecting an open transport does nothing)."""

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        cwd: str | None = None,
        on_output: Callable[[str], None] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``argv`` and wait for it.

        ``on_output`` receives decoded output chunks as they arrive (stdout and stderr; ADB's
        legacy shell merges them anyway). A non-zero exit is returned, not raised: call
        :meth:`CommandResult.check`. Raises :class:`CommandTimeoutError` past ``timeout_s``.
        """

    @abc.abstractmethod
    def push(self, local: Path, remote: str) -> None:
        """Copy the local file ``local`` to the remote file path ``remote`` (parents must exist)."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> None:
        """Copy the remote file ``remote`` to the local file path ``local``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the link (idempotent). A later :meth:`connect` reopens it."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the link, e.g. ``{"kind": "ssh", "host": ..., "port": ...}``."""

    #: whether :meth:`start` can keep a process open (see :mod:`blox_lat.devices._process`)
    supports_processes: ClassVar[bool] = False

    def start(self, argv: Sequence[str], *, cwd: str | None = None) -> Any:
        """Start ``argv`` and return a :class:`~blox_lat.devices._process.RemoteProcess`."""
        raise TransportError(f"{type(self).__name__} cannot keep a process open; use run()")

    # -- helpers built on run() -------------------------------------------------------------
    def mkdir_p(self, remote_dir: str) -> None:
        """Create ``remote_dir`` and its parents (``mkdir -p``)."""
        self.run(["mkdir", "-p", "--", remote_dir]).check()

    def exists(self, remote_path: str) -> bool:
        """Whether ``remote_path`` exists (``test -e``: status 0 yes, 1 no, else an error)."""
        result = self.run(["test", "-e", remote_path])
        if result.exit_status in (0, 1):
            return result.exit_status == 0
        result.check()
        return False  # pragma: no cover - check() raised

    def sha256(self, remote_path: str) -> str:
        """The SHA-256 hex digest of a remote file (``sha256sum``, present in toybox too)."""
        result = self.run(["sha256sum", "--", remote_path]).check()
        match = _SHA256_RE.match(result.stdout)
        if match is None:
            raise TransportError(
                f"unexpected sha256sum output for {remote_path!r}: {_tail(result.stdout, 300)!r}"
            )
        return match.group(1)

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({fields})"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to reconnect: delays ``base * 2**i`` capped at ``max``."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay_s(self, retry_index: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * (2**retry_index))


T = TypeVar("T")
TransportT = TypeVar("TransportT", bound=Transport)


def with_reconnect(
    transport: TransportT,
    fn: Callable[[TransportT], T],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn(transport)``; on :class:`ConnectionLostError` close, back off, reconnect, retry.

    Only a lost connection is retried: a failed command, a timeout or an authentication problem
    is the caller's business. ``fn`` must therefore be safe to repeat (push, run a runner that
    writes its result file atomically, pull). A reconnect that itself fails with
    :class:`ConnectionLostError` (the peer is still down) uses up one attempt. The last
    :class:`ConnectionLostError` is re-raised when the attempts are exhausted.
    """
    policy = policy or RetryPolicy()
    last: ConnectionLostError | None = None
    for attempt in range(policy.attempts):
        if attempt:
            sleep(policy.delay_s(attempt - 1))
            try:
                transport.close()
                transport.connect()
            except ConnectionLostError as exc:
                last = exc
                continue
        try:
            return fn(transport)
        except ConnectionLostError as exc:
            last = exc
    assert last is not None
    raise ConnectionLostError(
        f"{last} (gave up after {policy.attempts} attempts on {transport!r})"
    ) from last
