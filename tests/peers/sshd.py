"""A throw-away real OpenSSH server on 127.0.0.1 for transport tests.

Keys (host key, an authorised client key and an unauthorised one) are generated with
``ssh-keygen`` in a temporary directory per instance; ``sshd -D -e -f <own config>`` runs with
``StrictModes no`` and ``UsePAM no`` and only accepts the authorised client key. Readiness is
the server's ``SSH-2.0`` banner on the port, not a sleep.

``stop()`` kills the listener *and* its per-connection children: sshd puts each connection in
its own session (``setsid``), so killing the listener's process group alone would leave open
connections alive and a "server died mid-sequence" test would prove nothing.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")


def sshd_available() -> str | None:
    """None when sshd and ssh-keygen can be used, else the reason to skip."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not installed (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not installed (apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (read from /proc; no psutil dependency)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SshServer:
    """``start()`` / ``stop()`` / ``restart()`` a real sshd; the port survives restarts."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = getpass.getuser()
        self.host_key = self.workdir / "host_ed25519"
        self.client_key = self.workdir / "client_ed25519"
        self.wrong_key = self.workdir / "wrong_ed25519"
        self.known_hosts = self.workdir / "known_hosts"
        self.config = self.workdir / "sshd_config"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / "sshd.log"

    # -- setup ------------------------------------------------------------------------------
    def _keygen(self, path: Path) -> None:
        if not path.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "blox-lat-test", "-f", str(path)],
                check=True,
            )

    def _prepare(self) -> None:
        for key in (self.host_key, self.client_key, self.wrong_key):
            self._keygen(key)
        (self.workdir / "authorized_keys").write_text(
            Path(f"{self.client_key}.pub").read_text()
        )
        host_pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        sftp = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), "internal-sftp")
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "LogLevel ERROR",
                    f"Subsystem sftp {sftp}",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # sshd refuses to start as root without its privilege-separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        if self._proc is not None:
            return
        if not self.config.exists():
            self._prepare()
        log = self._log.open("ab")
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError:
                time.sleep(0.02)  # polling interval of the readiness check
        self.stop()
        raise RuntimeError(f"sshd not ready on port {self.port} after {timeout_s} s: {self.log_tail()}")

    def stop(self) -> None:
        """Kill the server and every live connection (SIGKILL: a crash, not a shutdown)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pid in _children(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
