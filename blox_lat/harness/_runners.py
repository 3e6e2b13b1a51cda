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
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from blox_lat.errors import BloxLatError
from blox_lat.harness._protocol import TimingProtocol
from blox_lat.harness._timing import RawRun, get_runtime

__all__ = [
    "CoolsDown",
    "LocalWorkerRunner",
    "MeasuresMany",
    "ModelFailedError",
    "ModelTimeoutError",
    "Prefetching",
    "Probing",
    "ProfilesLayers",
    "ReportsRounds",
    "ResumesRounds",
    "Runner",
    "RunnerUnavailableError",
    "TransportRunner",
    "WorkerCrashedError",
    "DeviceLostError",
    "ThermalGuard",
    "ThermalWait",
    "build_request",
]

logger = logging.getLogger(__name__)

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


# optional capabilities a campaign uses when a runner has them (checked with isinstance)


@runtime_checkable
class Probing(Protocol):
    """Reports the device's own facts (versions, pid...) for the environment record."""

    def probe(self) -> dict[str, Any]: ...


@runtime_checkable
class ProfilesLayers(Protocol):
    """Profiles one artifact: load time, first inference, peak memory, the protocol's samples
    and per-layer times (the worker's ``profile`` answer, see ``harness._layerprof``)."""

    def profile_layers(self, artifact: Any, profile: Any, protocol: TimingProtocol, runs: int) -> dict[str, Any]: ...


@runtime_checkable
class Prefetching(Protocol):
    """Copies the next artifact to the device while the current one is measured."""

    def prefetch(self, artifact: Any) -> None: ...


@runtime_checkable
class MeasuresMany(Protocol):
    """Times several artifacts together, interleaved as the protocol says; one failure fails
    the set (a campaign then measures its models one at a time)."""

    def measure_many(self, artifacts: Sequence[Any], profile: Any, protocol: TimingProtocol) -> list[RawRun]: ...


@runtime_checkable
class ReportsRounds(Protocol):
    """``measure_many`` takes ``on_round(done, rounds)`` when ``reports_rounds`` is true."""

    reports_rounds: bool

    def measure_many(self, artifacts: Sequence[Any], profile: Any, protocol: TimingProtocol,
                     on_round: Callable[[int, int], None] | None = None) -> list[RawRun]: ...


@runtime_checkable
class ResumesRounds(Protocol):
    """``measure_many`` also takes ``start_round`` and ``on_round_raws(done, rounds, raws)`` when
    ``resumes_rounds`` is true: a campaign keeps each finished round and resumes a killed set."""

    resumes_rounds: bool

    def measure_many(self, artifacts: Sequence[Any], profile: Any, protocol: TimingProtocol,
                     on_round: Callable[[int, int], None] | None = None, *, start_round: int = 0,
                     on_round_raws: Callable[[int, int, list[RawRun]], None] | None = None) -> list[RawRun]: ...


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


def _progress_of(line: bytes) -> dict[str, Any] | None:
    """The payload of a worker's progress line, None for any other line (an answer)."""
    if not line.startswith(b'{"progress":'):
        return None
    try:
        progress = json.loads(line)["progress"]
        told = {"round": int(progress["round"]), "rounds": int(progress["rounds"])}
        if "raws" in progress:
            told["raws"] = [RawRun.from_dict(r) for r in progress["raws"]]
        return told
    except (ValueError, KeyError, TypeError):
        return None  # then it is parsed, and rejected, as an answer


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
        self._busy = False  # a request is in flight (an interrupt left it unanswered)
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
        logger.info("started worker pid %d (%s -m %s --serve)", proc.pid, self._python, WORKER_MODULE)
        return proc

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            self._stderr_tail.append(raw.decode("utf-8", "replace").rstrip())
        proc.stderr.close()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        self._busy = False
        if proc is None:
            return
        proc.kill()  # no-op when it already exited (Popen checks and reaps)
        status = proc.wait()
        logger.debug("worker pid %d stopped (status %d)", proc.pid, status)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Let an idle worker exit; kill one still timing (Ctrl-C mid-set must not wait for it)."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None and not self._busy:
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
    def _ask(self, request: dict[str, Any], timeout_s: float,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Send ``request``, return its answer; progress lines before it go to ``on_progress``
        (the deadline covers the whole exchange)."""
        if self._busy:  # an interrupted request's answer would be read as this one's
            self._kill()
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        self._busy = True
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            raise self._crashed() from None
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_line(proc, deadline)
            if line is None:
                logger.info("worker pid %d timed out after %g s; killing it", proc.pid, timeout_s)
                self._kill()
                raise ModelTimeoutError(f"timed out after {timeout_s:g} s (worker killed)")
            if line == b"":
                raise self._crashed()
            progress = _progress_of(line)
            if progress is not None:
                if on_progress is not None:
                    on_progress(progress)
                continue
            self._busy = False
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
        logger.info("worker crashed (%s)%s", how, f": {tail}" if tail else "")
        return WorkerCrashedError(f"worker crashed ({how})" + (f": {tail}" if tail else ""))

    def probe(self) -> dict[str, Any]:
        return self._ask({"op": "probe"}, timeout_s=120.0)["facts"]

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        request = build_request(str(Path(artifact.path).resolve()), profile, protocol, self.affinity)
        answer = self._ask(request, self.timeout_s)
        return RawRun.from_dict(answer["raw"])

    def profile_layers(self, artifact: Any, profile: Any, protocol: TimingProtocol, runs: int) -> dict[str, Any]:
        """The worker's ``profile`` answer for one artifact (``runs`` profiled runs), from a
        fresh worker: its load time and peak memory owe nothing to an earlier model."""
        request = {**build_request(str(Path(artifact.path).resolve()), profile, protocol, self.affinity),
                   "op": "profile", "profile_runs": int(runs)}
        self.close()
        try:
            return dict(self._ask(request, self.timeout_s)["profile"])
        finally:
            self.close()

    #: ``measure_many`` takes ``on_round`` (campaigns check this; other runners' sets are silent)
    reports_rounds = True
    #: ``measure_many`` takes ``start_round`` and ``on_round_raws``: a campaign keeps each
    #: finished round and resumes a set after a kill
    resumes_rounds = True

    def measure_many(self, artifacts: Sequence[Any], profile: Any, protocol: TimingProtocol,
                     on_round: Callable[[int, int], None] | None = None, *, start_round: int = 0,
                     on_round_raws: Callable[[int, int, list[RawRun]], None] | None = None) -> list[RawRun]:
        """Time ``artifacts`` together in one worker, interleaved as ``protocol`` says; one
        failure (crash, hang, load error) fails the whole set: callers fall back to
        :meth:`measure` per model to find the culprit. ``on_round(done, rounds)`` hears each
        finished round, ``on_round_raws(done, rounds, raws)`` gets its samples first.
        ``start_round`` skips the rounds a resumed set already has: the answer then holds only
        the later rounds' samples."""
        request = build_request("", profile, protocol, self.affinity)
        del request["artifact_path"]
        request["op"] = "measure-many"
        request["artifact_paths"] = [str(Path(a.path).resolve()) for a in artifacts]
        if start_round:
            request["start_round"] = int(start_round)
        if on_round is not None or on_round_raws is not None:
            request["progress"] = True
        if on_round_raws is not None:
            request["round_samples"] = True

        def heard(progress: dict[str, Any]) -> None:
            if on_round_raws is not None and "raws" in progress:
                on_round_raws(progress["round"], progress["rounds"], progress["raws"])
            if on_round is not None:
                on_round(progress["round"], progress["rounds"])

        answer = self._ask(request, self.timeout_s * len(artifacts), heard)
        raws = [RawRun.from_dict(r) for r in answer["raws"]]
        if len(raws) != len(artifacts):
            raise ModelFailedError(f"the worker timed {len(raws)} of {len(artifacts)} models")
        return raws

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def describe(self) -> dict[str, Any]:
        return {"runner": "local-worker", "python": self._python, "timeout_s": self.timeout_s,
                "affinity": self.affinity}


class DeviceLostError(ModelFailedError):
    """The device stopped answering (the link stayed down through every reconnect attempt).

    Not the model's fault: a single-device campaign records the model as failed (a rerun
    retries it); a device farm hands the model to another device.
    """


class TransportRunner:
    """Measure through a :class:`~blox_lat.devices.Transport` with the self-contained runner.

    The device needs a Python interpreter (``python``) with the runtime (torch, or onnxruntime
    and numpy) only: the runner bundle (:mod:`blox_lat.harness._bundle`) and the artifacts are
    pushed to ``workdir``, named by their sha256, once. Where the transport can keep a process
    open (SSH, local) one ``--serve`` worker answers every model of the campaign over its
    stdin/stdout (``persistent``); elsewhere (ADB) each model is one command with the request on
    stdin. Inferences are timed inside that remote process and the host applies the protocol.
    :meth:`prefetch` pushes the next artifact while the device measures. A lost link is
    reconnected with back-off (``retry``); a link that stays down raises :class:`DeviceLostError`.
    """

    def __init__(self, transport: Any, *, workdir: str, python: str = "python3",
                 timeout_s: float = DEFAULT_TIMEOUT_S, affinity: Sequence[int] | None = None,
                 retry: Any = None, persistent: bool = True) -> None:
        from blox_lat.devices import RetryPolicy

        self.transport = transport
        self.workdir = workdir.rstrip("/") or "/"
        self.python = python
        self.timeout_s = float(timeout_s)
        self.affinity = list(affinity) if affinity is not None else None
        self.retry = retry or RetryPolicy(attempts=6, base_delay_s=0.5, max_delay_s=8.0)
        self._present: set[str] = set()
        self._workdir_made = False
        self.persistent = persistent
        self._proc: Any = None
        self._prefetching: dict[str, threading.Thread] = {}
        self._second: Any = None

    def _remote_path(self, artifact: Any) -> str:
        suffix = Path(artifact.path).suffix
        return f"{self.workdir}/{artifact.sha256}{suffix}"

    def _ensure(self, local: Path, remote: str, transport: Any = None) -> None:
        """Push ``local`` to ``remote`` unless it is there. Transports never leave a truncated
        file under the final name (SSH uploads to ``.part`` and renames; adbd deletes a
        partial sync file), so existence means complete."""
        pending = self._prefetching.pop(remote, None)
        if pending is not None and pending is not threading.current_thread():
            pending.join()
        if remote in self._present:
            return
        t = transport or self.transport
        if not t.exists(remote):
            if not self._workdir_made:
                t.mkdir_p(self.workdir)
                self._workdir_made = True
            t.push(Path(local), remote)
        self._present.add(remote)

    def prefetch(self, artifact: Any) -> None:
        """Start pushing the *next* model's artifact while the device measures this one.

        Runs on the same link when the transport allows concurrent operations (SSH channels,
        local), on a second connection when it can open one (ADB over TCP), else not at all.
        A failed prefetch is forgotten: the push is simply done again when the model comes.
        """
        remote = self._remote_path(artifact)
        if remote in self._present or remote in self._prefetching:
            return
        pusher = self._pusher()
        if pusher is None:
            return

        def push() -> None:
            try:
                pusher.connect()
                self._ensure(Path(artifact.path), remote, pusher)
            except Exception:  # noqa: BLE001 - retried in the foreground, with its error
                pass

        thread = threading.Thread(target=push, name="blox-lat-prefetch", daemon=True)
        self._prefetching[remote] = thread
        thread.start()

    def _pusher(self) -> Any:
        if getattr(self.transport, "concurrent_ops", False):
            return self.transport
        if self._second is None:
            clone = getattr(self.transport, "clone", None)
            self._second = clone() if callable(clone) else False
        return self._second or None

    def _bundle_path(self) -> str:
        from blox_lat.harness._bundle import runner_bundle

        bundle = runner_bundle()
        remote = f"{self.workdir}/{bundle.remote_name}"
        self._ensure(bundle.path, remote)
        return remote

    def _ask_served(self, t: Any, runner: str, request: dict[str, Any]) -> str:
        """One request to the long-lived ``--serve`` worker (started on first use)."""
        from blox_lat.devices import CommandTimeoutError, ConnectionLostError, TransportError

        if self._proc is None or not self._proc.alive():
            self._drop_proc()
            self._proc = t.start([self.python, runner, "--serve"], cwd=self.workdir)
            logger.info("started the device worker (%s %s --serve in %s)", self.python, runner, self.workdir)
        proc = self._proc
        try:
            proc.send((json.dumps(request) + "\n").encode())
            while True:
                line = proc.read_line(self.timeout_s)
                if line.strip().startswith("{"):
                    return line
        except ConnectionLostError:
            self._proc = None
            raise
        except CommandTimeoutError:
            logger.info("the device worker timed out after %g s; stopping it", self.timeout_s)
            self._drop_proc()
            raise
        except TransportError:
            tail = proc.stderr_tail()
            logger.info("the device worker died: %s", tail or "(no output)")
            self._drop_proc()
            # the worker's end can be the first sign of a dying link (its session killed with
            # the server): prove the link before blaming the model
            t.run(["true"], timeout_s=30.0)
            raise WorkerCrashedError(f"runner process died: {tail or '(no output)'}") from None

    def _drop_proc(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
            except Exception:  # noqa: BLE001 - the link may be gone with it
                pass
            self._proc = None

    def _call(self, request: dict[str, Any], what: str, artifact: Any = None) -> dict[str, Any]:
        from blox_lat.devices import (
            AuthenticationError,
            CommandTimeoutError,
            ConnectionLostError,
            HostKeyError,
            TransportError,
            with_reconnect,
        )

        def attempt(t: Any) -> str:
            t.connect()
            runner = self._bundle_path()
            if artifact is not None:
                self._ensure(Path(artifact.path), request["artifact_path"])
            if self.persistent and t.supports_processes:
                return self._ask_served(t, runner, request)
            result = t.run([self.python, runner], timeout_s=self.timeout_s,
                           stdin=(json.dumps(request) + "\n").encode())
            lines = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("{")]
            if result.exit_status != 0 or not lines:
                output = (result.stderr or result.stdout).strip().splitlines()[-5:]
                raise WorkerCrashedError(f"runner exited with status {result.exit_status}: {' | '.join(output)}")
            return lines[-1]

        try:
            line = with_reconnect(self.transport, attempt, self.retry)
        except (AuthenticationError, HostKeyError):
            raise  # not the model's fault and not transient: the user must fix it
        except CommandTimeoutError:
            raise ModelTimeoutError(f"timed out after {self.timeout_s:g} s on the device") from None
        except ConnectionLostError as exc:
            logger.info("device lost after every reconnect attempt: %s", exc)
            self._present.clear()
            self._workdir_made = False
            raise DeviceLostError(f"device lost: {' '.join(str(exc).split())[:400]}") from None
        except TransportError as exc:
            raise ModelFailedError(f"transport error: {' '.join(str(exc).split())[:500]}") from None
        return _parse_answer(line, what)

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        request = build_request(self._remote_path(artifact), profile, protocol, self.affinity)
        return RawRun.from_dict(self._call(request, "the device runner", artifact)["raw"])

    def profile_layers(self, artifact: Any, profile: Any, protocol: TimingProtocol, runs: int) -> dict[str, Any]:
        """The device runner's ``profile`` answer for one artifact (``runs`` profiled runs),
        from a fresh device worker (load time and peak memory owe nothing to an earlier model)."""
        request = {**build_request(self._remote_path(artifact), profile, protocol, self.affinity),
                   "op": "profile", "profile_runs": int(runs)}
        self._drop_proc()
        try:
            return dict(self._call(request, "the device runner", artifact)["profile"])
        finally:
            self._drop_proc()

    def probe(self) -> dict[str, Any]:
        """Runtime versions from the runner plus the device's own facts (GPU, SoC, thermal)."""
        from blox_lat.devices import read_device_facts

        facts = dict(self._call({"op": "probe"}, "the device runner")["facts"])
        try:
            facts["device"] = read_device_facts(self.transport)
        except Exception as exc:  # facts are best effort; the campaign must not stop for them
            facts["device"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return facts

    def describe(self) -> dict[str, Any]:
        return {"runner": "transport", "transport": self.transport.describe(),
                "python": self.python, "workdir": self.workdir, "timeout_s": self.timeout_s,
                "persistent": bool(self.persistent and self.transport.supports_processes)}

    def close(self) -> None:
        for thread in list(self._prefetching.values()):
            thread.join()
        self._prefetching.clear()
        self._drop_proc()
        if self._second:
            self._second.close()
        self.transport.close()


@dataclass(frozen=True)
class ThermalWait:
    """One cool-down before a model: the temperatures it ended with, how long it took, whether
    the device ended ``cool`` and whether it had to wait at all (``waited``: the first reading
    was at or above the limit). A wait changes the device's level: anchors are timed after it."""

    temperatures_c: dict[str, float]
    hottest_c: float | None
    waited_s: float
    cool: bool
    waited: bool


@runtime_checkable
class CoolsDown(Protocol):
    """Waits for the device to cool down on request; the next ``measure`` then does not wait again."""

    def cool_down(self) -> ThermalWait | None: ...


class ThermalGuard:
    """Wrap a remote runner: before each model wait until the device is below ``max_c``
    (at most ``timeout_s``), and record the temperatures before and after in the run's facts.
    A campaign may call :meth:`cool_down` itself (to time anchors right after a wait); the next
    :meth:`measure` then uses that wait instead of its own."""

    def __init__(self, runner: Any, *, max_c: float, timeout_s: float = 300.0, poll_s: float = 5.0,
                 sleep: Any = None) -> None:
        self.runner = runner
        self.transport = runner.transport
        self.workdir = getattr(runner, "workdir", None)
        self.max_c = float(max_c)
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self._sleep = sleep or time.sleep
        self._fresh: tuple[ThermalWait | None] | None = None  # a cool_down the next measure uses

    def cool_down(self) -> ThermalWait | None:
        """Wait until the device is below ``max_c`` (None when its temperatures cannot be read:
        the runner's own reconnect logic decides whether the device is gone)."""
        from blox_lat.devices import TransportError, wait_until_cool

        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            self._sleep(seconds)

        try:
            got = wait_until_cool(self.transport, self.max_c, self.timeout_s, self.poll_s, sleep=sleep)
        except TransportError:
            wait = None
        else:
            wait = ThermalWait(got["temperatures_c"], got["hottest_c"], got["waited_s"], got["cool"], bool(slept))
        self._fresh = (wait,)
        return wait

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        from blox_lat.devices import TransportError, read_temperatures

        (before,) = self._fresh if self._fresh is not None else (self.cool_down(),)
        self._fresh = None
        raw = self.runner.measure(artifact, profile, protocol)
        try:
            after = read_temperatures(self.transport)
        except TransportError:
            after = None
        facts = {**raw.facts, "thermal": {
            "max_c": self.max_c, "before_c": None if before is None else before.temperatures_c,
            "cooldown_s": None if before is None else before.waited_s,
            "cool": None if before is None else before.cool, "after_c": after}}
        return RawRun(raw.samples_ns, raw.warmup_runs, raw.started_at, raw.finished_at, facts)

    def profile_layers(self, artifact: Any, profile: Any, protocol: TimingProtocol, runs: int) -> dict[str, Any]:
        """The wrapped runner's profile, after the device cooled down."""
        if not isinstance(self.runner, ProfilesLayers):
            raise RunnerUnavailableError(f"{type(self.runner).__name__} cannot profile layers")
        (_,) = self._fresh if self._fresh is not None else (self.cool_down(),)
        self._fresh = None
        return self.runner.profile_layers(artifact, profile, protocol, runs)

    def prefetch(self, artifact: Any) -> None:
        if isinstance(self.runner, Prefetching):
            self.runner.prefetch(artifact)

    def probe(self) -> dict[str, Any]:
        return self.runner.probe() if isinstance(self.runner, Probing) else {}

    def describe(self) -> dict[str, Any]:
        return {**self.runner.describe(), "thermal_max_c": self.max_c, "thermal_timeout_s": self.timeout_s}

    def close(self) -> None:
        self.runner.close()
