"""Is this host quiet enough to time models on? What else runs on the cores a worker may use.

:func:`sample_host` reads ``/proc`` twice, ``window_s`` apart (like ``pyperf system show``
does for its checks, without psutil): how busy each core in use was over the window
(``/proc/stat``), and which other processes used more than :data:`PROCESS_MIN_SHARE` of a core
(``/proc/<pid>/stat`` utime + stime deltas) and may run on those cores
(``Cpus_allowed_list``). Beside that, what is readable of the host: load average against the
cores in use, memory available, the frequency governor, current frequency and turbo/boost, and
thermal zones. A fact that cannot be read is ``None``, never guessed.

:func:`sample_remote_host` does the same for the host at the other end of an SSH transport:
only the reading differs (:class:`HostFiles`: this host's files, or ``sh`` and ``cat`` run
there, every path an argument quoted by the transport); the texts go to the same parsers and
the same verdict, so a remote host is judged exactly as this one.

The verdict judges the window, not the load average: a host that was busy a minute ago and
is quiet now is quiet. It is ``busy`` when a core in use was busy at least
:data:`BUSY_CORE_SHARE` of the window (whoever used it: processes this view of ``/proc`` does
not show, another container's, count too), or, where ``/proc/stat`` cannot be read, when the
processes that may run there used that much; ``unknown`` when neither can be read. The
sampling process itself is left out (it sleeps through the window).
"""

from __future__ import annotations

import abc
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from blox_lat._fs import utc_now

__all__ = ["BUSY_CORE_SHARE", "NOT_CHECKED", "PROCESS_MIN_SHARE", "BusyProcess", "HostFiles", "HostState", "RemoteFiles",
           "format_cpus", "sample_device_hosts", "sample_files", "sample_host", "sample_remote_host"]

#: a core in use that was busy this share of the window (or more) makes the host busy: a
#: model timed there is then preempted in a run or more of every few, and its latency is the
#: host's as much as its own. Far above what an idle host's daemons use (a few %).
BUSY_CORE_SHARE = 0.25
#: a process that used at least this share of one core over the window is named
PROCESS_MIN_SHARE = 0.05
#: how much of its command line a named process keeps
_CMDLINE_CHARS = 120

QUIET, BUSY, UNKNOWN = "quiet", "busy", "unknown"
#: the verdict for a host no sample was taken of (an ADB phone's), or one that could not be reached
NOT_CHECKED = "not checked"


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

    @classmethod
    def unsampled(cls, verdict: str, reason: str, cpus: Iterable[int] = ()) -> HostState:
        """A host no window was taken of: ``unknown`` (it could not be reached) or
        :data:`NOT_CHECKED` (a kind of host the check does not read), every fact None."""
        return cls(sampled_at=utc_now(), window_s=0.0, cpus=tuple(sorted(set(cpus))), cpu_count=None,
                   core_busy=None, processes=(), load_average=None, memory_available_kb=None,
                   memory_total_kb=None, governors=None, frequency_khz=None, turbo=None,
                   temperatures_c=None, verdict=verdict, reason=reason)

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


# -- parsing: the texts of /proc and /sys files, wherever they were read ----------------------

def _parse_cpu_times(text: str | None) -> dict[int, tuple[int, int]] | None:
    """CPU -> (busy ticks, all ticks) from the text of ``/proc/stat``."""
    times: dict[int, tuple[int, int]] = {}
    for line in (text or "").splitlines():
        name, *fields = line.split() or [""]
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        try:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in (fields + ["0"] * 8)[:8])
        except ValueError:
            continue
        busy = user + nice + system + irq + softirq
        times[int(name[3:])] = (busy, busy + idle + iowait + steal)
    return times or None


def _parse_process_stat(line: str) -> tuple[str, int, int | None] | None:
    """(name, utime + stime ticks, CPU it last ran on) from ``/proc/<pid>/stat``; the name may
    hold spaces and parentheses, so the fields are counted from the last ``)``."""
    if ")" not in line:
        return None
    head, _, rest = line.rpartition(")")
    fields = rest.split()
    try:
        ticks = int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None
    last = int(fields[36]) if len(fields) > 36 and fields[36].lstrip("-").isdigit() else None
    return head.partition("(")[2], ticks, last


def _parse_cpus_allowed(status: str | None) -> tuple[int, ...] | None:
    for line in (status or "").splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return _parse_cpu_list(line.split(":", 1)[1])
    return None


def _parse_cmdline(raw: str | None) -> str | None:
    if not raw:
        return None
    return " ".join(raw.rstrip("\0").split("\0"))[:_CMDLINE_CHARS]


def _parse_load_average(text: str | None) -> tuple[float, float, float] | None:
    parts = (text or "").split()
    try:
        return (float(parts[0]), float(parts[1]), float(parts[2]))
    except (IndexError, ValueError):
        return None


def _parse_meminfo(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            out[key] = int(value.split()[0])
    return out


def _parse_uptime(text: str | None) -> float | None:
    try:
        return float((text or "").split()[0])
    except (IndexError, ValueError):
        return None


def _strip(text: str | None) -> str:
    return (text or "").strip()


# -- reading: the one thing a local and a remote sample differ in ------------------------------

@dataclass(frozen=True)
class _Window:
    """The texts read at both ends of the window: ``/proc/stat``, every ``/proc/<pid>/stat``
    (pid -> text), the window's length, the host's clock ticks, and the pids of the sampler."""

    stat: tuple[str | None, str | None]
    processes: tuple[dict[int, str], dict[int, str]]
    elapsed_s: float
    clk_tck: int
    exclude: frozenset[int]


class HostFiles(abc.ABC):
    """How a host's ``/proc`` and ``/sys`` files are read (this host's, or one over a transport).
    Readers return the files' texts, None for one that cannot be read; every fact is parsed from
    those texts by the same code, so a remote host is judged exactly as this one."""

    def __init__(self, proc: str, sys: str) -> None:
        self.proc, self.sys = str(proc).rstrip("/") or "/", str(sys).rstrip("/") or "/"

    @abc.abstractmethod
    def window(self, window_s: float) -> _Window:
        """``/proc/stat`` and the processes' ``stat`` files, read ``window_s`` apart."""

    @abc.abstractmethod
    def read(self, paths: Sequence[str]) -> dict[str, str | None]:
        """Each path's text, None where it cannot be read."""

    @abc.abstractmethod
    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory, None where it cannot be listed."""

    @abc.abstractmethod
    def allowed_cpus(self) -> tuple[int, ...] | None:
        """The CPUs a worker started there may use (the cores judged by default)."""

    @abc.abstractmethod
    def cpu_count(self, cpu_times: dict[int, tuple[int, int]] | None) -> int | None:
        """How many CPUs the host has (``cpu_times``: what ``/proc/stat`` showed)."""


class _LocalFiles(HostFiles):
    """This host's files (or a fake tree in tests)."""

    def __init__(self, proc: str, sys: str, exclude: frozenset[int], sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        super().__init__(proc, sys)
        self.exclude, self.sleep, self.clock = exclude, sleep, clock

    @staticmethod
    def _text(path: str) -> str | None:
        try:
            return Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def _processes(self) -> dict[int, str]:
        try:
            entries = [e for e in os.listdir(self.proc) if e.isdigit()]
        except OSError:
            return {}
        texts = {int(e): self._text(f"{self.proc}/{e}/stat") for e in entries}
        return {pid: text for pid, text in texts.items() if text}

    def window(self, window_s: float) -> _Window:
        stat_before, procs_before, start = self._text(f"{self.proc}/stat"), self._processes(), self.clock()
        self.sleep(window_s)
        stat_after, procs_after, elapsed = self._text(f"{self.proc}/stat"), self._processes(), self.clock() - start
        clk_tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return _Window((stat_before, stat_after), (procs_before, procs_after), elapsed, clk_tck, self.exclude)

    def read(self, paths: Sequence[str]) -> dict[str, str | None]:
        return {path: self._text(path) for path in paths}

    def listdir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return None

    def allowed_cpus(self) -> tuple[int, ...] | None:
        if hasattr(os, "sched_getaffinity"):
            return tuple(sorted(os.sched_getaffinity(0)))
        return tuple(range(os.cpu_count() or 1))

    def cpu_count(self, cpu_times: dict[int, tuple[int, int]] | None) -> int | None:
        return os.cpu_count()


#: the remote window: POSIX sh and cat only (no Python needed there). The /proc/stat reads sit
#: next to the sleep, so the cores' window holds none of the sampler's own reading; each part
#: is introduced by a line with a random token, so no file's text can end it.
_REMOTE_WINDOW = r"""p=$1 w=$2 t=$3
part() { printf '\n%s %s\n' "$t" "$1"; }
part pid; echo "$$"
part clk; getconf CLK_TCK 2>/dev/null
part self; cat "$p/self/status" 2>/dev/null
part procs; cat "$p"/[0-9]*/stat 2>/dev/null
part uptime; cat "$p/uptime" 2>/dev/null
part stat; cat "$p/stat" 2>/dev/null
sleep "$w"
part stat; cat "$p/stat" 2>/dev/null
part uptime; cat "$p/uptime" 2>/dev/null
part procs; cat "$p"/[0-9]*/stat 2>/dev/null
part end
"""
#: the remote reads: each file introduced by a token line, one that could not be read followed
#: by a ``none`` line
_REMOTE_READ = r"""t=$1; shift
for f in "$@"; do
  printf '\n%s file\n' "$t"
  cat -- "$f" 2>/dev/null || printf '\n%s none\n' "$t"
done
printf '\n%s end\n' "$t"
"""


def _parts(output: str, token: str) -> list[tuple[str, str]]:
    """``[(part name, text), ...]`` from the output of the scripts above."""
    pieces = re.split(rf"\n{re.escape(token)} (\w+)\n", output)
    return list(zip(pieces[1::2], pieces[2::2]))


class RemoteFiles(HostFiles):
    """A remote host's files, read over its transport with ``sh`` and ``cat``: one command for
    the window (both ends and the sleep between run there), one listing, one read of the
    remaining files. Every path goes as its own argument, quoted by the transport."""

    def __init__(self, transport: Any, proc: str = "/proc", sys: str = "/sys", timeout_s: float = 30.0) -> None:
        super().__init__(proc, sys)
        self.transport, self.timeout_s = transport, timeout_s
        self._self_status: str | None = None

    def _run(self, script: str, *args: str, extra_s: float = 0.0) -> str:
        result = self.transport.run(["sh", "-c", script, "sh", *args], timeout_s=self.timeout_s + extra_s)
        return result.stdout

    def window(self, window_s: float) -> _Window:
        token = f"@@blox-lat-{secrets.token_hex(8)}"
        parts = _parts(self._run(_REMOTE_WINDOW, self.proc, f"{max(window_s, 0.0):.3f}", token, extra_s=window_s),
                       token)
        named: dict[str, list[str]] = {}
        for name, text in parts:
            named.setdefault(name, []).append(text)
        if "end" not in named:
            from blox_lat.devices._transport import TransportError

            raise TransportError(f"the host sample on {self.transport!r} ended early: no end mark in its output")

        def first(name: str, index: int = 0) -> str | None:
            texts = named.get(name, [])
            return texts[index] if len(texts) > index and texts[index] else None

        def processes(index: int) -> dict[int, str]:
            out: dict[int, str] = {}
            for line in (first("procs", index) or "").splitlines():
                pid = line.split(" ", 1)[0]
                if pid.isdigit():
                    out[int(pid)] = line
            return out

        up = (_parse_uptime(first("uptime", 0)), _parse_uptime(first("uptime", 1)))
        elapsed = up[1] - up[0] if up[0] is not None and up[1] is not None else window_s
        clk = _strip(first("clk"))
        shell = _strip(first("pid"))
        self._self_status = first("self")
        return _Window((first("stat", 0), first("stat", 1)), (processes(0), processes(1)), elapsed,
                       int(clk) if clk.isdigit() and int(clk) > 0 else 100,
                       frozenset({int(shell)} if shell.isdigit() else ()))

    def read(self, paths: Sequence[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        token = f"@@blox-lat-{secrets.token_hex(8)}"
        texts: list[str | None] = []
        for name, text in _parts(self._run(_REMOTE_READ, token, *paths), token):
            if name == "file":
                texts.append(text)
            elif name == "none" and texts:
                texts[-1] = None
        return {path: texts[i] if i < len(texts) else None for i, path in enumerate(paths)}

    def listdir(self, path: str) -> list[str] | None:
        result = self.transport.run(["ls", "-1A", "--", path], timeout_s=self.timeout_s)
        return sorted(result.stdout.splitlines()) if result.exit_status == 0 else None

    def allowed_cpus(self) -> tuple[int, ...] | None:
        return _parse_cpus_allowed(self._self_status)

    def cpu_count(self, cpu_times: dict[int, tuple[int, int]] | None) -> int | None:
        return len(cpu_times) if cpu_times else None


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
    """Sample this host over ``window_s`` seconds, judging ``cpus`` (default: the CPUs this
    process may run on, ``os.sched_getaffinity``). ``exclude``: pids left out (default: this
    process). ``proc``, ``sys``, ``sleep`` and ``clock`` are for tests with a fake tree."""
    skip = frozenset({os.getpid()} if exclude is None else exclude)
    files = _LocalFiles(os.fspath(proc), os.fspath(sys), skip, sleep, clock)
    return sample_files(files, window_s, cpus, busy_share=busy_share, process_min_share=process_min_share)


def sample_remote_host(transport: Any, window_s: float = 1.0, cpus: Iterable[int] | None = None, *,
                       busy_share: float = BUSY_CORE_SHARE, process_min_share: float = PROCESS_MIN_SHARE,
                       proc: str = "/proc", sys: str = "/sys") -> HostState:
    """Sample the host at the other end of ``transport`` (SSH) like :func:`sample_host` does
    this one, judging ``cpus`` (default: the CPUs a process started there may use). It needs
    ``sh`` and ``cat`` there, no Python; the sampling shell is left out. Transport errors
    propagate (:class:`~blox_lat.devices.TransportError`)."""
    return sample_files(RemoteFiles(transport, proc, sys), window_s, cpus, busy_share=busy_share,
                        process_min_share=process_min_share)


def _core_busy(judged: tuple[int, ...], before: dict[int, tuple[int, int]] | None,
               after: dict[int, tuple[int, int]] | None) -> dict[int, float] | None:
    if not before or not after:
        return None
    core_busy: dict[int, float] = {}
    for cpu in judged:
        if cpu in before and cpu in after:
            busy = after[cpu][0] - before[cpu][0]
            total = after[cpu][1] - before[cpu][1]
            if total > 0:
                core_busy[cpu] = min(max(busy / total, 0.0), 1.0)
    return core_busy or None


def _candidates(window: _Window, min_share: float) -> list[tuple[int, str, float, int | None]]:
    """(pid, name, cores, last CPU) of every process that used ``min_share`` of a core or more."""
    def parsed(texts: dict[int, str]) -> dict[int, tuple[str, int, int | None]]:
        out = {}
        for pid, text in texts.items():
            fields = _parse_process_stat(text) if pid not in window.exclude else None
            if fields is not None:
                out[pid] = fields
        return out

    before, after = parsed(window.processes[0]), parsed(window.processes[1])
    found = []
    for pid, (name, ticks, last) in after.items():
        prior = before.get(pid)
        if prior is not None and prior[0] != name and ticks < prior[1]:
            continue  # a pid reused within the window
        delta = ticks - (prior[1] if prior is not None else 0)  # a process born in the window: all its ticks
        cores = delta / window.clk_tck / window.elapsed_s if window.elapsed_s > 0 else 0.0
        if cores >= min_share:
            found.append((pid, name, cores, last))
    return found


def sample_files(files: HostFiles, window_s: float = 1.0, cpus: Iterable[int] | None = None, *,
                 busy_share: float = BUSY_CORE_SHARE, process_min_share: float = PROCESS_MIN_SHARE) -> HostState:
    """Sample the host whose files ``files`` reads: the window, then the facts beside it."""
    window = files.window(window_s)
    cpu_before, cpu_after = (_parse_cpu_times(text) for text in window.stat)
    if cpus is None:
        cpus = files.allowed_cpus() or sorted(cpu_after or cpu_before or ())
    judged = tuple(sorted(set(cpus)))
    core_busy = _core_busy(judged, cpu_before, cpu_after)
    candidates = _candidates(window, process_min_share)

    proc, cpu_dir = files.proc, f"{files.sys}/devices/system/cpu"
    thermal = f"{files.sys}/class/thermal"
    zones = [z for z in files.listdir(thermal) or [] if z.startswith("thermal_zone")]
    paths = [f"{proc}/loadavg", f"{proc}/meminfo", f"{cpu_dir}/intel_pstate/no_turbo", f"{cpu_dir}/cpufreq/boost"]
    paths += [f"{cpu_dir}/cpu{c}/cpufreq/{name}" for c in judged for name in ("scaling_governor", "scaling_cur_freq")]
    paths += [f"{thermal}/{z}/{name}" for z in zones for name in ("temp", "type")]
    paths += [f"{proc}/{pid}/{name}" for pid, *_ in candidates for name in ("status", "cmdline")]
    texts = files.read(paths)

    found: list[BusyProcess] = []
    for pid, name, cores, last in candidates:
        allowed = _parse_cpus_allowed(texts[f"{proc}/{pid}/status"])
        if allowed is not None and not set(allowed) & set(judged):
            continue  # it cannot run where the worker runs
        found.append(BusyProcess(pid, name, cores, _parse_cmdline(texts[f"{proc}/{pid}/cmdline"]), allowed, last))
    processes = tuple(sorted(found, key=lambda p: (-p.cores, p.pid)))

    verdict, reason = _verdict(judged, window.elapsed_s, core_busy, processes, busy_share)
    if cpu_before is None and not any(window.processes):
        verdict, reason = UNKNOWN, f"{proc} could not be read: nothing is known about the other work"
    mem = _parse_meminfo(texts[f"{proc}/meminfo"])
    governors = {c: g for c in judged if (g := _strip(texts[f"{cpu_dir}/cpu{c}/cpufreq/scaling_governor"]))}
    freqs = {c: int(f) for c in judged if (f := _strip(texts[f"{cpu_dir}/cpu{c}/cpufreq/scaling_cur_freq"])).isdigit()}
    no_turbo, boost = _strip(texts[f"{cpu_dir}/intel_pstate/no_turbo"]), _strip(texts[f"{cpu_dir}/cpufreq/boost"])
    turbo = (no_turbo == "0") if no_turbo in ("0", "1") else (boost == "1") if boost in ("0", "1") else None
    temps: dict[str, float] = {}
    for zone in zones:
        milli = _strip(texts[f"{thermal}/{zone}/temp"])
        if milli.lstrip("-").isdigit():
            temps[f"{zone}:{_strip(texts[f'{thermal}/{zone}/type']) or '?'}"] = int(milli) / 1000.0
    return HostState(
        sampled_at=utc_now(), window_s=window.elapsed_s, cpus=judged, cpu_count=files.cpu_count(cpu_after),
        core_busy=core_busy, processes=processes, load_average=_parse_load_average(texts[f"{proc}/loadavg"]),
        memory_available_kb=mem.get("MemAvailable"), memory_total_kb=mem.get("MemTotal"),
        governors=governors or None, frequency_khz=freqs or None, turbo=turbo, temperatures_c=temps or None,
        verdict=verdict, reason=reason,
    )


#: the order in which a farm's hosts are reported: the worst first
_WORST_FIRST = (BUSY, UNKNOWN, NOT_CHECKED, QUIET)


def _sample_remote_device(profile: Any, connection: Mapping[str, Any] | None, window_s: float,
                          cpus: Iterable[int] | None) -> HostState:
    from blox_lat.devices._connect import open_transport
    from blox_lat.errors import BloxLatError

    try:
        transport = open_transport(profile, connection)
        with transport:
            return sample_remote_host(transport, window_s, cpus)
    except BloxLatError as exc:
        return HostState.unsampled(UNKNOWN, f"the host of device {profile.name!r} could not be read: "
                                   + " ".join(str(exc).split()), cpus or ())


def sample_device_hosts(profiles: Sequence[Any], window_s: float = 1.0, cpus: Iterable[int] | None = None, *,
                        connection: Mapping[str, Any] | None = None) -> HostState:
    """The host the devices ``profiles`` time on: this one for local devices
    (:func:`sample_host`), the remote machine for SSH devices (:func:`sample_remote_host`, over a
    transport opened with ``connection`` overriding the profile's settings, as ``--connect``
    does), :data:`NOT_CHECKED` for ADB devices (a phone's other work is not read). A host that
    cannot be reached is ``unknown``, with the reason. Several hosts (a farm): the worst state
    of all, its reason naming the device."""
    cpus = list(cpus) if cpus is not None else None
    states: list[tuple[str, HostState]] = []
    local = [p for p in profiles if p.transport == "local"]
    if local:
        states.append((local[0].name, sample_host(window_s, cpus)))
    for profile in profiles:
        if profile.transport == "ssh":
            states.append((profile.name, _sample_remote_device(profile, connection, window_s, cpus)))
        elif profile.transport != "local":
            states.append((profile.name, HostState.unsampled(
                NOT_CHECKED, f"the host of {profile.transport} device {profile.name!r} is not checked: only local "
                "and SSH hosts are read", cpus or ())))
    if len(states) == 1:
        return states[0][1]
    name, worst = min(states, key=lambda s: _WORST_FIRST.index(s[1].verdict))
    return replace(worst, reason=f"device {name!r}: {worst.reason}")
