"""Per-layer profiles inside the worker: one model loaded, timed plainly, then profiled.

The worker's ``profile`` op (shipped in the device runner bundle, so an SSH or ADB host runs the
same code). For one artifact, in this order:

0. the runtime's package is imported first, so that ``load_ms`` is the model's alone; the
   runners send each model to a fresh worker process, so no earlier model's memory counts;
1. the device's high-water mark is reset (``/proc/self/clear_refs``) and the resident set noted;
2. **load**: the runtime's loader (session creation for onnxruntime), timed (``load_ms``);
3. **first inference**: the first call after loading, timed (``first_inference_ms``);
4. **protocol**: the ordinary warm-up and ``groups x runs_per_group`` timed runs with the
   profiler off (``raw``, the samples the host turns into the protocol latency);
5. **peak memory**: the high-water mark now, less the resident set of step 1 (``VmHWM`` of
   ``/proc/self/status``; where the reset is refused, ``ru_maxrss`` less the resident set, which
   is a lower bound of nothing and is labelled as such);
6. **per layer**: a second session with the runtime's own profiler on (onnxruntime's
   ``enable_profiling``, torch's ``torch.profiler``), warmed up, then ``profile_runs`` runs, each
   also timed from here (``profiled_ns``, the overhead's numerator). Each layer's time is the
   mean over those runs of the runtime's own per-node duration.

Answer ``{"ok": true, "profile": {...}}`` (see :func:`profile_request`). Imports nothing outside
the bundle.
"""

from __future__ import annotations

import bisect
import gc
import importlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

from blox_lat.harness._runtime import RuntimeUnavailableError, input_array
from blox_lat.harness._timing import _set_affinity, load_callable, time_callable

__all__ = ["profile_request"]

_KERNEL = "_kernel_time"
_KIB_PER_MIB = 1024.0


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class _Memory:
    """The worker's memory high-water mark around one model (resident set, MiB)."""

    def __init__(self) -> None:
        self.how = None
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # Linux >= 4.0: reset VmHWM to the current resident set
            self.how = "VmHWM"
        except OSError:
            self.how = "ru_maxrss" if _maxrss_kib() is not None else None
        self.before_kib = _status_kib("VmRSS")

    def peak(self) -> tuple[float | None, float | None]:
        """(peak less the resident set before loading, the peak itself), MiB; None unknown."""
        peak = _status_kib("VmHWM") if self.how == "VmHWM" else _maxrss_kib()
        if peak is None:
            return None, None
        rise = (peak - self.before_kib) / _KIB_PER_MIB if self.before_kib is not None else None
        return (round(rise, 3) if rise is not None else None), round(peak / _KIB_PER_MIB, 3)


def _maxrss_kib() -> int | None:
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux


def _ms(ns: int) -> float:
    return round(ns / 1e6, 6)


# -- the runtimes' own profilers ---------------------------------------------------------------


def _profile_onnxruntime(request: dict[str, Any], runs: int, warm: int) -> dict[str, Any]:
    """onnxruntime's profiler: every node's ``*_kernel_time`` event, by the run it fell in."""
    import onnxruntime as ort

    from blox_lat.harness._runtime_onnxruntime import session_options

    so = session_options(dict(request.get("options", {})))
    with tempfile.TemporaryDirectory(prefix="blox-lat-prof-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(request["artifact_path"], sess_options=so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: input_array(int(request.get("batch", 1)),
                                                          int(request.get("input_size", 32)))}
        wall = _time_runs(lambda: session.run(None, feed), runs, warm)
        path = session.end_profiling()
        with open(path, encoding="utf-8") as f:
            events = json.load(f)
    layers, run_ms = _ort_layers(events, runs)
    return {"layers": layers, "profiled_ns": wall, "runtime_run_ms": run_ms,
            "profiler": f"onnxruntime {ort.__version__} enable_profiling"}


def _ort_layers(events: list[dict[str, Any]], runs: int) -> tuple[list[dict[str, Any]], float | None]:
    """Mean per-run time of each node over the last ``runs`` ``model_run`` windows."""
    windows = sorted((int(e["ts"]), int(e["ts"]) + int(e["dur"])) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    if len(windows) < runs:
        raise RuntimeError(f"onnxruntime's profile holds {len(windows)} runs, expected at least {runs}")
    starts = [lo for lo, _ in windows]
    totals: dict[str, list[Any]] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith(_KERNEL):
            continue
        ts = int(e["ts"])
        at = bisect.bisect_right(starts, ts) - 1
        if at < 0 or ts > windows[at][1]:
            continue  # a warm-up run's node
        args = e.get("args", {})
        row = totals.setdefault(name[: -len(_KERNEL)], [str(args.get("op_name", "")),
                                                        str(args.get("provider", "")), 0, ts])
        row[2] += int(e["dur"])
    order = sorted(totals.items(), key=lambda item: item[1][3])  # execution order of the first run
    layers = [{"name": name, "op_type": op, "provider": provider, "ms": round(us / runs / 1e3, 6)}
              for name, (op, provider, us, _) in order]
    run_ms = round(sum(hi - lo for lo, hi in windows) / runs / 1e3, 6)
    return layers, run_ms


def _profile_torchscript(request: dict[str, Any], runs: int, warm: int) -> dict[str, Any]:
    """torch.profiler over the loaded TorchScript module: each op's own time (self time), per
    run; on CUDA the device time of the op's kernels. The frozen graph keeps no module names."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    options = dict(request.get("options", {}))
    device = str(options.get("device", "cpu"))
    run_once, _ = load_callable("torchscript", request["artifact_path"], options,
                                batch=int(request.get("batch", 1)), input_size=int(request.get("input_size", 32)))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    for _ in range(warm):
        run_once()
    with profile(activities=activities) as prof:
        wall = _time_runs(run_once, runs, 0)
    layers = []
    for avg in prof.key_averages():
        if avg.key in ("forward",) or avg.key.startswith("ProfilerStep"):
            continue
        device_us = float(getattr(avg, "self_device_time_total", 0.0) or 0.0)
        us = device_us if device.startswith("cuda") else float(avg.self_cpu_time_total)
        if us <= 0:
            continue
        layers.append({"name": avg.key, "op_type": avg.key, "provider": device,
                       "ms": round(us / runs / 1e3, 6)})
    return {"layers": layers, "profiled_ns": wall, "runtime_run_ms": None,
            "profiler": f"torch {torch.__version__} torch.profiler"}


def _time_runs(run_once: Callable[[], Any], runs: int, warm: int) -> list[int]:
    for _ in range(warm):
        run_once()
    clock = time.perf_counter_ns
    out = []
    for _ in range(runs):
        t0 = clock()
        run_once()
        out.append(clock() - t0)
    return out


#: the package each runtime imports when it loads its first model
_PACKAGES = {"onnxruntime": "onnxruntime", "torchscript": "torch"}
_PROFILERS: dict[str, Callable[[dict[str, Any], int, int], dict[str, Any]]] = {
    "onnxruntime": _profile_onnxruntime,
    "torchscript": _profile_torchscript,
}


def _cuda_peak(request: dict[str, Any]) -> Callable[[], float | None]:
    """Reset torch's CUDA high-water mark when the model runs on CUDA; the reader gives MiB."""
    device = str(dict(request.get("options", {})).get("device", "cpu"))
    if request.get("runtime") != "torchscript" or not device.startswith("cuda"):
        return lambda: None
    import torch

    if not torch.cuda.is_available():
        return lambda: None
    torch.cuda.reset_peak_memory_stats(device)
    return lambda: round(torch.cuda.max_memory_allocated(device) / 2**20, 3)


def profile_request(request: dict[str, Any]) -> dict[str, Any]:
    """Load, first inference, protocol and per-layer profile of one artifact (the worker's
    ``profile`` op; the module docstring lists the steps)."""
    runtime = request["runtime"]
    profiler = _PROFILERS.get(runtime)
    if profiler is None:
        raise RuntimeUnavailableError(f"runtime {runtime!r} has no per-layer profiler in the worker")
    runs = int(request.get("profile_runs", 100))
    if runs < 1:
        raise ValueError(f"profile_runs must be >= 1, got {runs}")
    affinity = _set_affinity(request.get("affinity"))
    proto = request["protocol"]
    importlib.import_module(_PACKAGES[runtime])  # load_ms is the model's load, not the package's import
    gc.collect()
    memory = _Memory()
    cuda_peak = _cuda_peak(request)
    clock = time.perf_counter_ns
    t0 = clock()
    run_once, facts = load_callable(runtime, request["artifact_path"], dict(request.get("options", {})),
                                    batch=int(request.get("batch", 1)), input_size=int(request.get("input_size", 32)))
    t1 = clock()
    run_once()
    t2 = clock()
    raw = time_callable(run_once, groups=int(proto["groups"]), runs_per_group=int(proto["runs_per_group"]),
                        warmup_min_runs=int(proto.get("warmup_min_runs", 10)),
                        warmup_min_s=float(proto.get("warmup_min_s", 0.5)))
    rise, peak = memory.peak()
    gpu_peak = cuda_peak()
    del run_once
    gc.collect()
    layered = profiler(request, runs, max(1, int(proto.get("warmup_min_runs", 10))))
    facts.update(affinity=affinity, pid=os.getpid())
    return {
        "load_ms": _ms(t1 - t0),
        "first_inference_ms": _ms(t2 - t1),
        "peak_memory_mib": rise,
        "peak_rss_mib": peak,
        "memory_how": memory.how,
        "gpu_peak_memory_mib": gpu_peak,
        "raw": {**raw.to_dict(), "facts": facts},
        "profile_runs": runs,
        **layered,
    }
