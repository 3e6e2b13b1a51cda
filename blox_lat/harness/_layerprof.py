"""Per-layer profiles inside the worker: one model loaded, timed plainly, then profiled.

The worker's ``profile`` op (shipped in the device runner bundle, so an SSH or ADB host runs the
same code). For one artifact, in this order:

0. the runtime's package is imported first, so that ``load_ms`` is the model's alone; the
   runners send each model to a fresh worker process, so no earlier model's memory counts;
1. the high-water mark is reset (``/proc/self/clear_refs``) and the resident set noted;
2. **load**: the runtime's loader (session creation for onnxruntime), timed (``load_ms``);
3. **first inference**: the first call after loading, timed (``first_inference_ms``);
4. the protocol's warm-up, then **peak memory**: the high-water mark now, less the resident set
   of step 1 (``VmHWM`` of ``/proc/self/status``; where the reset is refused, ``ru_maxrss``
   less the resident set, named as such in ``memory_how``);
5. **protocol and per layer**: a second session with the runtime's own profiler on
   (onnxruntime's ``enable_profiling``) is warmed up; then each of the protocol's groups
   (``runs_per_group`` runs of the plain session, profiler off, the samples the host turns into
   the protocol latency) is followed by its share of the ``profile_runs`` profiled runs, so that
   both see the same host. Each profiled run is also timed from here (``profiled_ns``, the
   overhead's numerator). A layer's time is the runtime's own per-node duration, averaged over
   the profiled runs whose node total lies between its quartiles. ``torch.profiler`` records
   everything while it is on, so for TorchScript the groups come first and the profiled runs
   after them.

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

from blox_lat._fs import utc_now
from blox_lat.harness._runtime import RuntimeUnavailableError, input_array
from blox_lat.harness._timing import RawRun, _set_affinity, _warm_up, load_callable

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


def _chunks(runs: int, groups: int) -> list[int]:
    """``runs`` profiled runs spread over ``groups`` chunks, one after each protocol group."""
    base, extra = divmod(runs, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


def _profile_onnxruntime(request: dict[str, Any], runs: int, warm: int,
                         plain_group: Callable[[int], None], groups: int) -> dict[str, Any]:
    """onnxruntime's profiler on a second session, its runs interleaved with the protocol's
    groups (``plain_group(g)`` times group ``g`` of the plain session): both see the same host."""
    import onnxruntime as ort

    from blox_lat.harness._runtime_onnxruntime import session_options

    so = session_options(dict(request.get("options", {})))
    with tempfile.TemporaryDirectory(prefix="blox-lat-prof-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(request["artifact_path"], sess_options=so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: input_array(int(request.get("batch", 1)),
                                                          int(request.get("input_size", 32)))}
        wall = _time_runs(lambda: session.run(None, feed), 0, warm)
        for g, size in enumerate(_chunks(runs, groups)):
            plain_group(g)
            wall += _time_runs(lambda: session.run(None, feed), size, 0)
        path = session.end_profiling()
        with open(path, encoding="utf-8") as f:
            events = json.load(f)
    layers, run_ms, kept = _ort_layers(events, runs)
    return {"layers": layers, "profiled_ns": wall, "runtime_run_ms": run_ms, "layer_runs_kept": kept,
            "profiler": f"onnxruntime {ort.__version__} enable_profiling"}


def _quartile_runs(totals: list[int]) -> list[int]:
    """Indices of the runs whose total lies between the lower and upper quartile (inclusive)."""
    ordered = sorted(totals)
    n = len(ordered)
    lo, hi = ordered[(n - 1) // 4], ordered[(3 * (n - 1) + 3) // 4]
    return [i for i, t in enumerate(totals) if lo <= t <= hi]


def _ort_layers(events: list[dict[str, Any]], runs: int) -> tuple[list[dict[str, Any]], float, int]:
    """Each node's mean time per run over the last ``runs`` ``model_run`` windows, averaged
    over the runs whose node total lies between its quartiles (a preempted run drops out, as
    the protocol's trimmed mean drops it); also the mean ``model_run`` time and the runs kept."""
    windows = sorted((int(e["ts"]), int(e["ts"]) + int(e["dur"])) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    if len(windows) < runs:
        raise RuntimeError(f"onnxruntime's profile holds {len(windows)} runs, expected at least {runs}")
    starts = [lo for lo, _ in windows]
    nodes: dict[str, list[Any]] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith(_KERNEL):
            continue
        ts = int(e["ts"])
        at = bisect.bisect_right(starts, ts) - 1
        if at < 0 or ts > windows[at][1]:
            continue  # a warm-up run's node
        args = e.get("args", {})
        row = nodes.setdefault(name[: -len(_KERNEL)], [str(args.get("op_name", "")), str(args.get("provider", "")),
                                                       [0] * runs, ts])
        row[2][at] += int(e["dur"])
    totals = [sum(row[2][i] for row in nodes.values()) for i in range(runs)]
    kept = _quartile_runs(totals)
    order = sorted(nodes.items(), key=lambda item: item[1][3])  # execution order of the first run
    layers = [{"name": name, "op_type": op, "provider": provider,
               "ms": round(sum(per_run[i] for i in kept) / len(kept) / 1e3, 6)}
              for name, (op, provider, per_run, _) in order]
    run_ms = round(sum(hi - lo for lo, hi in windows) / runs / 1e3, 6)
    return layers, run_ms, len(kept)


def _profile_torchscript(request: dict[str, Any], runs: int, warm: int,
                         plain_group: Callable[[int], None], groups: int) -> dict[str, Any]:
    """torch.profiler over the loaded TorchScript module, after the protocol's groups (the
    profiler records every op while it is on, so the two cannot interleave): each op's own
    time (self time) per run; on CUDA the device time of the op's kernels. The frozen graph
    keeps no module names."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for g in range(groups):
        plain_group(g)
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
    return {"layers": layers, "profiled_ns": wall, "runtime_run_ms": None, "layer_runs_kept": runs,
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
_PROFILERS: dict[str, Callable[[dict[str, Any], int, int, Callable[[int], None], int], dict[str, Any]]] = {
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
    groups, per_group = int(proto["groups"]), int(proto["runs_per_group"])
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
    warm = _warm_up(run_once, int(proto.get("warmup_min_runs", 10)), float(proto.get("warmup_min_s", 0.5)), clock)
    rise, peak = memory.peak()  # before the profiled session exists
    gpu_peak = cuda_peak()
    samples: list[int] = []
    started = utc_now("microseconds")

    def plain_group(_: int) -> None:
        samples.extend(_time_runs(run_once, per_group, 0))

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        layered = profiler(request, runs, max(1, int(proto.get("warmup_min_runs", 10))), plain_group, groups)
    finally:
        if was_enabled:
            gc.enable()
    raw = RawRun(tuple(samples), warm, started, utc_now("microseconds"), {})
    facts.update(affinity=affinity, pid=os.getpid(), profiled_between_groups=runtime == "onnxruntime")
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
