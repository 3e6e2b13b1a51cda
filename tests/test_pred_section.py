"""``pred/<device>`` release sections, end to end from a real CPU campaign.

A 45-model balanced plan is measured for real on ``cpu`` (onnxruntime, few runs, no anchors),
a predictor is fitted on it, and ``dataset build --pred`` puts ``bench/cpu`` and ``pred/cpu``
into one release. Queries through the CLI and the API must say which one they return; bench
values equal the journal's, predictions equal ``Predictor.predict``; bad predictors, duplicate
and mismatched sections are one line, exit 2, and no release.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from blox_lat import dataset as ds
from blox_lat import predict as pr
from blox_lat.cli.main import cli
from blox_lat.harness import read_journal
from blox_lat.space import NUM_MODELS

GOLDEN = Path(__file__).parent / "golden" / "dataset"


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """A real CPU campaign of a 45-model balanced plan and the predictor fitted on it."""
    root = tmp_path_factory.mktemp("pred-campaign")
    assert run("predict", "plan", "45", "--seed", "2", "--out", root / "plan.txt").exit_code == 0
    res = run("measure", f"@{root / 'plan.txt'}", "--device", "cpu", "--out", root / "runs" / "cpu",
              "--store", root / "store", "--runs", "20", "--warmup-runs", "2", "--warmup-s", "0.02",
              "--max-attempts", "1", "--anchors", "0", "-q")
    assert res.exit_code == 0, res.output
    res = run("predict", "fit", root / "runs" / "cpu", "--out", root / "cpu.json")
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture(scope="module")
def release(campaign) -> Path:
    out = campaign / "rel"
    res = run("dataset", "build", "--from", campaign / "runs" / "cpu", "--pred", campaign / "cpu.json",
              "--out", out, "--version", "1.0.0", "--no-static", "--jobs", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sections"]["pred/cpu"] == NUM_MODELS
    return out


def _journal(campaign) -> dict[int, dict]:
    return {r["model_index"]: r for r in read_journal(campaign / "runs" / "cpu", kind="measurement")}


def test_bench_is_the_journal_and_pred_is_the_predictor(campaign, release):
    rel = ds.open(release)
    p = pr.load(campaign / "cpu.json")
    journal = _journal(campaign)
    assert rel.devices == ["cpu"] and rel.predicted_devices == ["cpu"] and len(journal) == 45
    for index, rec in journal.items():
        assert rel.latency(index, "cpu") == rec["measurement"]["latency_ms"]
    some = [*sorted(journal)[:5], 0, 24519, NUM_MODELS - 1]
    want = p.predict(some, level=0.9)
    for k, index in enumerate(some):
        got = rel.prediction(index, "cpu")
        assert got["source"] == "predicted" and got["section"] == "pred/cpu" and got["latency"] == p.latency == "raw"
        assert got["pred_ms"] == pytest.approx(want.latency_ms[k], rel=1e-12)
        assert (got["lo_ms"], got["hi_ms"]) == (pytest.approx(want.lo_ms[k], rel=1e-12),
                                                pytest.approx(want.hi_ms[k], rel=1e-12))
        assert got["level"] == 0.9 and got["method"] == f"fit/{p.family}"
        assert got["measured"] == (index in journal)
        assert rel.predicted_latency(index) == got["pred_ms"]
    unmeasured = next(i for i in range(NUM_MODELS) if i not in journal)
    assert rel.latency(unmeasured, "cpu") is None and rel.predicted_latency(unmeasured, "cpu") > 0


def test_the_section_carries_columns_and_provenance(campaign, release):
    rel = ds.open(release)
    entry = rel.manifest["sections"]["pred/cpu"]
    assert rel.schema_version == ds.RELEASE_SCHEMA == 7 and entry["rows"] == NUM_MODELS
    assert [c["name"] for c in entry["columns"]] == ["model_hash", "model_index", "pred_ms", "lo_ms", "hi_ms",
                                                       "measured", "method"]
    meta = entry["metadata"]
    doc = json.loads((campaign / "cpu.json").read_text())
    assert meta["kind"] == "prediction" and meta["device"] == "cpu" and meta["latency"] == "raw"
    assert meta["profile"] == rel.manifest["sections"]["bench/cpu"]["metadata"]["profile"] == doc["setting"]
    assert meta["provenance"] == doc["provenance"] and meta["cv"] == doc["cv"] and meta["training"]["models"] == 45
    sec = rel.section("pred/cpu")
    assert int(np.count_nonzero(sec.column_numpy("measured").astype(bool))) == 45
    assert ds.verify(release).ok


def test_cli_query_labels_each_source(campaign, release):
    journal = _journal(campaign)
    index = sorted(journal)[0]
    res = run("dataset", "query", index, "--release", release, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    measured, predicted = data["latency"]
    assert measured == {"device": "cpu", "source": "measured", "section": "bench/cpu", "latency": "raw",
                        "latency_ms": journal[index]["measurement"]["latency_ms"]}
    assert predicted["source"] == "predicted" and predicted["section"] == "pred/cpu"
    assert predicted["latency_ms"] == ds.open(release).predicted_latency(index, "cpu")
    assert predicted["lo_ms"] <= predicted["latency_ms"] <= predicted["hi_ms"] and predicted["in_training_set"]
    assert set(data["sections"]) == {"bench/cpu", "bench-raw/cpu", "pred/cpu"}
    text = run("dataset", "query", index, "--release", release, "--device", "cpu").output
    assert "latency cpu (measured, raw)" in text and "latency cpu (predicted, raw)" in text


def test_corrected_is_null_without_anchors_never_the_raw_value(campaign, release):
    index = sorted(_journal(campaign))[0]
    assert ds.open(release).latency(index, "cpu", corrected=True) is None
    res = run("dataset", "query", index, "--release", release, "--corrected", "--json")
    assert res.exit_code == 0, res.output
    measured, predicted = json.loads(res.output)["latency"]
    assert measured["latency"] == "corrected" and measured["latency_ms"] is None
    assert predicted["latency"] == "raw" and predicted["latency_ms"] is None  # a raw prediction is no answer either
    golden = run("dataset", "query", "0", "--release", GOLDEN / "release-1.0.0", "--corrected", "--json")
    assert golden.exit_code == 0 and json.loads(golden.output)["latency"][0]["latency_ms"] is None
    assert "--corrected" in run("dataset", "query", "--help").output


def _edited(campaign, tmp_path, fn) -> Path:
    doc = json.loads((campaign / "cpu.json").read_text())
    fn(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return path


WHY = {"missing": "no predictor file at", "space": "fitted for another search space", "schema": "predictor schema 99",
       "duplicate": "two predictors for pred/cpu", "setting": "the predictor was fitted on another setting of 'cpu'",
       "level": "'--pred-level': 1.5 is not in the range", "exists": "already exists; releases are immutable"}


@pytest.mark.parametrize("case", sorted(WHY))
def test_bad_predictors_are_one_line_and_no_release(campaign, tmp_path, case):
    good = campaign / "cpu.json"
    out = tmp_path / "rel"
    preds, extra = [good], []
    if case == "missing":
        preds = [tmp_path / "nope.json"]
    elif case == "space":
        preds = [_edited(campaign, tmp_path, lambda d: d["space"].update(models=12))]
    elif case == "schema":
        preds = [_edited(campaign, tmp_path, lambda d: d.update(schema_version=99))]
    elif case == "duplicate":
        preds = [good, good]
    elif case == "setting":  # pred/cpu fitted on another setting than bench/cpu was measured with
        preds = [_edited(campaign, tmp_path, lambda d: d["setting"]["options"].update(threads=4))]
    elif case == "level":
        extra = ["--pred-level", "1.5"]
    elif case == "exists":
        out.mkdir()
        (out / "keep").write_text("mine")
    args = ["dataset", "build", "--from", campaign / "runs" / "cpu", "--out", out, "--version", "1.0.0",
            "--no-static", "--jobs", "1", *extra]
    for p in preds:
        args += ["--pred", p]
    res = run(*args)
    assert res.exit_code == 2, res.output
    assert WHY[case] in res.output, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("blox-lat: error:"), res.output
    if case == "exists":
        assert sorted(p.name for p in out.iterdir()) == ["keep"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".rel.partial-*"))


def test_library_checks_each_prediction_section(campaign, tmp_path):
    import pyarrow as pa

    name, table, meta = pr.pred_section(campaign / "cpu.json")
    src = [campaign / "runs" / "cpu"]
    bad = [  # (section, what the error says)
        (("pred/gpu", table, meta), r"^pred/gpu: the predictions are for device 'cpu', not 'gpu'"),
        (("bench/cpu", table, meta), r"^'bench/cpu' is not a prediction section name"),
        ((name, table.slice(0, 100), meta), r"^pred/cpu: 100 rows; a prediction section holds every model"),
        ((name, table.take(pa.array(np.arange(NUM_MODELS)[::-1].copy())), meta), r"not keyed model by model"),
        ((name, table.drop_columns(["hi_ms"]), meta), r"^pred/cpu: columns \[.*\] are not the pred section's"),
        ((name, table.set_column(2, "pred_ms", pa.array(["x"] * NUM_MODELS)), meta), r"column has the wrong type"),
        ((name, table, {**meta, "latency": None}), r"which latency is predicted"),
        ((name, table.set_column(3, "lo_ms", table.column("hi_ms")), meta), r"^pred/cpu: model #0 has no valid"),
        ((name, table), r"is a \(name, table, metadata\) tuple"),
    ]
    for item, match in bad:
        with pytest.raises(ds.InputError, match=match):
            ds.build(src, tmp_path / "r", "1.0.0", static=False, jobs=1, predictions=[item])
        assert not (tmp_path / "r").exists(), match
    with pytest.raises(ds.InputError, match=r"^pred/cpu is already a section|^two predictors for pred/cpu"):
        ds.build(src, tmp_path / "r", "1.0.0", static=False, jobs=1, predictions=[(name, table, meta)] * 2)
    built = ds.build(src, tmp_path / "r", "1.0.0", static=False, jobs=1, predictions=[(name, table, meta)])
    again = ds.build(src, tmp_path / "r2", "1.0.0", static=False, jobs=1, predictions=[(name, table, meta)])
    sha = [json.loads((b.path / "dataset.json").read_text())["sections"]["pred/cpu"]["sha256"] for b in (built, again)]
    assert sha[0] == sha[1]


def test_releases_without_predictions_say_so(campaign, tmp_path):
    golden = ds.open(GOLDEN / "release-1.0.0")
    assert golden.predicted_devices == []
    with pytest.raises(ds.DeviceNotInReleaseError, match="no predictions for device 'cpu'"):
        golden.prediction(0, "cpu")
    assert golden.latency(0, "cpu") is not None  # measurements are unchanged
    rel = tmp_path / "rel"
    res = run("dataset", "build", "--from", campaign / "runs" / "cpu", "--out", rel, "--version", "1.0.0",
              "--no-static", "--jobs", "1")
    assert res.exit_code == 0, res.output
    assert ds.open(rel).predicted_devices == []
    res = run("dataset", "query", "0", "--release", rel, "--device", "gpu")
    assert res.exit_code == 2 and "no measurements or predictions for device 'gpu'" in res.output


def test_a_predicted_only_device_answers_predictions_and_refuses_measurements(campaign, tmp_path):
    phone = _edited(campaign, tmp_path, lambda d: d.update(device="phone"))
    res = run("dataset", "build", "--from", campaign / "runs" / "cpu", "--pred", phone, "--out", tmp_path / "rel",
              "--version", "1.0.0", "--no-static", "--no-raw", "--jobs", "1")
    assert res.exit_code == 0, res.output
    rel = ds.open(tmp_path / "rel")
    assert rel.devices == ["cpu"] and rel.predicted_devices == ["phone"]
    with pytest.raises(ds.DeviceNotInReleaseError, match=r"no measurements for device 'phone' \(its predictions"):
        rel.latency(0, "phone")
    assert rel.prediction(0)["section"] == "pred/phone"  # the only predicted device
    res = run("dataset", "query", "0", "--release", tmp_path / "rel", "--device", "phone", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [e["source"] for e in data["latency"]] == ["predicted"] and set(data["sections"]) == {"pred/phone"}
