"""Facts about a remote device, read once per campaign, and its temperatures, read per model.

Everything is read with one fixed shell script per call (no user input is interpolated), so a
phone costs one ADB round trip and an SSH host one command. Missing files or tools give
missing keys, never an error: a fact that cannot be read is simply not recorded.

- Android (ADB): ``getprop`` model, manufacturer, board/SoC, build fingerprint and SDK;
  thermal zones (``/sys/class/thermal/thermal_zone*/{type,temp}``, millidegrees -> degrees C);
  CPU frequencies (``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq``, kHz).
- SSH hosts: ``uname``, CPU model, and for GPUs ``nvidia-smi`` name, driver and the CUDA
  version it reports; the runner's probe adds torch's own CUDA version.
- :func:`wait_until_cool` polls the temperatures until the hottest zone falls below a
  threshold (with a timeout), because a phone that throttles gives a different latency.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from blox_lat.devices._transport import Transport

__all__ = ["read_device_facts", "read_temperatures", "wait_until_cool"]

_ANDROID_PROPS = {
    "ro.product.model": "model",
    "ro.product.manufacturer": "manufacturer",
    "ro.product.board": "board",
    "ro.board.platform": "platform",
    "ro.soc.model": "soc",
    "ro.build.fingerprint": "fingerprint",
    "ro.build.version.sdk": "sdk",
}

_THERMAL_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; do "
    '[ -r "$z/temp" ] || continue; '
    'printf "T %s %s %s\\n" "${z##*/}" "$(cat "$z/type" 2>/dev/null | tr " " _)" "$(cat "$z/temp" 2>/dev/null)"; '
    "done"
)
_CPUFREQ_SCRIPT = (
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
    '[ -r "$c/cpufreq/scaling_cur_freq" ] || continue; '
    'printf "F %s %s %s\\n" "${c##*/}" "$(cat "$c/cpufreq/scaling_cur_freq")" '
    '"$(cat "$c/cpufreq/scaling_governor" 2>/dev/null)"; '
    "done"
)
_ANDROID_SCRIPT = (
    "".join(f'printf "P {key} %s\\n" "$(getprop {key} 2>/dev/null)"; ' for key in _ANDROID_PROPS)
    + _THERMAL_SCRIPT + "; " + _CPUFREQ_SCRIPT
)
_HOST_SCRIPT = (
    'printf "U %s\\n" "$(uname -srm)"; '
    'printf "C %s\\n" "$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2-)"; '
    "command -v nvidia-smi >/dev/null 2>&1 && "
    "nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/G /'; "
    "command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | sed 's/^/V /'; "
    + _THERMAL_SCRIPT + "; " + _CPUFREQ_SCRIPT
)

_LINE_T = re.compile(r"\AT (\S+) (\S*) (-?\d+)\s*\Z")
_LINE_F = re.compile(r"\AF (\S+) (\d+)(?: (\S+))?\s*\Z")


def _millideg(value: int) -> float:
    """Kernel thermal zones report millidegrees; some old ones report whole degrees."""
    return value / 1000.0 if abs(value) >= 200 else float(value)


def _parse(stdout: str) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    temps: dict[str, float] = {}
    freqs: dict[str, int] = {}
    governors: dict[str, str] = {}
    gpus: list[dict[str, str]] = []
    for line in stdout.splitlines():
        if m := _LINE_T.match(line):
            zone, kind, value = m.groups()
            temps[f"{zone}:{kind}" if kind else zone] = _millideg(int(value))
        elif m := _LINE_F.match(line):
            freqs[m.group(1)] = int(m.group(2))
            if m.group(3):
                governors[m.group(1)] = m.group(3)
        elif line.startswith("P "):
            key, _, value = line[2:].partition(" ")
            if value.strip() and key in _ANDROID_PROPS:
                facts[_ANDROID_PROPS[key]] = value.strip()
        elif line.startswith("U ") and line[2:].strip():
            facts["uname"] = line[2:].strip()
        elif line.startswith("C ") and line[2:].strip():
            facts["cpu_model"] = line[2:].strip()
        elif line.startswith("G "):
            name, _, driver = line[2:].rpartition(",")
            gpus.append({"name": name.strip(), "driver": driver.strip()})
        elif line.startswith("V "):
            facts["cuda_driver_version"] = line[2:].replace("CUDA Version:", "").strip()
    if temps:
        facts["temperatures_c"] = temps
    if freqs:
        facts["cpu_freq_khz"] = freqs
    if governors:
        facts["cpu_governors"] = governors
    if gpus:
        facts["gpus"] = gpus
    return facts


def read_device_facts(transport: Transport, kind: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """Model/SoC/build/thermal/frequency facts (Android) or uname/CPU/GPU facts (hosts)."""
    kind = kind or transport.kind
    script = _ANDROID_SCRIPT if kind == "adb" else _HOST_SCRIPT
    result = transport.run(["sh", "-c", script], timeout_s=timeout_s)
    return _parse(result.stdout)


def read_temperatures(transport: Transport, timeout_s: float = 30.0) -> dict[str, float]:
    """Thermal zone -> degrees C (empty where the device exposes none)."""
    result = transport.run(["sh", "-c", _THERMAL_SCRIPT], timeout_s=timeout_s)
    return _parse(result.stdout).get("temperatures_c", {})


def wait_until_cool(
    transport: Transport,
    max_c: float,
    timeout_s: float = 300.0,
    poll_s: float = 5.0,
    *,
    zones: Sequence[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until every thermal zone (or those whose name contains one of ``zones``) is below
    ``max_c``, or ``timeout_s`` passes. Never raises for heat: returns ``temperatures_c``,
    ``hottest_c``, ``waited_s`` and ``cool`` for the caller to record."""
    start = clock()
    while True:
        temps = read_temperatures(transport)
        if zones:
            temps = {k: v for k, v in temps.items() if any(z in k for z in zones)}
        hottest = max(temps.values(), default=None)
        waited = clock() - start
        if hottest is None or hottest < max_c or waited >= timeout_s:
            return {"temperatures_c": temps, "hottest_c": hottest, "waited_s": round(waited, 3),
                    "cool": hottest is None or hottest < max_c}
        sleep(min(poll_s, max(0.0, timeout_s - waited)))
