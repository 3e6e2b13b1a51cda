"""Host-side overhead per model of a remote campaign, over a loopback sshd and the ADB emulator.

The real path: one :class:`~blox_lat.harness.TransportRunner` per transport, connected once;
per model it starts pushing the next artifact (a real fp32 ONNX file, ~11 MB for these
models) as a campaign does, makes sure this one is there, sends the request to the runner
(a persistent ``--serve`` worker over SSH, one command per model over ADB) and parses the
JSON answer. The device's own time is what the
runner reports it spent handling the request (``handle_s``: load, warm-up, timed runs); the
overhead is the host's wall time per model minus that. The first model also pushes the runner
bundle and is reported separately. Prints JSON; target: <= 100 ms per model per transport.

Loopback hides network bandwidth and flash speed: these are the software floor of each
transport, not a phone's number.

    python benchmarks/transport_overhead.py [--models 0:10]

The result is printed and written to benchmarks/results/ (see ``_results``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _results import add_arguments, save  # noqa: E402
from peers.adbd import AdbDeviceEmulator  # noqa: E402
from peers.sshd import SshServer, sshd_available  # noqa: E402

from blox_lat import space as sp  # noqa: E402
from blox_lat.devices import get_device  # noqa: E402
from blox_lat.devices._adb import AdbTransport  # noqa: E402
from blox_lat.devices._ssh import SshTransport  # noqa: E402
from blox_lat.exporters import ArtifactStore, export  # noqa: E402
from blox_lat.harness import TimingProtocol, TransportRunner  # noqa: E402

PROTOCOL = TimingProtocol(groups=10, runs_per_group=10, warmup_min_runs=10, warmup_min_s=0.0)


def per_model(runner: TransportRunner, artifacts: list) -> dict[str, object]:
    profile = get_device("cpu")
    start = time.perf_counter()
    runner.transport.connect()
    connect_ms = (time.perf_counter() - start) * 1000
    overheads = []
    for i, artifact in enumerate(artifacts):
        start = time.perf_counter()
        if i + 1 < len(artifacts):  # what a campaign does: push the next model during this one
            runner.prefetch(artifacts[i + 1])
        raw = runner.measure(artifact, profile, PROTOCOL)
        wall = time.perf_counter() - start
        overheads.append((wall - raw.facts["handle_s"]) * 1000)
    runner.close()
    steady = overheads[1:]
    return {"connect_ms": round(connect_ms, 1), "first_model_overhead_ms": round(overheads[0], 1),
            "overhead_ms_per_model": round(statistics.median(steady), 1),
            "overhead_ms_max": round(max(steady), 1), "all_ms": [round(x, 1) for x in overheads],
            "meets_target": statistics.median(steady) <= 100}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="0:10")
    add_arguments(ap)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="blox-transport-bench-"))
    store = ArtifactStore(work / "store")
    artifacts = [export(a, "onnx", store=store) for a in sp.select(args.models)]
    out: dict[str, object] = {"models": len(artifacts), "target_ms": 100,
                              "artifact_mb_median": round(statistics.median(a.bytes for a in artifacts) / 2**20, 2),
                              "protocol": PROTOCOL.identity()}
    if sshd_available() is None:
        with SshServer(work / "sshd") as srv:
            t = SshTransport(srv.host, srv.port, srv.user, srv.client_key, srv.known_hosts)
            out["ssh"] = per_model(TransportRunner(t, workdir=str(work / "ssh dir"), python=sys.executable), artifacts)
    else:
        out["ssh"] = {"skipped": sshd_available()}
    key = work / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=key)._signer()
    with AdbDeviceEmulator(work / "device", trusted_keys=[(work / "adbkey.pub").read_bytes()]) as emu:
        t = AdbTransport(emu.serial, key_path=key)
        out["adb"] = per_model(TransportRunner(t, workdir=emu.device_path("data/local/tmp/blox bench"),
                                               python=sys.executable), artifacts)
    save("transport_overhead", out, args)


if __name__ == "__main__":
    main()
