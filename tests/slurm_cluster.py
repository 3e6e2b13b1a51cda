"""A real one-node Slurm cluster on localhost for tests (Debian's slurm-wlm and munge).

Everything lives in a temporary folder: a random munge key (owner munge, mode 0400) for a
private ``munged`` run as the munge user on its own socket, and a generated ``slurm.conf``
(free ports, state and spool folders, two CPUs as two slots, proctrack/linuxproc, task/none,
select/cons_tres with CR_CPU, no accounting, ReturnToService=2). ``slurmctld`` and ``slurmd``
run as root. ``SLURM_CONF`` points the clients (sbatch, squeue, scancel) at it. :meth:`stop`
shuts every daemon down and waits until none of them is left.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")


def slurm_missing() -> str | None:
    """Why a cluster cannot start here (None: it can)."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"Slurm/munge binaries missing ({', '.join(missing)}): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (install the munge package)"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two free neighbouring ports")


class SlurmCluster:
    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root = Path(root)
        self.cpus = cpus
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_dir = self.root / "munge"
        self.socket = self.munge_dir / "munge.sock"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: list[int] = []  # the daemons this cluster started

    # -- setup -----------------------------------------------------------------------------
    def _munge(self) -> None:
        munge = pwd.getpwnam("munge")
        self.root.chmod(0o755)
        self.munge_dir.mkdir()
        os.chown(self.munge_dir, munge.pw_uid, munge.pw_gid)
        self.munge_dir.chmod(0o711)  # clients reach the socket; nobody lists the folder
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
        d = self.munge_dir
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged"), f"--key-file={key}", f"--socket={self.socket}",
                        f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                        f"--seed-file={d / 'munged.seed'}"], check=True, capture_output=True, timeout=30)
        self.pids.append(_read_pid(d / "munged.pid"))

    def _write_conf(self) -> None:
        port = _free_port_pair()
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir()
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=bloxlat",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={port}", f"SlurmdPort={port + 1}",
            "AuthType=auth/munge", f"AuthInfo=socket={self.socket}", "CredType=cred/munge",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none", "ReturnToService=2", "MpiDefault=none",
            "KillWait=5",  # SIGTERM, then SIGKILL 5 s later (a cancelled task exits cleanly in between)
            "SchedulerParameters=sched_interval=1", "MinJobAge=300",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def start(self, timeout_s: float = 60.0) -> SlurmCluster:
        self._munge()
        self._write_conf()
        for daemon in ("slurmctld", "slurmd"):
            extra = ["-N", self.node] if daemon == "slurmd" else []
            subprocess.run([_which(daemon), "-f", str(self.conf), *extra], check=True, env=self.env,
                           capture_output=True, timeout=30)
            self.pids.append(_read_pid(self.root / f"{daemon}.pid"))
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.run("sinfo", "--noheader", "--format=%T", check=False).stdout.split()
            if out and all(s == "idle" for s in out):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not idle after {timeout_s:.0f} s (sinfo: {out}); logs in {self.root / 'log'}")
            time.sleep(0.3)

    # -- use -------------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([_which(cmd[0]), *cmd[1:]], env=self.env, capture_output=True, text=True,
                              check=check, timeout=timeout)

    def queued(self, name: str | None = None) -> list[str]:
        """``JOBID_TASK STATE`` lines of what is queued or running."""
        extra = [f"--name={name}"] if name else []
        return self.run("squeue", "--noheader", "--array", "--format=%A_%K %T", *extra).stdout.split("\n")[:-1]

    def wait_empty(self, name: str | None = None, timeout_s: float = 300.0) -> float:
        """Seconds until nothing (of ``name``) is queued or running."""
        start = time.monotonic()
        while self.queued(name):
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"jobs still queued after {timeout_s:.0f} s: {self.queued(name)}")
            time.sleep(0.3)
        return time.monotonic() - start

    # -- teardown ------------------------------------------------------------------------------
    def _alive(self, pids: list[int]) -> list[int]:
        return [p for p in pids if _running(p)]

    def stop(self, timeout_s: float = 60.0) -> None:
        """Cancel what runs and wait for it, shut slurmctld and slurmd down, stop munged; a daemon
        this cluster started that outlives all that is killed (by its recorded pid, nothing else)."""
        deadline = time.monotonic() + timeout_s
        if len(self.pids) == 3:
            self.run("scancel", "--full", "--user=root", check=False)
            while self.queued() and time.monotonic() < deadline:
                time.sleep(0.3)
            self.run("scontrol", "shutdown", check=False)
        slurm = self.pids[1:]
        while self._alive(slurm) and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged"), "--stop", f"--socket={self.socket}"],
                       capture_output=True, timeout=30, check=False)
        while self._alive(self.pids) and time.monotonic() < deadline + 10:
            time.sleep(0.2)
        for pid in self._alive(self.pids):
            os.kill(pid, signal.SIGKILL)

    def daemons_left(self) -> list[str]:
        """``pgrep`` lines of this cluster's daemons, and of any live slurmstepd, still running."""
        out = subprocess.run(["pgrep", "-a", "-f", f"{self.root}|slurmstepd"], capture_output=True, text=True,
                             check=False).stdout
        return [line for line in out.splitlines() if _running(int(line.split()[0]))
                and any(d in line for d in ("munged", "slurmctld", "slurmd", "slurmstepd"))]


def _read_pid(path: Path, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no pid in {path}") from None
            time.sleep(0.1)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reaped-by-nobody child of a container's init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
