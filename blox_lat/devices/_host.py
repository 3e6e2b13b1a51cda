"""Is this host quiet enough to time models on? What else runs on the cores a worker may use.

:func:`sample_host` reads ``/proc`` twice, ``window_s`` apart (like ``pyperf system show``
does for its checks, without psutil): how busy each core in use was over the window
(``/proc/stat``), and which other processes used more than :data:`PROCESS_MIN_SHARE` of a core
(``/proc/<pid>/stat`` utime + stime deltas) and may run on those cores
(``Cpus_allowed_list``). Beside that, what is readable of the host: load average against the
cores in use, memory available, the frequency governor, current frequency and turbo/boost, and
thermal zones. A fact that cannot be read is ``None``, never guessed.

The verdict judges the window, not the load average: a host that was busy a minute ago and
is quiet now is quiet. It is ``busy`` when a core in use was busy at least
:data:`BUSY_CORE_SHARE` of the window (whoever used it: processes this view of ``/proc`` does
not show, another container's, count too), or, where ``/proc/stat`` cannot be read, when the
processes that may run there used that much; ``unknown`` when neither can be read. The
sampling process itself is left out (it sleeps through the window).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from blox_lat._fs import utc_now

__all__ = ["BUSY_CORE_SHARE", "PROCESS_MIN_SHARE", "BusyProcess", "HostState", "format_cpus", "sample_host"]

#: a core in use that was busy this share of the window (or more) makes the host busy: a
#: model timed there is then preempted in a run or more of every few, and its latency is the
#: host's as much as its own. Far above what an idle host's daemons use (a few %).
BUSY_CORE_SHARE = 0.25
#: a process that used at least this share of one core over the window is named
PROCESS_MIN_SHARE = 0.05
#: how much of its command line a named process keeps
_CMDLINE_CHARS = 120

QUIET, BUSY, UNKNOWN = "quiet", "busy", "unknown"


@dataclass(frozen=True)
class BusyProcess:
    """Another process that used ``cores`` (1.0 = one whole core) over the window."""

    pid: int
    name: str
    cores: float
    cmdline: str | None
    cpus_allowed: tuple[int, ...] | None
    last_cpu: int | None

    def describe(self) -> str:
        return f"pid {self.pid} {self.name} ({100 * self.cores:.0f} %)"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cores"] = round(self.cores, 3)
        data["cpus_allowed"] = list(self.cpus_allowed) if self.cpus_allowed is not None else None
        return data


@dataclass(frozen=True)
class HostState:
    """What :func:`sample_host` saw: the cores judged, how busy they were over the window and
    who used them, the host facts beside, and the verdict with its reason."""

    sampled_at: str
    window_s: float
    cpus: tuple[int, ...]
    cpu_count: int | None
    core_busy: dict[int, float] | None
    processes: tuple[BusyProcess, ...]
    load_average: tuple[float, float, float] | None
    memory_available_kb: int | None
    memory_total_kb: int | None
    governors: dict[int, str] | None
    frequency_khz: dict[int, int] | None
    turbo: bool | None
    temperatures_c: dict[str, float] | None
    verdict: str
    reason: str

    @property
    def busy(self) -> bool:
        return self.verdict == BUSY

    @property
    def quiet(self) -> bool:
        return self.verdict == QUIET

    @property
    def others_cores(self) -> float:
        """Cores' worth of CPU the named processes used over the window."""
        return sum(p.cores for p in self.processes)

    def to_dict(self) -> dict[str, Any]:
        def keyed(d: dict[int, Any] | None, digits: int | None = None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {str(k): (round(v, digits) if digits is not None else v) for k, v in d.items()}

        return {
            "verdict": self.verdict, "reason": self.reason, "sampled_at": self.sampled_at,
            "window_s": round(self.window_s, 3), "cpus": list(self.cpus), "cpu_count": self.cpu_count,
            "core_busy": keyed(self.core_busy, 3), "processes": [p.to_dict() for p in self.processes],
            "load_average": list(self.load_average) if self.load_average is not None else None,
            "memory_available_kb": self.memory_available_kb, "memory_total_kb": self.memory_total_kb,
            "governors": keyed(self.governors), "frequency_khz": keyed(self.frequency_khz),
            "turbo": self.turbo, "temperatures_c": self.temperatures_c,
        }


def format_cpus(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2,5'`` (the form ``--affinity`` and ``taskset -c`` take)."""
    out: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _parse_cpu_list(text: str) -> tuple[int, ...] | None:
    cpus: list[int] = []
    try:
        for part in text.strip().split(","):
            if not part:
                continue
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        return None
    return tuple(cpus)


class _Reader:
    """Files under ``/proc`` and ``/sys`` (or a fake tree in tests); unreadable means None."""

    def __init__(self, proc: Path, sys: Path) -> None:
        self.proc, self.sys = proc, sys

    @staticmethod
    def text(path: Path) -> str | None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def cpu_times(self) -> dict[int, tuple[int, int]] | None:
        """CPU -> (busy ticks, all ticks) from ``/proc/stat``."""
        text = self.text(self.proc / "stat")
        if text is None:
            return None
        times: dict[int, tuple[int, int]] = {}
        for line in text.splitlines():
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
                continue
            try:
                user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in (fields + ["0"] * 8)[:8])
            except ValueError:
                continue
            busy = user + nice + system + irq + softirq
            times[int(name[3:])] = (busy, busy + idle + iowait + steal)
        return times or None

    def process_ticks(self, exclude: set[int]) -> dict[int, tuple[str, int, int | None]]:
        """pid -> (name, utime + stime ticks, CPU it last ran on), every process readable."""
        out: dict[int, tuple[str, int, int | None]] = {}
        try:
            entries = [e for e in os.listdir(self.proc) if e.isdigit()]
        except OSError:
            return out
        for entry in entries:
            pid = int(entry)
            if pid in exclude:
                continue
            line = self.text(self.proc / entry / "stat")
            if not line or ")" not in line:
                continue
            head, _, rest = line.rpartition(")")
            fields = rest.split()
            try:
                ticks = int(fields[11]) + int(fields[12])
            except (IndexError, ValueError):
                continue
            last = int(fields[36]) if len(fields) > 36 and fields[36].lstrip("-").isdigit() else None
            out[pid] = (head.partition("(")[2], ticks, last)
        return out

    def cpus_allowed(self, pid: int) -> tuple[int, ...] | None:
        for line in (self.text(self.proc / str(pid) / "status") or "").splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return _parse_cpu_list(line.split(":", 1)[1])
        return None

    def cmdline(self, pid: int) -> str | None:
        raw = self.text(self.proc / str(pid) / "cmdline")
        if not raw:
            return None
        return " ".join(raw.rstrip("\0").split("\0"))[:_CMDLINE_CHARS]

    def load_average(self) -> tuple[float, float, float] | None:
        parts = (self.text(self.proc / "loadavg") or "").split()
        try:
            return (float(parts[0]), float(parts[1]), float(parts[2]))
        except (IndexError, ValueError):
            return None

    def meminfo(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in (self.text(self.proc / "meminfo") or "").splitlines():
            key, _, value = line.partition(":")
            if value.split() and value.split()[0].isdigit():
                out[key] = int(value.split()[0])
        return out

    def cpufreq(self, cpus: Sequence[int]) -> tuple[dict[int, str] | None, dict[int, int] | None, bool | None]:
        base = self.sys / "devices" / "system" / "cpu"
        governors: dict[int, str] = {}
        freqs: dict[int, int] = {}
        for cpu in cpus:
            governor = (self.text(base / f"cpu{cpu}" / "cpufreq" / "scaling_governor") or "").strip()
            if governor:
                governors[cpu] = governor
            freq = (self.text(base / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq") or "").strip()
            if freq.isdigit():
                freqs[cpu] = int(freq)
        turbo: bool | None = None
        no_turbo = (self.text(base / "intel_pstate" / "no_turbo") or "").strip()
        boost = (self.text(base / "cpufreq" / "boost") or "").strip()
        if no_turbo in ("0", "1"):
            turbo = no_turbo == "0"
        elif boost in ("0", "1"):
            turbo = boost == "1"
        return governors or None, freqs or None, turbo

    def temperatures(self) -> dict[str, float] | None:
        temps: dict[str, float] = {}
        base = self.sys / "class" / "thermal"
        try:
            zones = sorted(p for p in base.iterdir() if p.name.startswith("thermal_zone"))
        except OSError:
            return None
        for zone in zones:
            milli = (self.text(zone / "temp") or "").strip()
            if milli.lstrip("-").isdigit():
                kind = (self.text(zone / "type") or "").strip() or "?"
                temps[f"{zone.name}:{kind}"] = int(milli) / 1000.0
        return temps or None


def _verdict(cpus: tuple[int, ...], window_s: float, core_busy: dict[int, float] | None,
             processes: tuple[BusyProcess, ...], busy_share: float) -> tuple[str, str]:
    where = f"{len(cpus)} core{'s' if len(cpus) != 1 else ''} ({format_cpus(cpus)}) this worker may use"
    used = sum(p.cores for p in processes)
    who = (f"{len(processes)} other process{'es' if len(processes) != 1 else ''} used "
           f"{used:.1f} core{'s' if round(used, 1) != 1 else ''} and may run on the {where}: "
           + ", ".join(p.describe() for p in processes)) if processes else ""
    if core_busy is not None:
        shares = ", ".join(f"cpu{c} {100 * core_busy[c]:.0f} %" for c in cpus if c in core_busy)
        seen = f"busy over {window_s:.1f} s: {shares}"
        if any(v >= busy_share for v in core_busy.values()):
            if who:
                return BUSY, f"{who}; {seen}"
            return BUSY, (f"the {where} were {seen}, by no process this view of /proc shows "
                          "(another container or VM?)")
        return QUIET, f"the {where} were {seen}" + (f"; {who}" if who else "; no other process used "
                                                    f"{100 * PROCESS_MIN_SHARE:.0f} % of a core")
    if used / max(len(cpus), 1) >= busy_share:
        return BUSY, who + f" (over {window_s:.1f} s; per-core times unreadable)"
    nobody = f"no other process used {100 * PROCESS_MIN_SHARE:.0f} % of a core"
    return QUIET, f"{who or nobody} (over {window_s:.1f} s; per-core times unreadable)"


def sample_host(window_s: float = 1.0, cpus: Iterable[int] | None = None, *,
                busy_share: float = BUSY_CORE_SHARE, process_min_share: float = PROCESS_MIN_SHARE,
                proc: str | os.PathLike[str] = "/proc", sys: str | os.PathLike[str] = "/sys",
                exclude: Iterable[int] | None = None,
                sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> HostState:
    """Sample the host over ``window_s`` seconds, judging ``cpus`` (default: the CPUs this
    process may run on, ``os.sched_getaffinity``). ``exclude``: pids left out (default: this
    process). ``proc``, ``sys``, ``sleep`` and ``clock`` are for tests with a fake tree."""
    reader = _Reader(Path(proc), Path(sys))
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    judged = tuple(sorted(set(cpus)))
    skip = {os.getpid()} if exclude is None else set(exclude)
    clk_tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    cpu_before, procs_before, start = reader.cpu_times(), reader.process_ticks(skip), clock()
    sleep(window_s)
    cpu_after, procs_after, elapsed = reader.cpu_times(), reader.process_ticks(skip), clock() - start

    core_busy: dict[int, float] | None = None
    if cpu_before and cpu_after:
        core_busy = {}
        for cpu in judged:
            if cpu in cpu_before and cpu in cpu_after:
                busy = cpu_after[cpu][0] - cpu_before[cpu][0]
                total = cpu_after[cpu][1] - cpu_before[cpu][1]
                if total > 0:
                    core_busy[cpu] = min(max(busy / total, 0.0), 1.0)
        core_busy = core_busy or None

    found: list[BusyProcess] = []
    for pid, (name, ticks, last) in procs_after.items():
        before = procs_before.get(pid)
        if before is not None and before[0] != name and ticks < before[1]:
            continue  # a pid reused within the window
        delta = ticks - (before[1] if before is not None else 0)  # a process born in the window: all its ticks
        cores = delta / clk_tck / elapsed if elapsed > 0 else 0.0
        if cores < process_min_share:
            continue
        allowed = reader.cpus_allowed(pid)
        if allowed is not None and not set(allowed) & set(judged):
            continue  # it cannot run where the worker runs
        found.append(BusyProcess(pid, name, cores, reader.cmdline(pid), allowed, last))
    processes = tuple(sorted(found, key=lambda p: (-p.cores, p.pid)))

    verdict, reason = _verdict(judged, elapsed, core_busy, processes, busy_share)
    if cpu_before is None and not procs_before and not procs_after:
        verdict, reason = UNKNOWN, f"{Path(proc)} could not be read: nothing is known about the other work"
    mem = reader.meminfo()
    governors, freqs, turbo = reader.cpufreq(judged)
    return HostState(
        sampled_at=utc_now(), window_s=elapsed, cpus=judged, cpu_count=os.cpu_count(), core_busy=core_busy,
        processes=processes, load_average=reader.load_average(), memory_available_kb=mem.get("MemAvailable"),
        memory_total_kb=mem.get("MemTotal"), governors=governors, frequency_khz=freqs, turbo=turbo,
        temperatures_c=reader.temperatures(), verdict=verdict, reason=reason,
    )
