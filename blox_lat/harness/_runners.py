"""Runners: the seam between a campaign and a device.

A :class:`Runner` takes an artifact, the device profile and the timing protocol and returns
raw samples timed on the device (:class:`~blox_lat.harness._timing.RawRun`). A model that
cannot be measured raises :class:`ModelFailedError` (load error, crash, timeout): the campaign
records that model as failed and goes on.

- :class:`LocalWorkerRunner`: the local fast path. One persistent worker process
  (``python -m blox_lat.harness._worker --serve``) per campaign; if a model crashes it or runs
  past the timeout, the worker is killed, the model fails, and the next model gets a fresh worker.
- :class:`TransportRunner`: any :class:`~blox_lat.devices.Transport` (local, ssh, adb hosts
  with Python): push the artifact, run the one-shot worker with the request on stdin. This is
  how remote devices plug in; it is exercised here over ``LocalTransport``.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from blox_lat.errors import BloxLatError
from blox_lat.harness._protocol import TimingProtocol
from blox_lat.harness._timing import RawRun, get_runtime

__all__ = [
    "LocalWorkerRunner",
    "ModelFailedError",
    "ModelTimeoutError",
    "Runner",
    "RunnerUnavailableError",
    "TransportRunner",
    "WorkerCrashedError",
    "build_request",
    "get_runner",
]

WORKER_MODULE = "blox_lat.harness._worker"
DEFAULT_TIMEOUT_S = 600.0


class ModelFailedError(BloxLatError):
    """This model could not be measured; ``reason`` goes into the journal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelTimeoutError(ModelFailedError):
    """The model ran past the runner's timeout; its worker was killed."""


class WorkerCrashedError(ModelFailedError):
    """The worker process died while measuring (segfault, OOM kill...)."""


class RunnerUnavailableError(BloxLatError):
    """No runner can drive this profile here (remote transport not wired, runtime missing)."""


@runtime_checkable
class Runner(Protocol):
    """Times artifacts on one device. Close it when the campaign ends."""

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def build_request(artifact_path: str, profile: Any, protocol: TimingProtocol,
                  affinity: Sequence[int] | None = None) -> dict[str, Any]:
    """The worker request for one model (JSON-able)."""
    spec = get_runtime(profile.runtime)
    options = {**spec.options, **dict(profile.options)}
    return {
        "op": "measure",
        "runtime": profile.runtime,
        "artifact_path": artifact_path,
        "options": options,
        "batch": profile.batch,
        "input_size": profile.input_size,
        "affinity": list(affinity) if affinity is not None else options.get("affinity"),
        "protocol": protocol.identity(),
    }


def _parse_answer(text: str, what: str) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        raise ModelFailedError(f"{what} answered something that is not JSON: {text[-300:]!r}") from None
    if not answer.get("ok"):
        raise ModelFailedError(str(answer.get("error", "worker reported an unknown error")))
    return answer


class LocalWorkerRunner:
    """Measure in a persistent local worker process; one crash or hang fails one model."""

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        affinity: Sequence[int] | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.timeout_s = float(timeout_s)
        self.affinity = list(affinity) if affinity is not None else None
        self._python = python
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._buffer = b""
        self.workers_started = 0

    # -- worker lifecycle ----------------------------------------------------------------------
    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stderr_tail.clear()
        self._buffer = b""
        try:
            proc = subprocess.Popen(
                [self._python, "-m", WORKER_MODULE, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=True,  # Ctrl-C reaches us, not the worker; we stop it
            )
        except OSError as exc:
            raise RunnerUnavailableError(f"cannot start the worker with {self._python!r}: {exc}") from exc
        threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True).start()
        self._proc = proc
        self.workers_started += 1
        return proc

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            self._stderr_tail.append(raw.decode("utf-8", "replace").rstrip())
        proc.stderr.close()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()  # no-op when it already exited (Popen checks and reaps)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._kill()
        self._kill()

    def __enter__(self) -> LocalWorkerRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------
    def _ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            raise self._crashed() from None
        line = self._read_line(proc, time.monotonic() + timeout_s)
        if line is None:
            self._kill()
            raise ModelTimeoutError(f"timed out after {timeout_s:g} s (worker killed)")
        if line == b"":
            raise self._crashed()
        return _parse_answer(line.decode("utf-8", "replace"), "the worker")

    def _read_line(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes | None:
        """One answer line; b'' on EOF (worker died), None past the deadline."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return b""
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _crashed(self) -> WorkerCrashedError:
        proc = self._proc
        status = proc.wait() if proc is not None else None
        time.sleep(0.05)  # let the stderr drain thread catch the last lines
        self._kill()
        if status is not None and status < 0:
            how = f"killed by signal {signal.Signals(-status).name}"
        else:
            how = f"exited with status {status}"
        tail = " | ".join(list(self._stderr_tail)[-5:])
        return WorkerCrashedError(f"worker crashed ({how})" + (f": {tail}" if tail else ""))

    def probe(self) -> dict[str, Any]:
        return self._ask({"op": "probe"}, timeout_s=120.0)["facts"]

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        request = build_request(str(Path(artifact.path).resolve()), profile, protocol, self.affinity)
        answer = self._ask(request, self.timeout_s)
        return RawRun.from_dict(answer["raw"])

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def describe(self) -> dict[str, Any]:
        return {"runner": "local-worker", "python": self._python, "timeout_s": self.timeout_s,
                "affinity": self.affinity}


class TransportRunner:
    """Measure through a :class:`~blox_lat.devices.Transport`: push, then run the one-shot worker.

    The device needs Python with blox-lat and the runtime installed (``python`` names the
    interpreter there). Artifacts go to ``workdir`` on the device, named by their sha256, and
    are pushed only once.
    """

    def __init__(self, transport: Any, *, workdir: str, python: str = "python3",
                 timeout_s: float = DEFAULT_TIMEOUT_S, affinity: Sequence[int] | None = None) -> None:
        self.transport = transport
        self.workdir = workdir.rstrip("/")
        self.python = python
        self.timeout_s = float(timeout_s)
        self.affinity = list(affinity) if affinity is not None else None
        self._pushed: set[str] = set()

    def _remote_path(self, artifact: Any) -> str:
        suffix = Path(artifact.path).suffix
        return f"{self.workdir}/{artifact.sha256}{suffix}"

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        from blox_lat.devices._transport import CommandTimeoutError, TransportError

        remote = self._remote_path(artifact)
        request = build_request(remote, profile, protocol, self.affinity)
        try:
            self.transport.connect()
            if remote not in self._pushed:
                self.transport.mkdir_p(self.workdir)
                self.transport.push(Path(artifact.path), remote)
                self._pushed.add(remote)
            result = self.transport.run(
                [self.python, "-m", WORKER_MODULE],
                timeout_s=self.timeout_s,
                stdin=(json.dumps(request) + "\n").encode(),
            )
        except CommandTimeoutError:
            raise ModelTimeoutError(f"timed out after {self.timeout_s:g} s on the device") from None
        except TransportError as exc:
            raise ModelFailedError(f"transport error: {' '.join(str(exc).split())[:500]}") from None
        lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
        if result.exit_status != 0 or not lines:
            tail = " | ".join(result.stderr.strip().splitlines()[-5:])
            raise WorkerCrashedError(f"worker exited with status {result.exit_status}: {tail}")
        return RawRun.from_dict(_parse_answer(lines[-1], "the device worker")["raw"])

    def describe(self) -> dict[str, Any]:
        return {"runner": "transport", "transport": self.transport.describe(),
                "python": self.python, "workdir": self.workdir, "timeout_s": self.timeout_s}

    def close(self) -> None:
        self.transport.close()


def get_runner(profile: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S,
               affinity: Sequence[int] | None = None) -> Runner:
    """The runner for a profile on this host."""
    spec = get_runtime(profile.runtime)
    if profile.transport == "local":
        if not spec.local:
            raise RunnerUnavailableError(
                f"device {profile.name!r}: runtime {profile.runtime!r} cannot run locally; "
                "use a profile with runtime 'onnxruntime' or 'torchscript'"
            )
        return LocalWorkerRunner(timeout_s=timeout_s, affinity=affinity)
    raise RunnerUnavailableError(
        f"device {profile.name!r} uses the {profile.transport!r} transport with runtime "
        f"{profile.runtime!r}; remote campaigns are not wired into 'blox-lat measure' yet: "
        "measure on a local profile (cpu, cpu-int8, cpu-torchscript) or build a "
        "blox_lat.harness.TransportRunner in Python"
    )
