"""Full campaigns over real protocol peers: a loopback OpenSSH server and the ADB emulator.

The "remote" device is this host: the runner bundle is pushed and run with this interpreter,
so the onnxruntime timings are real. Faults are real too: sshd is killed and restarted in the
middle of a campaign, an ADB device of a farm disappears, keys and host keys are wrong.
"""

from __future__ import annotations

import contextlib
import json
import stat
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from level_runtime import FAKE, level_models, spearman
from peers.adbd import AdbDeviceEmulator
from peers.sshd import SshServer, sshd_available

from blox_lat import dataset as ds
from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.devices import DeviceProfile, RetryPolicy, load_profiles
from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._ssh import SshTransport
from blox_lat.harness import (
    AnchorsRecord,
    CampaignConfig,
    CampaignConflictError,
    MeasurementRecord,
    ModelDone,
    TimingProtocol,
    TransportRunner,
    choose_anchors,
    read_journal,
    run_campaign,
)

FAST = TimingProtocol(groups=3, runs_per_group=5, warmup_min_runs=5, warmup_min_s=0.0)
NASTY_DIR = "remote dir; rm -rf x"
needs_sshd = pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore, export

    s = ArtifactStore(tmp_path_factory.mktemp("store"))
    for name in ("0", "1", "2", "3"):
        export(sp.resolve(name), "onnx", store=s)
    return s


@pytest.fixture(scope="module")
def adb_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    AdbTransport("127.0.0.1:1", key_path=path)._signer()
    return path


def _emulator(root: Path, key: Path) -> AdbDeviceEmulator:
    return AdbDeviceEmulator(root, trusted_keys=[(key.parent / "adbkey.pub").read_bytes()])


def _ssh_toml(srv: SshServer, tmp_path: Path, name: str = "loop-ssh", **conn: object) -> Path:
    settings = {"host": srv.host, "port": srv.port, "user": srv.user, "key": str(srv.client_key),
                "known_hosts": str(srv.known_hosts), "python": sys.executable,
                "workdir": str(tmp_path / NASTY_DIR)}
    settings.update(conn)
    lines = [f"[devices.{name}]", 'transport = "ssh"', 'runtime = "onnxruntime"', 'format = "onnx"',
             "options = { threads = 1 }", f"[devices.{name}.connection]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _measurements(out: Path) -> list[dict]:
    return [r for r in read_journal(out / "journal.jsonl") if r["kind"] == "measurement"]


@needs_sshd
def test_campaign_over_real_sshd_with_kill_and_restart(tmp_path, store):
    archs = sp.select("0:4")
    with SshServer(tmp_path / "sshd") as srv:
        profile = load_profiles([_ssh_toml(srv, tmp_path)], config=False).get("loop-ssh")
        transport = SshTransport(srv.host, srv.port, srv.user, srv.client_key, srv.known_hosts)
        runner = TransportRunner(transport, workdir=str(tmp_path / NASTY_DIR), python=sys.executable,
                                 timeout_s=120, retry=RetryPolicy(attempts=8, base_delay_s=0.3, max_delay_s=1.0))
        restarted = threading.Event()

        def on_event(event):
            if event.kind == "model" and event.position == 1:  # kill sshd (and the live link) mid-campaign
                srv.stop()
                threading.Timer(1.5, lambda: (srv.start(), restarted.set())).start()

        summary = run_campaign(archs, CampaignConfig(devices=(profile,), protocol=FAST, out_dir=tmp_path / "run", store=store, anchors=0),
                               runners=[runner], on_event=on_event)
    assert restarted.is_set()
    reasons = [r["reason"] for r in summary.records if r["status"] != "ok"]
    assert (summary.measured, summary.failed, summary.remaining) == (4, 0, 0), reasons
    records = _measurements(tmp_path / "run")
    assert sorted(r["model_index"] for r in records) == [0, 1, 2, 3]  # each exactly once
    assert all(r["status"] == "ok" and r["unit"] == "loop-ssh" for r in records)
    assert all(len(r["measurement"]["samples_ms"]) == 15 for r in records)
    env = next(read_journal(tmp_path / "run" / "journal.jsonl", kind="environment"))
    facts = env["device_facts"]
    assert ".pyz" in facts["worker"]  # the self-contained bundle ran, not the installed package
    assert "uname" in facts["device"]
    # the artifacts and the runner sit in the directory with a space and ';', named by sha256
    names = sorted(p.name for p in (tmp_path / NASTY_DIR).iterdir())
    assert any(n.startswith("blox-lat-runner-") and n.endswith(".pyz") for n in names)
    assert sum(n.endswith(".onnx") for n in names) == 4 and not any(n.endswith(".part") for n in names)
    assert (tmp_path / "x").exists() is False


@needs_sshd
def test_measure_cli_over_ssh_and_one_line_key_errors(tmp_path, store):
    with SshServer(tmp_path / "sshd") as srv:
        toml = _ssh_toml(srv, tmp_path)
        base = ["measure", "0:2", "--device-file", str(toml), "--device", "loop-ssh", "--runs", "10",
                "--runs-per-group", "5", "--warmup-runs", "2", "--warmup-s", "0", "--store", str(store.root),
                "--json"]
        ok = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "ok")])
        assert ok.exit_code == 0, ok.output
        data = json.loads(ok.output)
        assert data["measured"] == 2 and all(r["latency_ms"] > 0 for r in data["results"])
        runs = list(read_journal(tmp_path / "ok", kind="anchors"))  # --anchors auto: 3 on a remote device
        assert [(r["trigger"], len(r["anchors"])) for r in runs] == [("start", 3)]
        assert all(r["set_id"] == runs[0]["set_id"] and r["level"] == 1.0 for r in _measurements(tmp_path / "ok"))

        cases = [
            (["--connect", f"key={srv.wrong_key}"], "authorized_keys"),
            (["--connect", f"known_hosts={tmp_path / 'empty_known_hosts'}"], "trust_new_host"),
        ]
        for extra, message in cases:
            out = tmp_path / "bad"
            r = CliRunner().invoke(cli, base + ["--out", str(out)] + extra)
            assert r.exit_code == 2, r.output
            assert message in r.output and r.output.strip().count("\n") == 0
            assert "Traceback" not in r.output
            assert not (out / "journal.jsonl").exists() or not _measurements(out)


def test_campaign_over_adb_emulator(tmp_path, store, adb_key):
    with _emulator(tmp_path / "device", adb_key) as emu:
        workdir = emu.device_path(f"data/local/tmp/{NASTY_DIR}")
        toml = tmp_path / "phone.toml"
        toml.write_text(
            "[devices.board]\ntransport = \"adb\"\nruntime = \"onnxruntime\"\nformat = \"onnx\"\n"
            "options = { threads = 1 }\n[devices.board.connection]\n"
            f"serial = {json.dumps(emu.serial)}\nkey = {json.dumps(str(adb_key))}\n"
            f"python = {json.dumps(sys.executable)}\nworkdir = {json.dumps(workdir)}\n"
        )
        args = ["measure", "0:3", "--device-file", str(toml), "--device", "board", "--runs", "15",
                "--runs-per-group", "5", "--warmup-runs", "2", "--warmup-s", "0", "--store", str(store.root),
                "--out", str(tmp_path / "run"), "--json"]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        again = CliRunner().invoke(cli, args)  # resumable: nothing left to do
        assert json.loads(again.output)["already_done"] == 3
    records = _measurements(tmp_path / "run")
    assert sorted(r["model_index"] for r in records) == [0, 1, 2]
    assert all(r["status"] == "ok" and len(r["measurement"]["samples_ms"]) == 15 for r in records)
    assert sum(p.suffix == ".onnx" for p in emu.map_path(workdir).iterdir()) == 3 + 3  # and the 3 anchors
    runs = list(read_journal(tmp_path / "run", kind="anchors"))  # one run: the rerun had nothing to measure
    assert [r["trigger"] for r in runs] == ["start"] and all(r["level"] == 1.0 for r in records)


def test_unauthorised_adb_key_is_one_line_exit_2(tmp_path, store, adb_key):
    with AdbDeviceEmulator(tmp_path / "device") as emu:  # trusts no key, rejects unknown ones
        r = CliRunner().invoke(cli, [
            "measure", "0", "--device-file", str(_board_toml(tmp_path, emu, adb_key)), "--device", "board",
            "--runs", "10", "--runs-per-group", "5", "--store", str(store.root), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert "Allow USB debugging" in r.output and r.output.strip().count("\n") == 0


def _board_toml(tmp_path: Path, emu: AdbDeviceEmulator, key: Path, name: str = "board") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"[devices.{name}]\ntransport = \"adb\"\nruntime = \"onnxruntime\"\nformat = \"onnx\"\n"
        f"options = {{ threads = 1 }}\n[devices.{name}.connection]\nserial = {json.dumps(emu.serial)}\n"
        f"key = {json.dumps(str(key))}\npython = {json.dumps(sys.executable)}\n"
        f"workdir = {json.dumps(emu.device_path('data/local/tmp/blox'))}\n"
    )
    return path


def test_device_farm_hands_over_the_models_of_a_lost_device(tmp_path, store, adb_key):
    archs = sp.select("0:4")
    with _emulator(tmp_path / "a", adb_key) as a, _emulator(tmp_path / "b", adb_key) as b:
        profiles = [DeviceProfile(name=n, transport="adb", runtime="onnxruntime", format="onnx",
                                  options={"threads": 1}) for n in ("phone-a", "phone-b")]
        fast_retry = RetryPolicy(attempts=2, base_delay_s=0.05, max_delay_s=0.05)
        runners = [TransportRunner(AdbTransport(e.serial, key_path=adb_key, connect_timeout_s=2),
                                   workdir=e.device_path("data/local/tmp/blox"), python=sys.executable,
                                   timeout_s=120, retry=fast_retry) for e in (a, b)]
        lost_events = []

        def on_event(event):
            if event.kind == "model" and event.record.unit == "phone-b":
                b.stop()  # phone-b is unplugged after its first model
            if event.kind == "device-lost":
                lost_events.append(event.device)

        summary = run_campaign(archs, CampaignConfig(devices=tuple(profiles), protocol=FAST, out_dir=tmp_path / "farm", store=store,
                                                     record_as="phone", anchors=0), runners=runners, on_event=on_event)
    records = _measurements(tmp_path / "farm")
    assert sorted(r["model_index"] for r in records) == [0, 1, 2, 3]  # every model exactly once
    assert all(r["status"] == "ok" and r["device"] == "phone" for r in records)
    units = {r["unit"] for r in records}
    assert units == {"phone-a", "phone-b"}
    assert sum(r["unit"] == "phone-b" for r in records) == 1
    assert lost_events == ["phone-b"] and summary.lost_devices == ("phone-b",)
    envs = list(read_journal(tmp_path / "farm" / "journal.jsonl", kind="environment"))
    assert sorted(e["unit"] for e in envs) == ["phone-a", "phone-b"]


def test_farm_members_must_share_one_setting(tmp_path):
    from blox_lat.errors import BloxLatError

    a = DeviceProfile(name="a", transport="adb", runtime="onnxruntime", format="onnx")
    b = DeviceProfile(name="b", transport="adb", runtime="onnxruntime", format="onnx-int8", precision="int8")
    with pytest.raises(BloxLatError, match="measure differently"):
        run_campaign(sp.select("0"), CampaignConfig(devices=tuple([a, b]), protocol=FAST, out_dir=tmp_path / "x", anchors=0),
                     runners=[object(), object()])
    assert not (tmp_path / "x").exists()


@needs_sshd
def test_served_worker_over_ssh_survives_hangs_and_crashes(tmp_path, store):
    """One --serve worker per campaign: a hanging model is killed on the device (timeout), a
    crashing one fails alone, and the next model gets a fresh worker on the same link."""
    import time

    from blox_lat.devices import get_device
    from blox_lat.exporters import export
    from blox_lat.harness import ModelTimeoutError, WorkerCrashedError

    artifact = export(sp.resolve("0"), "onnx", store=store)
    with SshServer(tmp_path / "sshd") as srv:
        t = SshTransport(srv.host, srv.port, srv.user, srv.client_key, srv.known_hosts)
        runner = TransportRunner(t, workdir=str(tmp_path / "w"), python=sys.executable, timeout_s=3.0)
        try:
            assert runner.describe()["persistent"] is True
            first = runner.measure(artifact, get_device("cpu"), FAST)
            pid = first.facts["pid"]
            second = runner.measure(artifact, get_device("cpu"), FAST)
            assert second.facts["pid"] == pid  # the same remote interpreter answered both
            slow = TimingProtocol(groups=1, runs_per_group=5, warmup_min_runs=10, warmup_min_s=60.0)
            started = time.monotonic()
            with pytest.raises(ModelTimeoutError):
                runner.measure(artifact, get_device("cpu"), slow)
            assert time.monotonic() - started < 20
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
            third = runner.measure(artifact, get_device("cpu"), FAST)
            assert third.facts["pid"] != pid
            long = TimingProtocol(groups=1, runs_per_group=5, warmup_min_runs=10, warmup_min_s=30.0)
            killer = threading.Timer(1.0, __import__("os").kill, args=(third.facts["pid"], 9))
            killer.start()
            with pytest.raises(WorkerCrashedError):
                runner.measure(artifact, get_device("cpu"), long)
            killer.join()
            assert len(runner.measure(artifact, get_device("cpu"), FAST).samples_ns) == 15
        finally:
            runner.close()


def _python_with_fake_runtime(tmp: Path) -> str:
    """The device's python: this interpreter with the fake-level runtime on its path."""
    wrapper = tmp / "python-fakelevel"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={json.dumps(str(FAKE))} exec {json.dumps(sys.executable)} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@needs_sshd
def test_serial_anchors_over_real_sshd_recover_ranks_and_resume_keeps_them(tmp_path):
    models, anchors = sp.select("0:9"), choose_anchors(2)
    order = [0, 3, 6, 1, 4, 7, 2, 5, 8]  # every segment of 3 holds a fast, a middle and a slow model
    true_ms = {m.hash: 2.0 * 1.1 ** rank for m, rank in zip(models, order)}
    true_ms.update({anchors[0].hash: 2.4, anchors[1].hash: 3.6})
    levels, level_file = [1.0, 1.6, 0.6], tmp_path / "level"
    level_file.write_text("1.0")

    def on_event(event):  # the device's level moves after every 3rd model
        if isinstance(event, ModelDone) and event.position % 3 == 0 and event.position < 9:
            level_file.write_text(str(levels[event.position // 3]))

    source = level_models(tmp_path, true_ms, level_file)
    with SshServer(tmp_path / "sshd") as srv:
        profile = load_profiles([_ssh_toml(srv, tmp_path)], config=False).get("loop-ssh")

        def runner():
            transport = SshTransport(srv.host, srv.port, srv.user, srv.client_key, srv.known_hosts)
            return contextlib.closing(TransportRunner(transport, workdir=str(tmp_path / "remote"), timeout_s=60,
                                                      python=_python_with_fake_runtime(tmp_path)))

        with runner() as r:
            summary = run_campaign(models, CampaignConfig(devices=(profile,), protocol=FAST, out_dir=tmp_path / "c", anchors=anchors,
                                                          anchor_every=3), runners=[r], artifacts=source, on_event=on_event)
        assert (summary.measured, summary.failed) == (9, 0)
        with pytest.raises(CampaignConflictError, match="rerun with --anchors 2"), runner() as r:
            run_campaign(sp.select("0:10"), CampaignConfig(devices=(profile,), protocol=FAST, out_dir=tmp_path / "c", anchors=3),
                         runners=[r], artifacts=source)
    runs = [AnchorsRecord.from_dict(x) for x in read_journal(tmp_path / "c", kind="anchors")]
    assert [(x.trigger, round(x.level, 1)) for x in runs] == [("start", 1.0), ("every", 1.6), ("every", 0.6)]
    records = [MeasurementRecord.from_dict(x) for x in read_journal(tmp_path / "c", kind="measurement")]
    assert [x.set_id for x in records] == [run.set_id for run in runs for _ in range(3)]
    truth = [true_ms[x.model_hash] for x in records]
    assert spearman([x.latency_ms for x in records], truth) < 0.6
    assert spearman([x.latency_corrected_ms for x in records], truth) >= 0.95
    bench = ds.open(ds.build([tmp_path / "c"], tmp_path / "rel", "1.0.0", static=False).path).to_pandas("bench/loop-ssh")
    by_index = {x.model_index: x for x in records}
    assert list(bench["level"]) == [by_index[i].level for i in bench["model_index"]]
