"""Qualcomm SNPE on an Android phone: ``snpe-net-run`` on the DSP over any Transport (ADB in practice).

What happens, and why (flags as documented by Qualcomm for SNPE 1.x/2.x; the real SDK and a real
phone are *not* verified here, only stand-ins in ``tests/fakesnpe``):

- **SDK upload, once per device.** ``snpe-net-run`` from ``$SNPE_ROOT/bin/<target_arch>/``, the
  libraries from ``$SNPE_ROOT/lib/<target_arch>/`` and the DSP skeletons from
  ``$SNPE_ROOT/lib/<dsp_arch>/unsigned/`` go to ``<workdir>/snpe-<sha16>/{bin,lib,dsp}``;
  ``sha16`` is derived from a manifest of (relative path, sha256) of the local files, so another
  SDK gets another folder. The device's ``sha256sum`` of every uploaded file is checked against
  the manifest before a stamp file marks the folder complete: an interrupted upload has no stamp
  and is redone from scratch, and a later runner or campaign finding the stamp pushes nothing.
- **One invocation per model.** Burst mode drops its clock vote 300 ms after the last inference
  (SPEC section 5), so every inference of a model - ``W`` warm-up lines, then
  ``groups * runs_per_group`` timed lines - comes from one ``--input_list`` in one
  ``snpe-net-run`` run, back to back. The first ``W`` per-inference times are discarded.
- **Timings.** ``--profiling_level basic`` makes SNPE write ``SNPEDiag_0.log`` with one record
  per inference; the host tool ``snpe-diagview`` converts it to CSV and
  :func:`~blox_lat.devices._snpe_parse.parse_diagview_csv` reads the "Total Inference Time" of
  every inference (microseconds, so samples are whole microseconds expressed in ns). Group ``g``
  of the protocol is timed lines ``g*R .. g*R+R-1`` in input-list order.
- **Input.** The same seeded tensor the local runtimes use (``numpy.random.default_rng(0)``,
  NCHW ``batch x 3 x S x S``), written as float32 in SNPE's NHWC layout; no calibration needed
  since the DLC is already quantised. Every input-list line names the same file.
- **Paths.** Commands are argument lists quoted by the transport; ``snpe-net-run`` runs in the
  model's run folder and its input list holds bare file names, because SNPE splits input-list
  lines on whitespace. ``ADSP_LIBRARY_PATH`` is ``;``-separated and ``LD_LIBRARY_PATH``
  ``:``-separated, so a workdir containing that separator is named relative to the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from blox_lat._fs import sha256_file, utc_now
from blox_lat.devices import (
    AuthenticationError,
    CommandResult,
    CommandTimeoutError,
    ConnectionLostError,
    HostKeyError,
    SnpeOutputError,
    TransportError,
    parse_diagview_csv,
    parse_diagview_layers,
)
from blox_lat.exporters import SNPE_FIX as _FIX
from blox_lat.exporters import SNPE_HOST_BIN_SUBDIR as HOST_BIN_SUBDIR
from blox_lat.exporters import snpe_sdk_version as _sdk_version
from blox_lat.exporters import snpe_tool_env as _tool_env
from blox_lat.harness._protocol import TimingProtocol
from blox_lat.harness._runners import DEFAULT_TIMEOUT_S, ModelFailedError, ModelTimeoutError, RunnerUnavailableError
from blox_lat.harness._timing import RawRun

__all__ = [
    "DEFAULT_WORKDIR",
    "DSP_SYSTEM_LIBRARY_DIRS",
    "PERF_PROFILES",
    "SnpeRunner",
    "parse_snpe_version",
    "snpe_input_raw",
]

DEFAULT_WORKDIR = "/data/local/tmp/blox-lat"
NET_RUN = "snpe-net-run"
DIAGVIEW = "snpe-diagview"
#: where Android keeps the FastRPC DSP libraries; appended to ADSP_LIBRARY_PATH after ours
DSP_SYSTEM_LIBRARY_DIRS = ("/system/lib/rfsa/adsp", "/vendor/lib/rfsa/adsp", "/dsp")
#: ``--perf_profile`` values documented for snpe-net-run
PERF_PROFILES = frozenset({
    "balanced", "burst", "default", "extreme_power_saver", "high_performance", "high_power_saver",
    "low_balanced", "low_power_saver", "power_saver", "sustained_high_performance", "system_settings",
})
_RUNTIME_FLAGS = {"dsp": ("--use_dsp",), "gpu": ("--use_gpu",), "cpu": ()}
_STAMP = ".complete"
_INPUT_NAME = "input.raw"
_LIST_NAME = "input_list.txt"
_OUTPUT_NAME = "output"
_PID_NAME = "snpe-net-run.pid"
# fixed scripts; every path and argument reaches them as a positional parameter, never as text
_RECORD_PID_AND_EXEC = 'echo $$ > "$1" && shift && exec "$@"'
_KILL_RECORDED = '[ -s "$1" ] && kill -9 "$(cat "$1")" 2>/dev/null; exit 0'
_DIAGVIEW_TIMEOUT_S = 300.0
_TAIL_LINES = 8
# e.g. "SNPE v2.12.0.230626174329_59328" (the whole output must be that one line, modulo spaces)
_VERSION_RE = re.compile(r"\A\s*SNPE\s+v(\d+\.\d+\.\d+(?:\.[0-9A-Za-z_]+)?)\s*\Z")
#: link problems that say nothing about the model: they propagate instead of failing it
_DEVICE_ERRORS = (ConnectionLostError, AuthenticationError, HostKeyError)
_SHA_LINE_RE = re.compile(r"\A([0-9a-f]{64})\s+\*?(.+)\Z")


def parse_snpe_version(text: str) -> str | None:
    """``"2.12.0.230626174329_59328"`` from ``snpe-net-run --version`` output, else None."""
    match = _VERSION_RE.match(text)
    return match.group(1) if match else None


def snpe_input_raw(batch: int, input_size: int, seed: int = 0) -> bytes:
    """The model input as SNPE reads it: float32, NHWC (``batch x S x S x 3``), C order.

    The values are the tensor the local runtimes time with (seeded standard normal drawn in
    NCHW order), transposed to SNPE's channel-last layout.
    """
    import numpy as np

    nchw = np.random.default_rng(seed).standard_normal((batch, 3, input_size, input_size)).astype(np.float32)
    return np.ascontiguousarray(np.transpose(nchw, (0, 2, 3, 1)), dtype=np.float32).tobytes()


@dataclass(frozen=True)
class _SdkFile:
    local: Path
    remote: str  # relative to the SDK folder: bin/..., lib/..., dsp/...
    sha256: str


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    kept = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def _find_root(snpe_root: str | os.PathLike[str] | None) -> Path:
    """Explicit root, else $SNPE_ROOT, else the root above an ``snpe-diagview`` on PATH."""
    if snpe_root is None:
        text = os.environ.get("SNPE_ROOT", "").strip()
        if not text:
            found = shutil.which(DIAGVIEW)
            if found and Path(found).parent.name == HOST_BIN_SUBDIR.name:
                return Path(found).resolve().parent.parent.parent
            raise RunnerUnavailableError(
                f"SNPE_ROOT is not set and {DIAGVIEW} is not on PATH: the SNPE runner needs the SDK's "
                f"device binaries and host tools; {_FIX}"
            )
        snpe_root = text
    root = Path(snpe_root).expanduser()
    if not root.is_dir():
        raise RunnerUnavailableError(f"SNPE_ROOT={str(snpe_root)!r} is not a folder; {_FIX}")
    return root


@dataclass(frozen=True)
class _Invocation:
    """One ``snpe-net-run`` run: the diagview CSV of its log and what it ran with."""

    csv: str
    started: str
    finished: str
    version: str | None
    runtime: str
    perf: str


def _parse_times(text: str, statistic: str = "total") -> list[float]:
    try:
        return parse_diagview_csv(text, statistic)
    except SnpeOutputError as exc:
        raise ModelFailedError(str(exc)) from None


def _parse_layers(text: str) -> tuple[float | None, list[Any]]:
    try:
        return parse_diagview_layers(text)
    except SnpeOutputError as exc:
        raise ModelFailedError(str(exc)) from None


def _layer_means(rows: list[Any], forwards: list[float], warmup: int, runs: int) -> list[dict[str, Any]]:
    """Each layer's mean ms over the inferences after the warm-up (executions are numbered from
    1 in input-list order); a layer logged in cycles gets its share of the inference's forward time."""
    kept = set(range(warmup + 1, warmup + runs + 1))
    cycles: dict[int, float] = {}
    for row in rows:
        if row.inference in kept and row.unit == "cycles":
            cycles[row.inference] = cycles.get(row.inference, 0.0) + row.value
    out: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        if row.inference not in kept:
            continue
        if row.unit == "cycles":
            forward = forwards[row.inference - 1] if row.inference - 1 < len(forwards) else 0.0
            ms = forward * row.value / cycles[row.inference] if cycles.get(row.inference) else 0.0
        else:
            ms = row.value
        entry = out.setdefault((row.layer_id, row.name), [row.message, row.runtime, 0.0])
        entry[2] += ms
    return [{"name": name, "op_type": op, "provider": runtime, "ms": round(total / runs, 6)}
            for (_, name), (op, runtime, total) in out.items()]


class _SnpeSdk:
    """The SDK: its files on this host (``snpe-net-run``, libraries, DSP skeletons) with their
    manifest, the ``snpe-diagview`` host tool, and its install in ``<workdir>/snpe-<sha16>`` on
    the device. Anything missing on this host raises :class:`RunnerUnavailableError` here."""

    def __init__(self, snpe_root: str | os.PathLike[str] | None, workdir: str, target_arch: str,
                 dsp_arch: str | None) -> None:
        self.root = _find_root(snpe_root)
        self.target_arch = target_arch
        self.dsp_arch = dsp_arch
        self.version = _sdk_version(self.root)
        self.diagview = self._host_tool()
        self.files = self._collect_files()
        manifest = json.dumps([[f.remote, f.sha256] for f in self.files], separators=(",", ":"))
        self.manifest_sha256 = hashlib.sha256(manifest.encode()).hexdigest()
        self.dir = f"{workdir}/snpe-{self.manifest_sha256[:16]}"

    # -- on this host --------------------------------------------------------------------------
    def _missing(self, path: Path, what: str) -> RunnerUnavailableError:
        rel = path.relative_to(self.root) if path.is_relative_to(self.root) else path
        return RunnerUnavailableError(
            f"SNPE SDK at SNPE_ROOT={str(self.root)!r} has no {what} ($SNPE_ROOT/{rel} is missing); {_FIX}"
        )

    def _host_tool(self) -> Path:
        tool = self.root / HOST_BIN_SUBDIR / DIAGVIEW
        if not tool.is_file() or not os.access(tool, os.X_OK):
            raise self._missing(tool, f"host tool {DIAGVIEW}")
        return tool

    def _collect_files(self) -> list[_SdkFile]:
        binary = self.root / "bin" / self.target_arch / NET_RUN
        if not binary.is_file():
            raise self._missing(binary, f"{NET_RUN} for {self.target_arch}")
        files = [_SdkFile(binary, f"bin/{NET_RUN}", sha256_file(binary))]
        folders = [("lib", self.root / "lib" / self.target_arch, f"libraries for {self.target_arch}")]
        if self.dsp_arch is not None:
            folders.append(("dsp", self.root / "lib" / self.dsp_arch / "unsigned",
                            f"DSP skeleton libraries for {self.dsp_arch}"))
        for prefix, folder, what in folders:
            found = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
            if not found:
                raise self._missing(folder, what)
            for path in found:
                rel = PurePosixPath(*path.relative_to(folder).parts)
                files.append(_SdkFile(path, f"{prefix}/{rel}", sha256_file(path)))
        return files

    def diagview_csv(self, log: Path, folder: Path) -> str:
        """``snpe-diagview`` run on this host over a pulled SNPE log: its CSV (written in ``folder``)."""
        csv = folder / "diagview.csv"
        argv = [str(self.diagview), "--input_log", str(log), "--output", str(csv)]
        env = _tool_env(dict(os.environ), self.root, self.diagview.parent)
        try:
            proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=_DIAGVIEW_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ModelFailedError(f"{DIAGVIEW} did not finish within {_DIAGVIEW_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise ModelFailedError(f"cannot run {self.diagview}: {exc.strerror}") from None
        if proc.returncode != 0 or not csv.is_file():
            raise ModelFailedError(
                f"{DIAGVIEW} failed (exit status {proc.returncode}) on the SNPE log: "
                f"{_tail(proc.stdout + proc.stderr)}; command: {shlex.join(argv)}"
            )
        return csv.read_text(encoding="utf-8", errors="replace")

    # -- on the device -------------------------------------------------------------------------
    def install(self, transport: Any) -> int:
        """Make sure the device's SDK folder holds these files: a stamp naming the manifest says
        so; without it the folder is uploaded again. Returns the number of files pushed."""
        stamp = f"{self.dir}/{_STAMP}"
        found = transport.run(["cat", "--", stamp])
        if found.ok and found.stdout.strip() == self.manifest_sha256:
            return 0
        return self._upload(transport, stamp)

    def _upload(self, transport: Any, stamp: str) -> int:
        transport.run(["rm", "-rf", "--", self.dir]).check()
        remote = {f.remote: f"{self.dir}/{f.remote}" for f in self.files}
        folders = sorted({str(PurePosixPath(path).parent) for path in remote.values()})
        transport.run(["mkdir", "-p", "--", *folders]).check()
        for f in self.files:
            _push_whole(transport, f.local, remote[f.remote])
        transport.run(["chmod", "755", "--", remote[f"bin/{NET_RUN}"]]).check()
        listing = transport.run(["sha256sum", "--", *remote.values()]).check()
        got = {}
        for line in listing.stdout.splitlines():
            match = _SHA_LINE_RE.match(line.strip())
            if match:
                got[match.group(2)] = match.group(1)
        bad = [f.remote for f in self.files if got.get(remote[f.remote]) != f.sha256]
        if bad:
            raise TransportError(
                f"SNPE SDK upload to {self.dir!r} is corrupt: sha256 differs for {bad[:5]}; "
                "it will be uploaded again on the next try"
            )
        with tempfile.TemporaryDirectory(prefix="blox-lat-snpe-") as tmp:
            local = Path(tmp) / _STAMP
            local.write_text(self.manifest_sha256 + "\n")
            _push_whole(transport, local, stamp)
        return len(self.files) + 1

    @property
    def net_run(self) -> str:
        return f"{self.dir}/bin/{NET_RUN}"

    def env_argv(self, cwd: str) -> list[str]:
        """``env LD_LIBRARY_PATH=... ADSP_LIBRARY_PATH=...`` for a command run in ``cwd``."""
        def entry(folder: str, separator: str) -> str:
            if separator not in folder:
                return folder
            return os.path.relpath(folder, cwd)  # POSIX paths: this host and Android agree

        lib = entry(f"{self.dir}/lib", ":")
        adsp = [entry(f"{self.dir}/dsp", ";")] if self.dsp_arch is not None else []
        adsp += list(DSP_SYSTEM_LIBRARY_DIRS)
        return ["env", f"LD_LIBRARY_PATH={lib}", f"ADSP_LIBRARY_PATH={';'.join(adsp)}"]


def _push_whole(transport: Any, local: Path, remote: str) -> None:
    """Push via ``<remote>.part`` + rename, so a file that exists is always complete."""
    part = remote + ".part"
    transport.push(local, part)
    transport.run(["mv", "-f", "--", part, remote]).check()


def _run_options(artifact: Any, profile: Any, dsp_arch: str | None) -> tuple[str, str]:
    """(runtime, perf profile) of an SNPE device profile, checked against what the runner can run."""
    if getattr(profile, "runtime", None) != "snpe":
        raise RunnerUnavailableError(
            f"SnpeRunner runs SNPE profiles; device {getattr(profile, 'name', '?')!r} uses runtime "
            f"{getattr(profile, 'runtime', None)!r}"
        )
    fmt = getattr(artifact, "format", "dlc")
    if fmt != "dlc":
        raise RunnerUnavailableError(f"SnpeRunner runs DLC artifacts; got format {fmt!r} ({artifact.path})")
    options = dict(profile.options)
    runtime = str(options.get("runtime", "dsp"))
    perf = str(options.get("perf_profile", "burst"))
    if runtime not in _RUNTIME_FLAGS:
        raise RunnerUnavailableError(
            f"device {profile.name!r}: SNPE runtime option {runtime!r} unknown; use one of "
            f"{', '.join(sorted(_RUNTIME_FLAGS))}"
        )
    if runtime == "dsp" and dsp_arch is None:
        raise RunnerUnavailableError(
            f"device {profile.name!r} runs on the DSP but the runner was built with dsp_arch=None; "
            "pass the DSP architecture (e.g. hexagon-v68 for Snapdragon 888)"
        )
    if perf not in PERF_PROFILES:
        raise RunnerUnavailableError(
            f"device {profile.name!r}: SNPE perf_profile {perf!r} unknown; "
            f"use one of {', '.join(sorted(PERF_PROFILES))}"
        )
    return runtime, perf


class SnpeRunner:
    """Time DLC artifacts with ``snpe-net-run`` on an Android device reached by ``transport``.

    ``workdir`` is a device folder the shell user can write and execute from (on phones
    ``/data/local/tmp/...``; :data:`DEFAULT_WORKDIR`). ``snpe_root`` defaults to ``$SNPE_ROOT``.
    ``target_arch`` names the SDK's device folders (``aarch64-android`` in SNPE 2.x, e.g.
    ``aarch64-android-clang8.0`` in 1.x); ``dsp_arch`` the DSP skeleton folder
    (``hexagon-v68`` = Snapdragon 888), or None to upload no DSP libraries (CPU/GPU runtimes).
    The SDK is checked here, up front: anything missing raises :class:`RunnerUnavailableError`.
    """

    def __init__(
        self,
        transport: Any,
        *,
        workdir: str,
        snpe_root: str | os.PathLike[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        target_arch: str = "aarch64-android",
        dsp_arch: str | None = "hexagon-v68",
    ) -> None:
        if not workdir or not workdir.startswith("/"):
            raise RunnerUnavailableError(f"the SNPE workdir must be an absolute device path, got {workdir!r}")
        if timeout_s <= 0:
            raise RunnerUnavailableError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.transport = transport
        self.workdir = workdir.rstrip("/") or "/"
        self.timeout_s = float(timeout_s)
        self.target_arch = target_arch
        self.dsp_arch = dsp_arch
        self.sdk = _SnpeSdk(snpe_root, self.workdir, target_arch, dsp_arch)
        self.root, self.sdk_version, self.sdk_dir = self.sdk.root, self.sdk.version, self.sdk.dir
        self._sdk_ready = False
        self._device_version: str | None = None
        self._version_probed = False
        self._models: set[str] = set()
        self._runs = 0
        self.pushes = 0  # files pushed by this runner (SDK, models, inputs), for reports and tests

    # -- on the device: the SDK installed, its version, the models ---------------------------
    def _push(self, local: Path, remote: str) -> None:
        _push_whole(self.transport, local, remote)
        self.pushes += 1

    def _ensure_sdk(self) -> None:
        if not self._sdk_ready:
            self.pushes += self.sdk.install(self.transport)
            self._sdk_ready = True

    def _version(self) -> str | None:
        if not self._version_probed:
            result = self.transport.run([*self.sdk.env_argv(self.sdk_dir), self.sdk.net_run, "--version"],
                                        cwd=self.sdk_dir, timeout_s=60.0)
            self._device_version = parse_snpe_version(result.stdout) if result.ok else None
            self._version_probed = True
        return self._device_version

    # -- Runner protocol ---------------------------------------------------------------------
    def _ensure_model(self, artifact: Any) -> str:
        remote = f"{self.workdir}/models/{artifact.sha256}.dlc"
        if remote not in self._models:
            if not self.transport.exists(remote):
                self.transport.mkdir_p(f"{self.workdir}/models")
                self._push(Path(artifact.path), remote)
            self._models.add(remote)
        return remote

    def measure(self, artifact: Any, profile: Any, protocol: TimingProtocol) -> RawRun:
        """Run every inference of ``artifact`` in one ``snpe-net-run``; return the timed ones.

        A lost connection or a refused key propagates (:class:`ConnectionLostError`,
        :class:`AuthenticationError`, :class:`HostKeyError`: the device, not the model, is the
        problem); any other failure is a :class:`ModelFailedError` for this model.
        """
        warmup = max(1, int(protocol.warmup_min_runs))
        timed = protocol.groups * protocol.runs_per_group
        run = self._invoke(artifact, profile, warmup + timed, "basic")
        times_ms = _parse_times(run.csv)
        return self._raw(run, times_ms, warmup, protocol)

    def _raw(self, run: _Invocation, times_ms: list[float], warmup: int, protocol: TimingProtocol) -> RawRun:
        timed = protocol.groups * protocol.runs_per_group
        if len(times_ms) != warmup + timed:
            raise ModelFailedError(
                f"{NET_RUN} logged {len(times_ms)} inference times, expected {warmup + timed} "
                f"({warmup} warm-up + {protocol.groups} groups x {protocol.runs_per_group}); "
                f"refusing to guess which ones are missing"
            )
        samples = tuple(int(round(ms * 1e6)) for ms in times_ms[warmup:])
        facts = {
            "snpe_version": run.version,
            "snpe_sdk_version": self.sdk_version,
            "runtime": run.runtime,
            "perf_profile": run.perf,
            "warmup_runs": warmup,
            "warmup_s": round(sum(times_ms[:warmup]) / 1e3, 6),
            "warmup_min_s_met": sum(times_ms[:warmup]) / 1e3 >= protocol.warmup_min_s,
            "inferences_per_invocation": warmup + timed,
            "timing": "snpe-diagview 'Total Inference Time' per inference, microsecond resolution",
        }
        return RawRun(samples_ns=samples, warmup_runs=warmup, started_at=run.started, finished_at=run.finished,
                      facts=facts)

    def profile_layers(self, artifact: Any, profile: Any, protocol: TimingProtocol, runs: int) -> dict[str, Any]:
        """Load time, first inference, the protocol's samples (``--profiling_level basic``) and
        per-layer times from a second invocation at ``--profiling_level detailed`` (``runs``
        inferences after the warm-up). SNPE logs DSP layers in cycles: a layer's time is then its
        share of the cycles of its inference times that inference's "Forward Propagate" time."""
        warmup = max(1, int(protocol.warmup_min_runs))
        timed = protocol.groups * protocol.runs_per_group
        basic = self._invoke(artifact, profile, warmup + timed, "basic")
        times_ms = _parse_times(basic.csv)
        raw = self._raw(basic, times_ms, warmup, protocol)
        init_ms, _ = _parse_layers(basic.csv)
        detailed = self._invoke(artifact, profile, warmup + runs, "detailed")
        totals, forwards = _parse_times(detailed.csv), _parse_times(detailed.csv, "forward")
        _, rows = _parse_layers(detailed.csv)
        layers = _layer_means(rows, forwards, warmup, runs)
        return {"load_ms": init_ms, "first_inference_ms": times_ms[0], "peak_memory_mib": None, "peak_rss_mib": None,
                "memory_how": None, "gpu_peak_memory_mib": None, "raw": raw.to_dict(), "profile_runs": runs,
                "layers": layers, "profiled_ns": [int(round(ms * 1e6)) for ms in totals[warmup:]],
                "runtime_run_ms": None, "layer_runs_kept": runs,
                "profiler": f"snpe-diagview, --profiling_level detailed (SNPE {detailed.version})"}

    def _invoke(self, artifact: Any, profile: Any, lines: int, level: str) -> _Invocation:
        """One ``snpe-net-run`` of ``lines`` inferences at ``--profiling_level level``: the
        diagview CSV of its log."""
        runtime, perf = _run_options(artifact, profile, self.dsp_arch)
        self._runs += 1
        run_dir = f"{self.workdir}/runs/{artifact.sha256[:16]}-{os.getpid()}-{self._runs}"
        try:
            self.transport.connect()
            self._ensure_sdk()
            version = self._version()
            container = self._ensure_model(artifact)
            with tempfile.TemporaryDirectory(prefix="blox-lat-snpe-") as tmp:
                local = Path(tmp)
                self._prepare_run(local, run_dir, profile, lines)
                argv = [*self.sdk.env_argv(run_dir), self.sdk.net_run, "--container", container,
                        "--input_list", _LIST_NAME, "--output_dir", _OUTPUT_NAME,
                        *_RUNTIME_FLAGS[runtime], "--perf_profile", perf, "--profiling_level", level]
                started = utc_now("microseconds")
                try:
                    # the tool's pid goes to a file first, so that a timeout can stop it for sure
                    result = self.transport.run(["sh", "-c", _RECORD_PID_AND_EXEC, "sh", _PID_NAME, *argv],
                                                cwd=run_dir, timeout_s=self.timeout_s)
                except CommandTimeoutError:
                    self._kill_recorded(run_dir)
                    raise ModelTimeoutError(
                        f"{NET_RUN} did not finish {lines} inferences within {self.timeout_s:g} s "
                        "on the device (the command was stopped)"
                    ) from None
                finished = utc_now("microseconds")
                if result.exit_status != 0:
                    raise ModelFailedError(
                        f"{NET_RUN} exited with status {result.exit_status}: {_tail(result.stdout + result.stderr)}"
                    )
                text = self._collect_csv(local, run_dir, result)
        except _DEVICE_ERRORS:
            raise
        except TransportError as exc:
            raise ModelFailedError(f"SNPE run on the device failed: {' '.join(str(exc).split())[:500]}") from None
        finally:
            self._cleanup(run_dir)
        return _Invocation(text, started, finished, version, runtime, perf)

    def _prepare_run(self, local: Path, run_dir: str, profile: Any, lines: int) -> None:
        raw = local / _INPUT_NAME
        raw.write_bytes(snpe_input_raw(int(profile.batch), int(profile.input_size)))
        listing = local / _LIST_NAME
        listing.write_text(f"{_INPUT_NAME}\n" * lines)
        self.transport.run(["rm", "-rf", "--", run_dir]).check()
        self.transport.mkdir_p(run_dir)
        self.transport.push(raw, f"{run_dir}/{_INPUT_NAME}")
        self.transport.push(listing, f"{run_dir}/{_LIST_NAME}")

    def _collect_csv(self, local: Path, run_dir: str, result: CommandResult) -> str:
        out_dir = f"{run_dir}/{_OUTPUT_NAME}"
        found = self.transport.run(["find", out_dir, "-name", "SNPEDiag*.log", "-type", "f"])
        logs = sorted(ln.strip() for ln in found.stdout.splitlines() if ln.strip().endswith(".log"))
        if not found.ok or not logs:
            raise ModelFailedError(
                f"{NET_RUN} exited 0 but wrote no SNPEDiag log under {_OUTPUT_NAME}/ (profiling off? "
                f"unsupported SDK?); its output: {_tail(result.stdout)}"
            )
        preferred = [p for p in logs if p.endswith("/SNPEDiag_0.log")]
        log = local / "SNPEDiag_0.log"
        self.transport.pull((preferred or logs)[0], log)
        return self.sdk.diagview_csv(log, local)

    def _kill_recorded(self, run_dir: str) -> None:
        """Best effort: closing the ADB stream normally ends the tool, but do not rely on it."""
        try:
            self.transport.run(["sh", "-c", _KILL_RECORDED, "sh", f"{run_dir}/{_PID_NAME}"], timeout_s=30.0)
        except TransportError:
            pass

    def _cleanup(self, run_dir: str) -> None:
        try:
            self.transport.run(["rm", "-rf", "--", run_dir], timeout_s=60.0)
        except TransportError:
            pass  # best effort: the next run of this model uses a fresh folder anyway

    # -- facts for `blox-lat devices check` ----------------------------------------------------
    def probe(self) -> dict[str, Any]:
        """What the device offers SNPE; missing optional facts are None, never an exception.

        ``dsp_available`` is a heuristic: ``snpe-net-run --version`` runs and at least one of
        the FastRPC library folders (:data:`DSP_SYSTEM_LIBRARY_DIRS`) lists files. Only a real
        ``--use_dsp`` run proves the DSP works. Transport failures (no connection) propagate.
        """
        facts: dict[str, Any] = {
            "snpe_root": str(self.root), "snpe_sdk_version": self.sdk_version,
            "sdk_dir": self.sdk_dir, "sdk_uploaded": False, "snpe_net_run_ok": False,
            "snpe_version": None, "snpe_version_output": None, "dsp_library_dirs": {},
            "dsp_available": False,
        }
        self.transport.connect()
        try:
            self._ensure_sdk()
            facts["sdk_uploaded"] = True
        except _DEVICE_ERRORS:
            raise
        except TransportError as exc:
            facts["sdk_error"] = " ".join(str(exc).split())[:300]
        if facts["sdk_uploaded"]:
            try:
                result = self.transport.run([*self.sdk.env_argv(self.sdk_dir), self.sdk.net_run, "--version"],
                                            cwd=self.sdk_dir, timeout_s=60.0)
                facts["snpe_net_run_ok"] = result.ok
                facts["snpe_version_output"] = _tail(result.stdout, 3)
                facts["snpe_version"] = parse_snpe_version(result.stdout) if result.ok else None
            except CommandTimeoutError:
                facts["snpe_version_output"] = "snpe-net-run --version timed out"
        for folder in DSP_SYSTEM_LIBRARY_DIRS[1:]:  # /vendor/lib/rfsa/adsp and /dsp
            try:
                result = self.transport.run(["ls", "--", folder], timeout_s=30.0)
            except CommandTimeoutError:
                result = None
            names = sorted(result.stdout.split()) if result is not None and result.ok else None
            facts["dsp_library_dirs"][folder] = names
        facts["dsp_available"] = bool(
            facts["snpe_net_run_ok"] and any(facts["dsp_library_dirs"].values())
        )
        return facts

    def describe(self) -> dict[str, Any]:
        return {"runner": "snpe", "transport": self.transport.describe(), "workdir": self.workdir,
                "snpe_root": str(self.root), "snpe_sdk_version": self.sdk_version,
                "sdk_dir": self.sdk_dir, "target_arch": self.target_arch, "dsp_arch": self.dsp_arch,
                "timeout_s": self.timeout_s}

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> SnpeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
