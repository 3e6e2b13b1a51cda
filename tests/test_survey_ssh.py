"""``blox-lat survey`` on an SSH device: a real OpenSSH server on loopback (tests/peers/sshd.py).

The remote worker is this host's interpreter, so the timings are real onnxruntime timings; the
device measures one model at a time and times its anchors every 30 models, as a GPU box would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from peers.sshd import SshServer, sshd_available

from blox_lat import dataset as ds
from blox_lat import survey as sv
from blox_lat.harness import AnchorsRecord, MeasurementRecord, read_records

needs_sshd = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))


def _ssh_toml(srv: SshServer, tmp_path: Path) -> Path:
    settings = {"host": srv.host, "port": srv.port, "user": srv.user, "key": str(srv.client_key),
                "known_hosts": str(srv.known_hosts), "python": sys.executable,
                "workdir": str(tmp_path / "remote work")}
    lines = ["[devices.loop-ssh]", 'transport = "ssh"', 'runtime = "onnxruntime"', 'format = "onnx"',
             "options = { threads = 1 }", "[devices.loop-ssh.connection]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = tmp_path / "loop-ssh.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_sshd
def test_survey_over_real_sshd(tmp_path):
    out = tmp_path / "s"
    with SshServer(tmp_path / "sshd") as srv:
        cmd = [sys.executable, "-m", "blox_lat", "survey", "--device", "loop-ssh", "--device-file",
               str(_ssh_toml(srv, tmp_path)), "--out", str(out), "--store", str(tmp_path / "store"), "--runs", "10",
               "--runs-per-group", "5", "--warmup-runs", "2", "--warmup-s", "0", "--budget", "1h", "--first", "45",
               "--max-rounds", "1", "--json"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    records = [r for r in read_records(out / sv.CAMPAIGN) if isinstance(r, MeasurementRecord)]
    assert len(records) == 45 and all(r.ok and r.unit == "loop-ssh" for r in records)
    # a remote device times its anchors alone (start, every 30 models): each model carries a level
    runs = [r for r in read_records(out / sv.CAMPAIGN) if isinstance(r, AnchorsRecord)]
    assert [r.trigger for r in runs][:2] == ["start", "every"] and all(r.members == 0 for r in runs)
    assert all(r.latency_corrected_ms is not None for r in records)
    assert doc["spent"]["device_time"]["anchors_s"] > 0 and doc["accuracy"]["latency"] == "corrected"
    rel = ds.open(out / sv.RELEASE)
    assert rel.devices == ["loop-ssh"] and rel.predicted_devices == ["loop-ssh"]
