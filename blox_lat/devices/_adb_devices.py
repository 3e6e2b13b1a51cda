"""The ADB devices this computer can see, with their state (``adb devices -l``).

adb-shell talks to one device directly and has no device list, so the list comes from the
platform's ``adb`` client when it is installed (it starts the adb server if none runs, exactly
as typing ``adb devices`` would). States are adb's own: ``device`` (ready), ``unauthorized``
(accept the "Allow USB debugging" prompt on the phone), ``offline``, ``no permissions``
(udev rules), ``recovery``...
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["AdbDeviceInfo", "AdbUnavailable", "list_adb_devices", "parse_adb_devices"]


class AdbUnavailable(Exception):
    """No ``adb`` client here, or it failed; the message says why (shown, never fatal)."""


@dataclass(frozen=True)
class AdbDeviceInfo:
    serial: str
    state: str
    details: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        return {"serial": self.serial, "state": self.state, **self.details}


def parse_adb_devices(text: str) -> list[AdbDeviceInfo]:
    """Parse ``adb devices -l``: ``SERIAL  STATE  key:value ...`` after the header line."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        serial, rest = parts[0], parts[1:]
        state_words = []
        while rest and ":" not in rest[0]:
            state_words.append(rest.pop(0))
        details = dict(p.split(":", 1) for p in rest if ":" in p)
        out.append(AdbDeviceInfo(serial, " ".join(state_words), details))
    return out


def list_adb_devices(adb: str | None = None, timeout_s: float = 20.0) -> list[AdbDeviceInfo]:
    exe = adb or shutil.which("adb")
    if exe is None:
        raise AdbUnavailable("the adb client is not installed (apt-get install adb), so USB devices "
                             "cannot be listed; TCP devices still work with --connect serial=HOST:PORT")
    try:
        result = subprocess.run([exe, "devices", "-l"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AdbUnavailable(f"'adb devices -l' failed: {exc}") from None
    if result.returncode != 0:
        raise AdbUnavailable(f"'adb devices -l' exited {result.returncode}: {result.stderr.strip()[:200]}")
    return parse_adb_devices(result.stdout)
