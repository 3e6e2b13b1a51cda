"""The environment record written at the start of every campaign run.

What is readable is recorded, what is not is ``null`` (never guessed): host, OS, CPU model and
count, affinity, frequency governor and current/min/max frequency, thermal zone temperatures,
load average, memory, and the versions of Python, torch, onnxruntime, onnx, numpy and blox-lat
with the git commit of the blox-lat checkout. ``env_id`` is a sha256 prefix of the record.

Given a ``host_state`` (``blox-lat measure`` passes its campaign one) the record ends with it:
what the host was doing just before the campaign (the sample of
:func:`~blox_lat.harness.check_host`: its verdict, reason and the other processes). Without
one the record has no such key, and is what it was before.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from blox_lat._fs import utc_now
from blox_lat.harness._records import BASE_SCHEMA, ENVIRONMENT

__all__ = ["collect_environment", "cpu_facts", "environment_id"]

_SYS_CPU = Path("/sys/devices/system/cpu")
_SYS_THERMAL = Path("/sys/class/thermal")

def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _cpu_model() -> str | None:
    text = _read(Path("/proc/cpuinfo"))
    if text:
        for line in text.splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ar")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def cpu_facts() -> dict[str, Any]:
    """CPU model/count, affinity, governor and frequencies (kHz) per CPU where readable."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    per_cpu: dict[str, Any] = {}
    for cpu in affinity or range(os.cpu_count() or 0):
        freq = _SYS_CPU / f"cpu{cpu}" / "cpufreq"
        entry = {
            "governor": _read(freq / "scaling_governor"),
            "cur_khz": _int_or_none(_read(freq / "scaling_cur_freq")),
            "min_khz": _int_or_none(_read(freq / "scaling_min_freq")),
            "max_khz": _int_or_none(_read(freq / "scaling_max_freq")),
        }
        if any(v is not None for v in entry.values()):
            per_cpu[str(cpu)] = entry
    return {
        "model": _cpu_model(),
        "count": os.cpu_count(),
        "affinity": affinity,
        "machine": platform.machine(),
        "frequency": per_cpu or None,
    }


def _temperatures() -> dict[str, float] | None:
    temps: dict[str, float] = {}
    if _SYS_THERMAL.is_dir():
        for zone in sorted(_SYS_THERMAL.glob("thermal_zone*")):
            milli = _int_or_none(_read(zone / "temp"))
            if milli is not None:
                temps[f"{zone.name}:{_read(zone / 'type') or '?'}"] = milli / 1000.0
    return temps or None


def _memory_total_kb() -> int | None:
    text = _read(Path("/proc/meminfo"))
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            return _int_or_none(line.split()[1])
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> dict[str, Any]:
    """The commit of the blox-lat checkout this code runs from (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {"git_commit": None, "git_dirty": None}
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
    commit = head.stdout.strip() if head.returncode == 0 else None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"git_commit": commit, "git_dirty": dirty}


def environment_id(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "env_id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def collect_environment(*, device: str, device_facts: dict[str, Any] | None = None,
                        campaign_id: str, extra: dict[str, Any] | None = None,
                        schema: int = BASE_SCHEMA, host_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``environment`` journal record for a campaign run on ``device`` (schema 1; 2 when
    ``extra`` names the campaign's anchors)."""
    from blox_lat import __version__

    record: dict[str, Any] = {
        "schema": schema,
        "kind": ENVIRONMENT,
        "campaign_id": campaign_id,
        "recorded_at": utc_now(),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "cpu": cpu_facts(),
        "temperatures_c": _temperatures(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_total_kb": _memory_total_kb(),
        "versions": {
            "python": platform.python_version(),
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"),
            "onnx": _version("onnx"),
            "numpy": _version("numpy"),
            "blox_lat": __version__,
            **_git_commit(),
        },
        "device": device,
        "device_facts": device_facts or {},
        **(extra or {}),
    }
    if host_state is not None:
        record["host_state"] = host_state
    record["env_id"] = environment_id(record)
    return record
