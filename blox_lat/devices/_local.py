"""The host itself as a device: subprocess with argument lists, copies for push/pull.

Used for the desktop-GPU protocol (SPEC section 2) and as the reference implementation the
remote transports are tested against. The command runs in its own session so that a timeout
kills the whole process group (a runner's children included), not just the direct child.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from blox_lat.devices._transport import (
    CommandResult,
    CommandTimeoutError,
    Transport,
    TransportError,
)

__all__ = ["LocalTransport"]

logger = logging.getLogger(__name__)


def _pump(stream: IO[bytes], sink: list[bytes], on_output: Callable[[str], None] | None) -> None:
    """Copy a pipe into ``sink`` chunk by chunk, forwarding decoded chunks to ``on_output``."""
    for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
        sink.append(chunk)
        if on_output is not None:
            on_output(chunk.decode("utf-8", "replace"))
    stream.close()


class LocalTransport(Transport):
    """Run commands on this machine. ``connect``/``close`` only track state."""

    kind: ClassVar[str] = "local"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._env = env
        self._open = False

    def connect(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

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
        if not argv:
            raise TransportError("cannot run an empty command: argv must name a program")
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]!r}: {exc}") from exc
        out: list[bytes] = []
        err: list[bytes] = []
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, out, on_output), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err, on_output), daemon=True),
        ]
        for t in pumps:
            t.start()
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the command exited without reading its input; its status says why
        try:
            status = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            for t in pumps:
                t.join(timeout=2)
            logger.info("timed out after %s s, killed: %s", timeout_s, shlex.join(argv))
            raise CommandTimeoutError(
                f"command {argv!r} did not finish within {timeout_s} s and was killed"
            ) from None
        for t in pumps:
            t.join()
        duration_s = time.perf_counter() - start
        logger.debug("exit %d in %.3f s: %s", status, duration_s, shlex.join(argv))
        return CommandResult(
            argv=argv,
            exit_status=status,
            stdout=b"".join(out).decode("utf-8", "replace"),
            stderr=b"".join(err).decode("utf-8", "replace"),
            duration_s=duration_s,
        )

    supports_processes: ClassVar[bool] = True
    #: pushes may run on another thread while a command runs (separate channels)
    concurrent_ops: ClassVar[bool] = True

    def start(self, argv: Sequence[str], *, cwd: str | None = None) -> Any:
        from blox_lat.devices._process import LocalProcess

        return LocalProcess([str(a) for a in argv], cwd, self._env)

    def push(self, local: Path, remote: str) -> None:
        _copy(Path(local), Path(remote))

    def pull(self, remote: str, local: Path) -> None:
        _copy(Path(remote), Path(local))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _copy(src: Path, dst: Path) -> None:
    """Copy via a temporary name + rename so a reader never sees half a file."""
    if not src.is_file():
        raise TransportError(f"cannot copy {src}: no such file")
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        logger.debug("copied %s -> %s (%d bytes)", src, dst, dst.stat().st_size)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TransportError(f"cannot copy {src} to {dst}: {exc}") from exc
