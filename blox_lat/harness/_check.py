"""``blox-lat devices check NAME``: prove a device can be measured, one step at a time.

Steps: connect (and authenticate, host key included), round-trip a file through the
device's work directory (push, remote sha256, pull), run the runtime's probe (the runner
bundle's runtime versions, or SNPE's DSP availability), and read the device facts. Every step
is reported with its time and outcome; the first failure stops the check, because later steps
need the earlier ones. It lives in the harness because the probe is the runner's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat.devices import DeviceProfile, read_device_facts
from blox_lat.errors import BloxLatError
from blox_lat.harness._factory import get_runner
from blox_lat.harness._runners import Probing

__all__ = ["CheckStep", "check_device"]

_Outcome = tuple[bool, str, dict[str, Any]]


@dataclass(frozen=True)
class CheckStep:
    name: str
    ok: bool
    detail: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "detail": self.detail,
                "seconds": round(self.seconds, 3), **({"data": self.data} if self.data else {})}


def _runtime_verdict(profile: DeviceProfile, facts: dict[str, Any]) -> tuple[bool, str]:
    if profile.runtime == "snpe":
        if facts.get("dsp_available"):
            return True, f"SNPE {facts.get('snpe_version') or '(version unknown)'}, DSP libraries present"
        return False, ("DSP not available: " + str(facts.get("sdk_error") or
                       "snpe-net-run did not run or no FastRPC libraries in /vendor/lib/rfsa/adsp or /dsp"))
    package = "onnxruntime" if profile.runtime == "onnxruntime" else "torch"
    if not facts.get(package):
        return False, f"{package} is not importable by the device's Python {facts.get('python') or ''}".rstrip()
    return True, f"Python {facts.get('python')}, {package} {facts[package]}"


class _Check:
    """The steps of one check, each a method returning ``(ok, detail, data)``."""

    def __init__(self, profile: DeviceProfile, connection: Mapping[str, Any] | None,
                 on_step: Callable[[CheckStep], None] | None) -> None:
        self.profile = profile
        self.connection = dict(connection or {}) or None
        self.on_step = on_step
        self.steps: list[CheckStep] = []
        self.runner: Any = None
        self.transport: Any = None

    def record(self, name: str, fn: Callable[[], _Outcome]) -> bool:
        start = time.perf_counter()
        try:
            ok, detail, data = fn()
        except BloxLatError as exc:
            ok, detail, data = False, " ".join(str(exc).split()), {}
        except OSError as exc:
            ok, detail, data = False, f"{type(exc).__name__}: {exc}", {}
        step = CheckStep(name, ok, detail, time.perf_counter() - start, data)
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return ok

    def make_runner(self) -> _Outcome:
        self.runner = get_runner(self.profile, connection=self.connection)
        self.transport = getattr(self.runner, "transport", None)
        return True, f"{self.profile.transport} transport, {self.profile.runtime} runtime", self.runner.describe()

    def connect(self) -> _Outcome:
        self.transport.connect()
        return True, "connected and authenticated", self.transport.describe()

    def round_trip(self) -> _Outcome:
        transport, workdir = self.transport, self.runner.workdir
        payload = os.urandom(256 * 1024)
        remote = f"{workdir}/.blox-lat-check-{secrets.token_hex(4)}"
        with tempfile.TemporaryDirectory() as tmp:
            local, back = Path(tmp) / "up", Path(tmp) / "down"
            local.write_bytes(payload)
            transport.mkdir_p(workdir)
            transport.push(local, remote)
            try:
                remote_sha = transport.sha256(remote)
                transport.pull(remote, back)
            finally:
                transport.run(["rm", "-f", "--", remote])
            ok = remote_sha == hashlib.sha256(payload).hexdigest() and back.read_bytes() == payload
        return ok, (f"256 KiB pushed to and pulled from {workdir}, sha256 matches" if ok
                    else f"file changed in transit through {workdir}"), {}

    def runtime(self) -> _Outcome:
        facts = self.runner.probe() if isinstance(self.runner, Probing) else {}
        ok, detail = _runtime_verdict(self.profile, facts)
        return ok, detail, facts

    def facts(self) -> _Outcome:
        data = read_device_facts(self.transport)
        keys = [k for k in ("model", "soc", "platform", "gpus", "cpu_model", "temperatures_c") if k in data]
        return True, f"read {', '.join(keys) or 'no facts (none exposed)'}", data

    def run(self) -> list[CheckStep]:
        if not self.record("profile", self.make_runner):
            return self.steps
        try:
            remote = self.transport is not None
            if remote and not (self.record("connect", self.connect)
                               and self.record("file round trip", self.round_trip)):
                return self.steps
            if self.record("runtime", self.runtime) and remote:
                self.record("device facts", self.facts)
        finally:
            self.runner.close()
        return self.steps


def check_device(
    profile: DeviceProfile,
    connection: Mapping[str, Any] | None = None,
    on_step: Callable[[CheckStep], None] | None = None,
) -> list[CheckStep]:
    """Run the steps; returns them all (the last one failed if any failed)."""
    return _Check(profile, connection, on_step).run()
