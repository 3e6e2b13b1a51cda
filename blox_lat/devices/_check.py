"""``blox-lat devices check NAME``: prove a device can be measured, one step at a time.

Steps: connect (and authenticate, host key included), round-trip a file through the
device's work directory (push, remote sha256, pull), run the runtime's probe (the runner
bundle's runtime versions, or SNPE's DSP availability), and read the device facts. Every step
is reported with its time and outcome; the first failure stops the check, because later steps
need the earlier ones.
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

from blox_lat.devices._profiles import DeviceProfile
from blox_lat.errors import BloxLatError

__all__ = ["CheckStep", "check_device"]


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


def check_device(
    profile: DeviceProfile,
    connection: Mapping[str, Any] | None = None,
    on_step: Callable[[CheckStep], None] | None = None,
) -> list[CheckStep]:
    """Run the steps; returns them all (the last one failed if any failed)."""
    from blox_lat.harness._runners import get_runner

    steps: list[CheckStep] = []

    def record(name: str, fn: Callable[[], tuple[bool, str, dict[str, Any]]]) -> bool:
        start = time.perf_counter()
        try:
            ok, detail, data = fn()
        except BloxLatError as exc:
            ok, detail, data = False, " ".join(str(exc).split()), {}
        except OSError as exc:
            ok, detail, data = False, f"{type(exc).__name__}: {exc}", {}
        step = CheckStep(name, ok, detail, time.perf_counter() - start, data)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return ok

    runner: Any = None

    def make_runner() -> tuple[bool, str, dict[str, Any]]:
        nonlocal runner
        runner = get_runner(profile, connection=dict(connection or {}) or None)
        return True, f"{profile.transport} transport, {profile.runtime} runtime", runner.describe()

    if not record("profile", make_runner):
        return steps
    try:
        transport = getattr(runner, "transport", None)
        if transport is not None:
            def connect() -> tuple[bool, str, dict[str, Any]]:
                transport.connect()
                return True, "connected and authenticated", transport.describe()

            if not record("connect", connect):
                return steps

            def round_trip() -> tuple[bool, str, dict[str, Any]]:
                workdir = runner.workdir
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

            if not record("file round trip", round_trip):
                return steps

        def runtime() -> tuple[bool, str, dict[str, Any]]:
            probe = getattr(runner, "probe", None)
            facts = probe() if callable(probe) else {}
            ok, detail = _runtime_verdict(profile, facts)
            return ok, detail, facts

        if not record("runtime", runtime):
            return steps
        if transport is not None:
            from blox_lat.devices._facts import read_device_facts

            def facts() -> tuple[bool, str, dict[str, Any]]:
                data = read_device_facts(transport)
                keys = [k for k in ("model", "soc", "platform", "gpus", "cpu_model", "temperatures_c") if k in data]
                return True, f"read {', '.join(keys) or 'no facts (none exposed)'}", data

            record("device facts", facts)
    finally:
        runner.close()
    return steps
