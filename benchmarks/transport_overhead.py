"""Transport overhead per benchmarked model, against a loopback sshd and the ADB emulator.

Per "model", on one already-open connection: push a 7 MB artefact, run a trivial command that
writes a small JSON result, pull that JSON back and parse it. Connecting happens once and is
reported separately. Prints JSON; target: <= 100 ms per model for each transport.

Loopback hides network bandwidth and device flash speed, so these figures are the software
floor of each transport, not a phone's number. The command's own run time is ~1 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from peers.adbd import AdbDeviceEmulator  # noqa: E402
from peers.sshd import SshServer, sshd_available  # noqa: E402

from blox_lat.devices._adb import AdbTransport  # noqa: E402
from blox_lat.devices._ssh import SshTransport  # noqa: E402
from blox_lat.devices._transport import Transport  # noqa: E402

MODELS = 10
ARTEFACT_BYTES = 7 * 1024 * 1024


def per_model(transport: Transport, remote_dir: str, artefact: Path, work: Path) -> list[float]:
    transport.mkdir_p(remote_dir)
    times = []
    for i in range(MODELS):
        start = time.perf_counter()
        transport.push(artefact, f"{remote_dir}/model.bin")
        transport.run(["sh", "-c", f'printf \'{{"model": {i}, "ms": [1.5, 1.6]}}\' > result.json'],
                      cwd=remote_dir).check()
        transport.pull(f"{remote_dir}/result.json", work / "result.json")
        assert json.loads((work / "result.json").read_text())["model"] == i
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="blox-transport-bench-"))
    artefact = work / "artefact.bin"
    artefact.write_bytes(os.urandom(ARTEFACT_BYTES))
    out: dict[str, object] = {"models": MODELS, "artefact_mb": ARTEFACT_BYTES / 2**20, "target_ms": 100}

    if sshd_available() is None:
        with SshServer(work / "sshd") as srv:
            t = SshTransport(srv.host, srv.port, srv.user, srv.client_key, srv.known_hosts)
            start = time.perf_counter()
            t.connect()
            out["ssh_connect_ms"] = round((time.perf_counter() - start) * 1000, 1)
            times = per_model(t, str(work / "ssh remote"), artefact, work)
            t.close()
        out["ssh_ms_per_model"] = round(statistics.median(times), 1)
        out["ssh_ms_per_model_all"] = [round(x, 1) for x in times]
    else:
        out["ssh_ms_per_model"] = None
        out["ssh_skipped"] = sshd_available()

    key = work / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=key)._signer()
    with AdbDeviceEmulator(work / "device", trusted_keys=[(work / "adbkey.pub").read_bytes()]) as emu:
        t = AdbTransport(emu.serial, key_path=key)
        start = time.perf_counter()
        t.connect()
        out["adb_connect_ms"] = round((time.perf_counter() - start) * 1000, 1)
        times = per_model(t, emu.device_path("data/local/tmp/blox bench"), artefact, work)
        t.close()
    out["adb_ms_per_model"] = round(statistics.median(times), 1)
    out["adb_ms_per_model_all"] = [round(x, 1) for x in times]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
