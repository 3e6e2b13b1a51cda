"""``blox-lat survey`` end to end on the real local CPU (onnxruntime timings, real exports, a real
release and report), resumed after a real SIGKILL, continued with more budget, and refused on
bad input. A short protocol (``--runs 10``, a short warm-up) keeps each test well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blox_lat import dataset as ds
from blox_lat import survey as sv
from blox_lat.harness import MeasurementRecord, read_records

FAST = ["--runs", "10", "--warmup-runs", "2", "--warmup-s", "0.02"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One artifact store for the module: the second survey on a model does not export it again."""
    return tmp_path_factory.mktemp("survey-store")


def _survey(out: Path, store: Path, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "blox_lat", "survey", "--device", "cpu", "--out", str(out), "--store", str(store),
           *FAST, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kwargs)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def _ok_records(folder: Path) -> list[MeasurementRecord]:
    return [r for r in read_records(folder) if isinstance(r, MeasurementRecord) and r.ok]


def test_survey_measures_fits_and_publishes(tmp_path, store):
    out = tmp_path / "s"
    res = _survey(out, store, "--budget", "1h", "--first", "45", "--max-rounds", "1", "--json")
    doc = json.loads(res.stdout)
    # one balanced round of 45, then --max-rounds stops the rounds
    assert [r["plan"] for r in doc["rounds"]] == ["balanced"]
    assert doc["stopped"].startswith("1 round(s) done")
    records = _ok_records(out / sv.CAMPAIGN)
    assert len({r.model_index for r in records}) == len(records) == doc["models_measured"] - 3  # probe: 3 anchors
    assert {r.model_index for r in records} == set(sv.read_state(out).rounds[0].indices)
    # the release holds what was measured (bench/cpu) and what is predicted (pred/cpu), apart
    rel = ds.open(out / sv.RELEASE)
    assert rel.devices == ["cpu"] and rel.predicted_devices == ["cpu"]
    assert (out / sv.REPORT / "report.html").is_file()
    assert json.loads((out / sv.PREDICTOR).read_text())["device"] == "cpu"
    acc = doc["accuracy"]
    assert acc["models" if "models" in acc else "family"] and -1 <= acc["spearman"] <= 1
    assert 0 <= acc["within10_pct"] <= 100 and acc["median_halfwidth_pct"] <= 99
    # accounting: the timed runs are the journals' samples, every kind is counted, and the
    # total is what the measuring steps' wall time holds, less what is not accounted
    timed = sum(sum(r.measurement.samples_ms) for f in (sv.CAMPAIGN, sv.PROBE) for r in _ok_records(out / f)) / 1e3
    spent = doc["spent"]
    assert spent["device_time"]["timed_s"] == pytest.approx(timed, rel=1e-3)
    assert spent["device_time"]["warmup_s"] > 0 and spent["device_time"]["anchors_s"] > 0
    assert spent["device_time"]["total_s"] <= spent["wall_s"]
    assert spent["not_accounted_s"] == pytest.approx(spent["wall_s"] - spent["device_time"]["total_s"], abs=2e-3)
    # a rerun has nothing left to do: nothing measured again, the same figures
    journal = (out / sv.CAMPAIGN / "journal.jsonl").read_bytes()
    again = json.loads(_survey(out, store, "--budget", "1h", "--first", "45", "--max-rounds", "1",
                               "--json").stdout)
    assert (out / sv.CAMPAIGN / "journal.jsonl").read_bytes() == journal
    assert again["accuracy"] == doc["accuracy"] and again["spent"]["wall_s"] == doc["spent"]["wall_s"]


def test_more_budget_continues_with_the_least_certain_models(tmp_path, store):
    out = tmp_path / "s"
    _survey(out, store, "--budget", "1h", "--first", "45", "--max-rounds", "1")
    state = sv.read_state(out)
    per_model = state.rounds[0].cost.wall_s / state.rounds[0].cost.measured
    budget = state.spent_s + 24 * per_model  # buys about 24 more models: rounds of the least certain
    res = _survey(out, store, "--budget", f"{budget:.3f}s", "--target-width", "0.01", "--json")
    doc = json.loads(res.stdout)
    plans = [r["plan"] for r in doc["rounds"]]
    assert plans[0] == "balanced" and len(plans) >= 2 and set(plans[1:]) == {"next"}
    assert doc["stopped"].startswith("budget spent")
    state = sv.read_state(out)
    first, later = set(state.rounds[0].indices), [set(r.indices) for r in state.rounds[1:]]
    assert all(not (first & s) for s in later)
    # the release was made again from every round
    measured = {r.model_index for r in _ok_records(out / sv.CAMPAIGN)}
    assert len(measured) == doc["models_measured"] - 3
    assert len(ds.open(out / sv.RELEASE).section("bench/cpu").table) == len(measured)
    assert "round 2" in res.stderr  # progress
    # a target the last fit already meets ends the rounds without a new one
    half = doc["accuracy"]["median_halfwidth_pct"]
    again = json.loads(_survey(out, store, "--budget", "1h", "--target-width", f"{half + 1:.3f}", "--json").stdout)
    assert again["stopped"].startswith("target reached") and len(again["rounds"]) == len(doc["rounds"])


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_resumes_after_sigkill_and_loses_nothing(tmp_path, store):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "blox_lat", "survey", "--device", "cpu", "--out", str(out), "--store", str(store),
           *FAST, "--budget", "1h", "--first", "45", "--max-rounds", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / sv.CAMPAIGN / "journal.jsonl"
    deadline = time.monotonic() + 120
    try:  # kill it once the first set of the round is journaled, in the middle of the second
        while not any('"kind": "measurement"' in line or '"kind":"measurement"' in line for line in _lines(journal)):
            assert proc.poll() is None and time.monotonic() < deadline, "the survey ended before it was killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before_lines = _lines(journal)
    before = sv.read_state(out)
    assert before.rounds and not before.rounds[0].measured and before.rounds[0].cost.wall_s > 0
    kept = {r.model_index for r in _ok_records(out / sv.CAMPAIGN)}
    assert 0 < len(kept) < 45
    res = _survey(out, store, "--budget", "1h", "--first", "45", "--max-rounds", "1", "--json")
    doc = json.loads(res.stdout)
    after = _lines(journal)
    assert after[:len(before_lines)] == before_lines  # what the killed run journaled is kept as it was
    records = _ok_records(out / sv.CAMPAIGN)
    assert len(records) == len({r.model_index for r in records}) == 45  # each model once: none measured twice
    assert kept <= {r.model_index for r in records}
    state = sv.read_state(out)
    assert state.rounds[0].measured and state.rounds[0].cost.wall_s > before.rounds[0].cost.wall_s
    assert state.probe == before.probe  # the probe was not timed again
    assert doc["spent"]["wall_s"] >= before.spent_s


def test_sigterm_stops_with_130_and_the_rerun_resumes(tmp_path, store):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "blox_lat", "survey", "--device", "cpu", "--out", str(out), "--store", str(store),
           *FAST, "--budget", "1h", "--first", "45", "--max-rounds", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / sv.CAMPAIGN / "journal.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr
    doc = json.loads(_survey(out, store, "--budget", "1h", "--first", "45", "--max-rounds", "1",
                             "--json").stdout)
    assert doc["models_measured"] == 45 + 3


@pytest.mark.parametrize(("args", "says"), [
    (["--budget", "soon"], "budget 'soon'"),
    (["--budget", "0"], "budget '0'"),
    (["--budget", "1h", "--target-width", "-5"], "--target-width"),
    (["--budget", "1h", "--max-rounds", "0"], "--max-rounds"),
    (["--budget", "1h", "--device", "no-such-device"], "no-such-device"),
    (["--budget", "1h", "--prior", "missing.json"], "--prior missing.json"),
    (["--budget", "1h", "--first", "5"], "at least 45"),
    (["--budget", "1s"], "--budget"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, store, args, says):
    res = _survey(tmp_path / "s", store, *args, check=False, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert says in lines[-1] and "Traceback" not in res.stderr
    assert all(not line.startswith("blox-lat: error") for line in lines[:-1])


def test_a_survey_folder_keeps_its_settings(tmp_path, store):
    out = tmp_path / "s"
    out.mkdir()
    sv_state = sv.SurveyState({"device": "cpu", "runs": 100, "runs_per_group": 10, "warmup_runs": 10,
                               "warmup_s": 0.5, "seed": 0, "prior_sha256": None})
    from blox_lat.survey._state import write_state

    write_state(out, sv_state)
    res = _survey(out, store, "--budget", "1h", check=False)
    assert res.returncode == 2
    assert "--runs 100" in res.stderr and "another --out" in res.stderr
    (tmp_path / "file").write_text("x")
    res = _survey(tmp_path / "file", store, "--budget", "1h", check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_parse_duration():
    assert sv.parse_duration("1h30m") == 5400 and sv.parse_duration("90") == 90 and sv.parse_duration("15m") == 900
    for bad in ("", "x", "-5m", "15q", "1h x", "0s"):
        with pytest.raises(sv.SurveyError):
            sv.parse_duration(bad)


def test_prior_small_first_round_and_its_decision(tmp_path, store):
    base = tmp_path / "cpu"
    _survey(base, store, "--budget", "1h", "--first", "45", "--max-rounds", "1")
    prior = base / sv.PREDICTOR
    # the prior's own device is refused: a survey with a prior is for another device
    same = _survey(tmp_path / "same", store, "--budget", "1h", "--prior", str(prior), check=False)
    assert same.returncode == 2 and "itself" in same.stderr.strip().splitlines()[-1]
    toml = tmp_path / "copy.toml"
    toml.write_text('[devices.cpu-copy]\ntransport = "local"\nruntime = "onnxruntime"\nformat = "onnx"\n'
                    "options = { threads = 1 }\n")
    out = tmp_path / "p"
    res = _survey(out, store, "--device", "cpu-copy", "--device-file", str(toml), "--prior", str(prior),
                  "--budget", "1h", "--first", "12", "--max-rounds", "1", "--json")
    doc = json.loads(res.stdout)
    assert [r["models"] for r in doc["rounds"]] == [12] and doc["models_measured"] == 12 + 3
    assert doc["accuracy"]["method"] == "transfer" and doc["prior"]["prior_used"] is True
    assert "samples" in doc["prior"]["reason"]  # under 40 samples the prior is kept without a contest
    assert ds.open(out / sv.RELEASE).predicted_devices == ["cpu-copy"]
    # a survey folder is bound to its prior: another prior (or none) is refused with the flags
    other = _survey(out, store, "--device", "cpu-copy", "--device-file", str(toml), "--budget", "1h", check=False)
    assert other.returncode == 2 and "--prior" in other.stderr


def test_retest_gives_the_test_retest_floor(tmp_path, store):
    out = tmp_path / "s"
    doc = json.loads(_survey(out, store, "--budget", "1h", "--first", "45", "--retest", "8", "--max-rounds", "1",
                             "--json").stdout)
    assert [(r["plan"], r["models"]) for r in doc["rounds"]] == [("balanced", 45), ("retest", 8)]
    again = {r.model_index for r in _ok_records(out / "retest")}
    assert len(again) == 8 and again <= set(sv.read_state(out).rounds[0].indices)
    assert doc["retest"]["models"] == 8 and -1 <= doc["retest"]["spearman"] <= 1
    assert doc["models_measured"] == 45 + 8 + 3  # the accounting counts the retest campaign too
    # the release holds one standing value per model, from both campaigns
    assert len(ds.open(out / sv.RELEASE).section("bench/cpu").table) == 45
