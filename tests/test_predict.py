"""blox_lat.predict and ``blox-lat predict``: fit, plan, pieces, transfer, files, bad inputs.

Synthetic latencies come from a known ground truth (per-(stage, block) costs in ms plus an
interaction between stages' operations, times log-normal noise) written as journal records, so
recovery and interval coverage are checked against the truth; one small real CPU campaign goes
from ``measure @plan.txt`` through ``fit`` to ``predict all`` and a release.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from blox_lat import predict as pr
from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.predict._features import all_blocks, descriptors

NOISE = 0.03


def _truth(seed: int = 1, interaction: float = 0.0):
    rng = np.random.default_rng(seed)
    costs = rng.lognormal(0.0, 0.5, (3, 45)) * np.array([[1.0], [0.7], [0.5]])
    d0, d1 = descriptors(0), descriptors(1)

    def latency(idx):
        b = all_blocks()[np.asarray(idx)].astype(int)
        y = 2.0 + sum(costs[s, b[:, s]] for s in range(3))
        # an interaction: stage 0's MACs (descriptor column 6) slow stage 1's mbconvs (column 1)
        return y * np.exp(interaction * d0[b[:, 0], 6] * d1[b[:, 1], 1])

    return costs, latency


def _journal(folder: Path, idx, lat, *, device="cpu", protocol=None, campaign="c1", precision="fp32",
             day: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    profile = {"name": device, "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
               "input_size": 32, "precision": precision, "options": {"threads": 1}}
    protocol = protocol or {"version": 1, "groups": 100, "runs_per_group": 10, "warmup_min_runs": 10,
                            "warmup_min_s": 0.5}
    hashes = sp.space_table().hashes
    lines = [{"schema": 1, "kind": "environment", "env_id": "e", "campaign_id": campaign, "device": device,
              "profile": profile, "protocol": protocol}]
    for n, (i, y) in enumerate(zip(idx, lat)):
        lines.append({"schema": 1, "kind": "measurement", "model_hash": hashes[int(i)], "model_index": int(i),
                      "device": device, "profile": profile, "protocol": protocol, "env_id": "e",
                      "campaign_id": campaign, "status": "ok", "reason": None,
                      "recorded_at": f"2026-01-{day:02d}T00:00:{n:09d}", "measurement": {"latency_ms": float(y)}})
    with open(folder / "journal.jsonl", "a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def _sample(n, seed=0, interaction=0.0, noise=NOISE, truth_seed=1):
    _costs, latency = _truth(truth_seed, interaction)
    rng = np.random.default_rng(seed)
    idx = rng.choice(91125, n, replace=False)
    return idx, latency(idx) * rng.lognormal(0.0, noise, n)


def _held_out(exclude, n=3000, seed=99, interaction=0.0, truth_seed=1):
    _costs, latency = _truth(truth_seed, interaction)
    rng = np.random.default_rng(seed)
    idx = np.setdiff1d(rng.choice(91125, n + len(exclude), replace=False), exclude)[:n]
    return idx, latency(idx) * rng.lognormal(0.0, NOISE, len(idx))


# -- fit --------------------------------------------------------------------------------------
def test_additive_fit_recovers_block_costs():
    costs, _ = _truth()
    idx, y = _sample(400)
    p = pr.fit(pr.from_arrays(idx, y), family="additive")
    fitted = np.asarray(p.model["costs"])
    for s in range(3):  # costs are identified up to a per-stage constant (the intercept)
        a, b = fitted[s] - fitted[s].mean(), costs[s] - costs[s].mean()
        assert np.corrcoef(a, b)[0, 1] > 0.97
        assert np.abs(a - b).max() < 0.25 * costs[s].max()
    hi, hy = _held_out(idx)
    acc = pr.accuracy(hy, p.predict(hi).latency_ms)
    assert acc["spearman"] > 0.95 and acc["mape_pct"] < 4.5


def test_interactions_are_found_and_intervals_hold():
    idx, y = _sample(700, interaction=0.15)
    p = pr.fit(pr.from_arrays(idx, y))
    assert p.family == "interact"
    fams = p.cv["families"]
    assert fams["interact"]["mape_pct"] < fams["additive"]["mape_pct"]
    hi, hy = _held_out(idx, interaction=0.15)
    res = p.predict(hi, level=0.9)
    coverage = np.mean((hy >= res.lo_ms) & (hy <= res.hi_ms))
    assert 0.85 <= coverage <= 0.95, coverage
    assert pr.accuracy(hy, res.latency_ms)["mape_pct"] < 4.5
    assert 85 <= fams["interact"]["coverage90_pct"] <= 95


def test_balanced_135_fits_and_covers():
    _costs, latency = _truth()
    idx = np.array(pr.plan_balanced(135, seed=4))
    y = latency(idx) * np.random.default_rng(3).lognormal(0, NOISE, len(idx))
    p = pr.fit(pr.from_arrays(idx, y))
    assert p.family in ("additive", "additive-log")  # too few models for the interaction family
    hi, hy = _held_out(idx)
    res = p.predict(hi)
    assert pr.accuracy(hy, res.latency_ms)["spearman"] > 0.8  # 3 noisy measurements per block
    assert 0.82 <= np.mean((hy >= res.lo_ms) & (hy <= res.hi_ms)) <= 0.97


def _structured_truth(residual: float = 0.05, seed: int = 2):
    """Block costs that follow their structure (each operation at each position, the connection
    shape, per stage) times a log-normal block residual: what real blocks look like, unlike the
    independent costs of :func:`_truth`, which no 135 models can pin down (136 parameters)."""
    from blox_lat.predict._features import structure

    rng = np.random.default_rng(seed)
    costs = np.stack([structure() @ np.r_[np.tile([1.0, 1.3, 0.6] * rng.lognormal(0, 0.2, 3), 2),
                                          rng.uniform(0.02, 0.2, 6)] * f for f in (1.0, 0.7, 0.5)])
    costs = costs * rng.lognormal(0, residual, costs.shape)

    def latency(idx):
        b = all_blocks()[np.asarray(idx)].astype(int)
        return 2.0 + sum(costs[s, b[:, s]] for s in range(3))

    return costs, latency


def test_structured_family_recovers_a_structured_truth_from_135_models(tmp_path):
    """Issue 16's small-sample target on a truth with 5 % block residual and 1 % noise (at 3 %
    noise the gap to 911 models grows to about 0.025)."""
    costs, latency = _structured_truth()
    noise = 0.01
    rng = np.random.default_rng(8)
    idx = np.array(pr.plan_balanced(135, seed=8))
    p_data = pr.from_arrays(idx, latency(idx) * rng.lognormal(0, noise, 135))
    p = pr.fit(p_data)
    assert p.family.startswith("structured"), p.cv["families"]
    fams = p.cv["families"]
    assert fams[p.family]["mape_pct"] < 0.8 * fams["additive"]["mape_pct"]  # the features carry it
    assert {"lambda", "kappa"} <= set(fams["structured-log"])
    many_idx = rng.choice(np.setdiff1d(np.arange(91125), idx), 911, replace=False)
    many = pr.fit(pr.from_arrays(many_idx, latency(many_idx) * rng.lognormal(0, noise, 911)))
    hi, _ = _held_out(np.r_[idx, many_idx], n=5000)
    hy = latency(hi) * rng.lognormal(0, noise, len(hi))
    few_fig, many_fig = pr.accuracy(hy, p.predict(hi).latency_ms), pr.accuracy(hy, many.predict(hi).latency_ms)
    assert few_fig["spearman"] >= many_fig["spearman"] - 0.02, (few_fig, many_fig)  # issue 16: within 0.02
    plain = pr.accuracy(hy, pr.fit(p_data, family="additive").predict(hi).latency_ms)
    assert few_fig["spearman"] > plain["spearman"] + 0.005, (few_fig, plain)  # the plain table fits the noise
    res = p.predict(hi)
    assert 0.85 <= np.mean((hy >= res.lo_ms) & (hy <= res.hi_ms)) <= 0.97
    fitted = np.asarray(p.model["costs"])
    if p.model["space"] == "log":  # log costs are factors: compare them with log(1 + cost / rest)
        fitted = np.expm1(fitted)
    for s in range(3):  # identified up to a per-stage constant
        assert np.corrcoef(fitted[s] - fitted[s].mean(), costs[s] - costs[s].mean())[0, 1] > 0.9
    q = pr.load(p.save(tmp_path / "s.json"))  # the structure coefficients travel in the file, as a record
    assert np.allclose(q.predict(hi[:30]).latency_ms, res.latency_ms[:30], rtol=1e-7)
    assert np.asarray(q.model["structure"]["coef"]).shape == (3, 12)


def test_cli_family_names_match_the_library():
    from blox_lat.cli.predict import FAMILY_NAMES

    assert FAMILY_NAMES == pr.FAMILIES


def test_fit_from_journals_takes_repeats_and_corrected(tmp_path):
    idx = np.array(pr.plan_balanced(60, seed=1))
    y = _truth()[1](idx)
    _journal(tmp_path / "a", idx, y, campaign="c1")
    _journal(tmp_path / "b", idx[:20], y[:20] * 1.1, campaign="c2", day=2)
    data = pr.load_measurements([tmp_path])
    assert len(data) == 60 and data.latency == "raw" and len(data.repeats) == 20
    first = dict(zip(idx.tolist(), y))
    i = int(idx[0])
    got = data.latency_ms[np.searchsorted(data.indices, i)]
    assert got == pytest.approx(first[i] * 1.1)  # the later campaign's record stands (as in a release)
    assert data.repeats[i] == pytest.approx({"c1": first[i], "c2": first[i] * 1.1})
    # anchored records: the level-corrected latency (latency / level) is used when every model has one
    folder = tmp_path / "corr"
    _journal(folder, idx, y)
    recs = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    for r in recs:
        if r["kind"] == "measurement":
            r.update(schema=2, level=0.5, latency_corrected_ms=r["measurement"]["latency_ms"] * 2, set_id="s1")
    recs.append({"schema": 2, "kind": "anchors", "set_id": "s1", "attempt": 1, "device": "cpu", "campaign_id": "c1",
                 "env_id": "e", "anchors": [{"model_hash": sp.space_table().hashes[0], "model_index": 0,
                                             "latency_ms": 1.0}],
                 "reference_ms": [2.0], "level": 0.5, "members": 60, "recorded_at": "2026-01-01T00:00:00"})
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    corr = pr.load_measurements([folder])
    assert corr.latency == "corrected"
    assert pr.load_measurements([folder], latency="raw").latency_ms[0] * 2 == pytest.approx(corr.latency_ms[0])
    with pytest.raises(pr.PredictError, match="level-corrected"):
        pr.load_measurements([tmp_path / "a"], latency="corrected")


# -- file -------------------------------------------------------------------------------------
def test_predictor_file_round_trip(tmp_path):
    idx, y = _sample(300, interaction=0.15)
    p = pr.fit(pr.from_arrays(idx, y, device="cpu"))
    path = p.save(tmp_path / "p.json")
    q = pr.load(path)
    a, b = p.predict(idx[:50]), q.predict(idx[:50])
    assert np.allclose(a.latency_ms, b.latency_ms, rtol=1e-7) and np.allclose(a.hi_ms, b.hi_ms, rtol=1e-6)
    assert (q.device, q.family, q.cv, q.training["models"]) == (p.device, p.family, p.cv, 300)
    doc = json.loads(path.read_text())
    assert doc["format"] == "blox-lat-predictor" and doc["schema_version"] == pr.PREDICTOR_SCHEMA
    assert set(doc) >= {"space", "device", "setting", "protocol", "training", "cv", "model", "interval"}
    with pytest.raises(pr.PredictError, match="exists"):
        p.save(path)
    out = pr.write_predictions(q, tmp_path / "all.parquet")
    import pyarrow.parquet as pq

    t = pq.read_table(out)
    assert t.num_rows == 91125 and t.column("measured").to_numpy().sum() == 300
    assert json.loads(t.schema.metadata[b"blox_lat"])["section"] == "pred/cpu"


GOLDEN = Path(__file__).parent / "golden" / "predict" / "predictor-v1.json"


def test_golden_schema_1_file_keeps_loading():
    """A schema-1 file (an additive fit of 60 balanced synthetic models) reads and predicts the same."""
    p = pr.load(GOLDEN)
    assert (p.device, p.family, p.method, p.training["models"]) == ("cpu", "additive", "fit", 60)
    res = p.predict([0, 24519, 91124])
    assert res.latency_ms == pytest.approx([4.566134352580003, 4.5312405404800025, 4.474128149180004], rel=1e-8)
    assert res.lo_ms == pytest.approx([3.641077119058014, 3.6384814193541675, 3.5705598627286137], rel=1e-6)
    assert res.hi_ms == pytest.approx([5.851562056117342, 5.762744300017803, 5.728641928409044], rel=1e-6)


def test_predict_all_is_fast():
    import time

    idx, y = _sample(300, interaction=0.15)
    p = pr.fit(pr.from_arrays(idx, y))
    t0 = time.perf_counter()
    res = p.predict()
    assert len(res.latency_ms) == 91125 and (res.lo_ms < res.latency_ms).all() and (res.latency_ms < res.hi_ms).all()
    assert time.perf_counter() - t0 < 1.0


# -- plan -------------------------------------------------------------------------------------
def test_balanced_plan_is_balanced_and_measure_reads_it(tmp_path):
    picks = pr.plan_balanced(135, seed=7)
    assert len(set(picks)) == 135 and picks == pr.plan_balanced(135, seed=7)
    b = all_blocks()[picks]
    for s in range(3):
        assert (np.bincount(b[:, s], minlength=45) == 3).all()
    path = pr.write_plan(tmp_path / "plan.txt", picks, ["a header"])
    assert [a.index for a in sp.select(f"@{path}")] == picks
    b100 = all_blocks()[pr.plan_balanced(100, seed=1)]
    assert all(set(np.bincount(b100[:, s], minlength=45)) <= {2, 3} for s in range(3))


def test_next_plan_picks_uncertain_unmeasured_models():
    measured = np.array(pr.plan_balanced(40, seed=2))  # 5 blocks per stage never seen
    picks = pr.plan_next(measured, 10)
    assert not set(picks) & set(measured.tolist()) and len(set(picks)) == 10
    seen = all_blocks()[np.r_[measured, picks]]
    assert all(len(np.unique(seen[:, s])) == 45 for s in range(3))


# -- transfer ---------------------------------------------------------------------------------
def test_transfer_from_prior_beats_a_small_fit():
    idx, y = _sample(900, interaction=0.15)
    prior = pr.fit(pr.from_arrays(idx, y, device="cpu"))
    # the new device: 1.8x slower, and stage-2 bconv blocks relatively slower still
    _c, latency = _truth(1, 0.15)
    bconv2 = descriptors(2)[:, 2]

    def new_latency(i):
        return 1.8 * latency(i) * np.exp(0.05 * bconv2[all_blocks()[i][:, 2]])

    rng = np.random.default_rng(5)
    few = rng.choice(91125, 50, replace=False)
    data = pr.from_arrays(few, new_latency(few) * rng.lognormal(0, NOISE, 50), device="cpu-int8")
    t = pr.transfer(prior, data)
    assert t.device == "cpu-int8" and t.method == "transfer"
    hi = np.setdiff1d(rng.choice(91125, 3000, replace=False), few)
    hy = new_latency(hi) * rng.lognormal(0, NOISE, len(hi))
    got = pr.accuracy(hy, t.predict(hi).latency_ms)
    assert got["spearman"] > 0.9 and got["mape_pct"] < 5.5
    res = t.predict(hi)
    assert 0.8 <= np.mean((hy >= res.lo_ms) & (hy <= res.hi_ms)) <= 0.99
    q = pr.load(t.save(Path(__import__("tempfile").mkdtemp()) / "t.json"))
    assert np.allclose(q.predict(hi[:20]).latency_ms, res.latency_ms[:20], rtol=1e-6)


def test_transfer_drops_a_prior_that_ranks_the_new_device_worse_than_structure():
    """fp32 and int8 on one CPU rank models alike at Spearman ~0.5: with such a prior, 50
    samples fitted on block structure alone predict better, and cross-validation says so."""
    idx, y = _sample(900, truth_seed=7)  # a prior with independent, structureless block costs
    prior = pr.fit(pr.from_arrays(idx, y, device="cpu"))
    _c, latency = _structured_truth(seed=3)
    rng = np.random.default_rng(11)
    few = rng.choice(91125, 50, replace=False)
    data = pr.from_arrays(few, latency(few) * rng.lognormal(0, NOISE, 50), device="cpu-int8")
    t = pr.transfer(prior, data)
    assert t.method == "transfer" and t.cv["chosen"].startswith("structured") and t.provenance["prior_used"] is False
    assert t.cv["families"]["structured"]["rmse_log"] < t.cv["families"]["transfer"]["rmse_log"]
    hi = np.setdiff1d(rng.choice(91125, 3000, replace=False), few)
    from blox_lat.predict._transfer import _transfer

    with_prior = _transfer(prior, data, 5, 0).predict(hi).latency_ms
    assert pr.accuracy(latency(hi), t.predict(hi).latency_ms)["spearman"] > pr.accuracy(latency(hi), with_prior)["spearman"]


# -- pieces -----------------------------------------------------------------------------------
def test_pieces_predict_whole_models_after_calibration():
    rng = np.random.default_rng(0)
    lat = {p: float(rng.uniform(0.05, 1.0)) for p in pr.all_pieces()}
    doc = {"format": "blox-lat-pieces", "schema_version": 1, "device": "cpu", "setting": {}, "protocol": None,
           "pieces": {p: {"latency_ms": v} for p, v in lat.items()}}

    def whole(i):  # each model pays 0.3 ms once, and the pieces run 10 % faster inside a model
        b = all_blocks()[i]
        fixed = lat["stem"] + lat["head"] + sum(lat[f"reduction/{s}"] for s in range(3))
        return 0.3 + 0.9 * (fixed + sum(np.array([lat[f"cell/{s}/{x}"] for x in b[:, s]]) for s in range(3)))

    few = rng.choice(91125, 15, replace=False)
    p = pr.from_pieces(doc, pr.from_arrays(few, whole(few) * rng.lognormal(0, 0.01, 15), device="cpu"))
    assert p.cv["calibration"]["b"] == pytest.approx(0.9, abs=0.03)
    hi = rng.choice(91125, 500, replace=False)
    assert pr.accuracy(whole(hi), p.predict(hi).latency_ms)["mape_pct"] < 2.0
    with pytest.raises(pr.PiecesError, match="not measured"):
        pr.from_pieces({**doc, "pieces": {"stem": {"latency_ms": 1.0}}})


def test_pieces_are_standalone_models_the_harness_times():
    import onnxruntime as ort

    from blox_lat.harness import TimingProtocol

    for piece, shape in (("stem", (1, 32, 32, 32)), ("cell/1/7", (1, 64, 16, 16)), ("reduction/2", (1, 256, 4, 4)),
                         ("head", (1, 100))):
        sess = ort.InferenceSession(pr.piece_onnx(piece), providers=["CPUExecutionProvider"])
        assert sess.run(None, {"input": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == shape
    proto = TimingProtocol(groups=3, runs_per_group=5, warmup_min_runs=2, warmup_min_s=0.01)
    doc = pr.measure_pieces(["stem", "cell/0/0", "cell/2/44"], device="cpu", protocol=proto)
    assert set(doc["pieces"]) == {"stem", "cell/0/0", "cell/2/44"}
    assert all(v["latency_ms"] > 0 for v in doc["pieces"].values())
    assert doc["device"] == "cpu" and doc["protocol"]["groups"] == 3
    with pytest.raises(pr.PiecesError, match="fp32 ONNX"):
        pr.measure_pieces(["stem"], device="cpu-int8", protocol=proto)


# -- bad input (one line, exit 2) -------------------------------------------------------------
def _run(args):
    result = CliRunner().invoke(cli, args, standalone_mode=False)
    return result


def _error_line(capsys_or_result):
    return capsys_or_result


@pytest.fixture
def cli_run(capsys):
    def run(*args):
        with pytest.raises(SystemExit) as exc:
            cli.main(list(args), prog_name="blox-lat")
        err = capsys.readouterr().err
        return exc.value.code, err

    return run


def test_bad_too_few_models_says_how_many_and_which(tmp_path, cli_run):
    idx, y = _sample(30)
    _journal(tmp_path / "r", idx, y)
    code, err = cli_run("predict", "fit", str(tmp_path / "r"), "--out", str(tmp_path / "p.json"))
    assert code == 2 and err.count("\n") == 1
    assert "measure at least" in err and "uncovered: stage" in err and "plan --next" in err
    idx, y = _sample(100)
    _journal(tmp_path / "s", np.array(pr.plan_balanced(100, 3)), y)
    code, err = cli_run("predict", "fit", str(tmp_path / "s"), "--out", str(tmp_path / "p.json"), "--family", "interact")
    assert code == 2 and "at least 270" in err and "170 more" in err
    code, err = cli_run("predict", "fit", str(tmp_path / "s"), "--out", str(tmp_path / "p.json"),
                        "--family", "structured-interact")
    assert code == 2 and err.count("\n") == 1 and "at least 135" in err and "35 more" in err
    assert "structured-log" in err  # a family 100 models are enough for


def test_bad_mixed_devices_and_protocols(tmp_path, cli_run):
    idx, y = _sample(60)
    _journal(tmp_path / "a", idx, y, device="cpu")
    _journal(tmp_path / "b", idx, y, device="cpu-int8", precision="int8")
    code, err = cli_run("predict", "fit", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "two devices" in err and err.count("\n") == 1
    _journal(tmp_path / "c", idx, y, protocol={"version": 1, "groups": 10, "runs_per_group": 10,
                                               "warmup_min_runs": 10, "warmup_min_s": 0.5})
    code, err = cli_run("predict", "fit", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "two protocols" in err and "groups 100 vs 10" in err
    _journal(tmp_path / "d", idx, y, precision="int8")
    code, err = cli_run("predict", "fit", str(tmp_path / "a"), str(tmp_path / "d"), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "two settings" in err


def test_bad_predictor_files_and_device(tmp_path, cli_run):
    idx = np.array(pr.plan_balanced(150, seed=1))
    y = _truth()[1](idx)
    p = pr.fit(pr.from_arrays(idx, y, device="cpu"), family="additive")
    path = p.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**doc, "space": {**doc["space"], "models": 15625, "name": "nasbench201"}}))
    code, err = cli_run("predict", "show", str(other))
    assert code == 2 and "another search space" in err
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**doc, "schema_version": pr.PREDICTOR_SCHEMA + 1}))
    code, err = cli_run("predict", "all", str(newer), "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and "schema" in err and "upgrade" in err
    (tmp_path / "junk.json").write_text("{")
    code, err = cli_run("predict", "show", str(tmp_path / "junk.json"))
    assert code == 2 and "not a predictor file" in err
    code, err = cli_run("predict", "all", str(path), "--device", "sd888", "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and "fitted on device 'cpu', not 'sd888'" in err and err.count("\n") == 1
    with pytest.raises(pr.DeviceMismatchError):
        p.predict([0], device="gtx1080ti")


def test_cli_plan_fit_show_transfer(tmp_path, cli_run):
    runner = CliRunner()
    res = runner.invoke(cli, ["predict", "plan", "90", "--seed", "3", "--out", str(tmp_path / "plan.txt")])
    assert res.exit_code == 0, res.output
    picks = [a.index for a in sp.select(f"@{tmp_path / 'plan.txt'}")]
    _c, latency = _truth()
    _journal(tmp_path / "r", picks, latency(np.array(picks)))
    res = runner.invoke(cli, ["predict", "fit", str(tmp_path / "r"), "--out", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["predict", "show", str(tmp_path / "p.json"), "--models", "0,1", "--json"])
    shown = json.loads(res.output)
    assert shown["device"] == "cpu" and len(shown["predictions"]) == 2
    res = runner.invoke(cli, ["predict", "plan", "--next", "20", "--from", str(tmp_path / "p.json"),
                              "--out", str(tmp_path / "next.txt")])
    assert res.exit_code == 0, res.output
    assert not {a.index for a in sp.select(f"@{tmp_path / 'next.txt'}")} & set(picks)
    few = picks[:30]
    _journal(tmp_path / "int8", few, 1.5 * latency(np.array(few)), device="cpu-int8", precision="int8")
    res = runner.invoke(cli, ["predict", "transfer", str(tmp_path / "p.json"), str(tmp_path / "int8"),
                              "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    assert pr.load(tmp_path / "t.json").device == "cpu-int8"
    code, err = cli_run("predict", "plan", "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "give N" in err


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("blox-lat")
    out = subprocess.run([str(exe), "predict", "plan", "45", "--out", str(tmp_path / "p.txt")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(sp.select(f"@{tmp_path / 'p.txt'}")) == 45


# -- a real CPU campaign, end to end ----------------------------------------------------------
def test_real_cpu_campaign_fit_all_and_release(tmp_path):
    runner = CliRunner()
    plan = tmp_path / "plan.txt"
    assert runner.invoke(cli, ["predict", "plan", "45", "--seed", "1", "--out", str(plan)]).exit_code == 0
    res = runner.invoke(cli, ["measure", f"@{plan}", "--device", "cpu", "--out", str(tmp_path / "runs" / "cpu"),
                              "--store", str(tmp_path / "store"), "--runs", "20", "--warmup-runs", "2",
                              "--warmup-s", "0.02", "--max-attempts", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["predict", "fit", str(tmp_path / "runs" / "cpu"), "--out", str(tmp_path / "cpu.json")])
    assert res.exit_code == 0, res.output
    p = pr.load(tmp_path / "cpu.json")
    assert p.device == "cpu" and p.training["models"] == 45 and p.protocol["groups"] == 2
    assert p.setting["format"] == "onnx"
    res = runner.invoke(cli, ["predict", "all", str(tmp_path / "cpu.json"), "--out", str(tmp_path / "all.parquet")])
    assert res.exit_code == 0, res.output
    # the release path: bench/cpu in, pred/cpu table out, queried as a prediction
    from blox_lat import dataset
    from blox_lat.predict import pred_section

    rel_path = tmp_path / "rel"
    dataset.build([tmp_path / "runs" / "cpu"], rel_path, "1.0.0", jobs=1)
    from_release = pr.load_measurements([rel_path], device="cpu")
    assert len(from_release) == 45 and from_release.protocol == p.protocol
    q = pr.fit(from_release)
    assert np.allclose(q.predict([0, 5]).latency_ms, p.predict([0, 5]).latency_ms, rtol=1e-6)
    name, table, meta = pred_section(tmp_path / "cpu.json")
    assert name == "pred/cpu" and table.num_rows == 91125 and meta["kind"] == "prediction"

    rel = dataset.open(dataset.build([tmp_path / "runs" / "cpu"], tmp_path / "rel2", "1.0.0", jobs=1,
                                     predictions=[(name, table, meta)]).path)
    import hashlib

    digest = hashlib.sha256((tmp_path / "cpu.json").read_bytes()).hexdigest()
    assert meta["predictor_sha256"] == digest
    assert rel.section("pred/cpu").entry["metadata"]["predictor_sha256"] == digest
    got = rel.prediction(24519, "cpu")
    assert got["source"] == "predicted" and got["section"] == "pred/cpu"
    assert got["pred_ms"] == pytest.approx(float(p.predict([24519]).latency_ms[0]))
    with pytest.raises(dataset.DeviceNotInReleaseError):
        rel.prediction(0, "sd888")
