"""``blox-lat predict`` (and a few neighbours) as practitioners use them (issue 25).

- every command that reports a result takes ``--json`` and its JSON says what the text says;
- ``predict show`` lists the additive model's per-block costs;
- ``predict fit`` prints the test-retest floor beside its cross-validated figures;
- ``predict pieces fit`` gives no zero-width interval;
- ``predict transfer`` says whether it used the prior, and why;
- interval labels follow ``--level``.

Synthetic journals with a known additive truth keep each fit a fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_predict import _journal

from blox_lat import predict as pr
from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.predict._features import all_blocks

DEVICE_TOML = """\
[devices.my-box]
transport = "local"
runtime = "onnxruntime"
format = "onnx"
"""


def _costs(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(0.0, 0.5, (3, 45)) * np.array([[1.0], [0.7], [0.5]])


def _latency(idx, seed: int = 1) -> np.ndarray:
    costs = _costs(seed)
    b = all_blocks()[np.asarray(idx)].astype(int)
    return 2.0 + sum(costs[s, b[:, s]] for s in range(3))


def _pieces_doc(path: Path) -> Path:
    """All 140 pieces with made-up latencies (whole models are their sum plus 0.3 ms)."""
    doc = {"format": "blox-lat-pieces", "schema_version": 1, "device": "cpu", "setting": {}, "protocol": None,
           "measured_at": "2026-01-01T00:00:00Z",
           "pieces": {name: {"latency_ms": 0.05 * (1 + i % 7)} for i, name in enumerate(pr.all_pieces())}}
    path.write_text(json.dumps(doc))
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    res = run(*args)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A measured balanced plan of 90 models on cpu (20 of them measured again in a second
    campaign), its predictor, and 45 cpu-int8 samples to transfer to."""
    d = tmp_path_factory.mktemp("ux")
    idx = np.array(pr.plan_balanced(90, seed=3))
    rng = np.random.default_rng(0)
    y = _latency(idx) * rng.lognormal(0.0, 0.03, len(idx))
    _journal(d / "runs" / "a", idx, y, campaign="c1")
    _journal(d / "runs" / "b", idx[:20], y[:20] * rng.lognormal(0.0, 0.02, 20), campaign="c2", day=2)
    _journal(d / "one", idx, y, campaign="c1")
    ok("predict", "fit", d / "one", "--out", d / "p.json")
    few = idx[:45]
    _journal(d / "int8", few, 1.5 * _latency(few) * rng.lognormal(0.0, 0.03, 45), device="cpu-int8",
             precision="int8")
    return d


# -- A: --json on every command that reports a result ----------------------------------------
def test_plan_json(tmp_path):
    doc = json.loads(ok("predict", "plan", "90", "--seed", "3", "--out", tmp_path / "plan.txt", "--json").stdout)
    assert doc["out"] == str(tmp_path / "plan.txt") and doc["mode"] == "balanced" and doc["seed"] == 3
    assert doc["models"] == 90 == len(doc["indices"])
    assert doc["indices"] == [a.index for a in sp.select(f"@{tmp_path / 'plan.txt'}")]


def test_plan_next_json(made, tmp_path):
    doc = json.loads(ok("predict", "plan", "--next", "7", "--from", made / "p.json", "--out", tmp_path / "n.txt",
                        "--json").stdout)
    assert doc["mode"] == "next" and doc["models"] == 7 and doc["measured"] == 90
    assert doc["from"] == [str(made / "p.json")]


def test_all_json(made, tmp_path):
    doc = json.loads(ok("predict", "all", made / "p.json", "--out", tmp_path / "all.parquet", "--level", "0.8",
                        "--json").stdout)
    assert doc == {"out": str(tmp_path / "all.parquet"), "predictor": str(made / "p.json"), "section": "pred/cpu",
                   "device": "cpu", "models": 91125, "level": 0.8}
    assert (tmp_path / "all.parquet").is_file()


def test_transfer_json(made, tmp_path):
    doc = json.loads(ok("predict", "transfer", made / "p.json", made / "int8", "--out", tmp_path / "t.json",
                        "--json").stdout)
    assert doc["out"] == str(tmp_path / "t.json") and doc["device"] == "cpu-int8" and doc["method"] == "transfer"
    assert doc["training"]["models"] == 45 and "transfer" in doc["cv"]["families"]


def test_pieces_measure_json(tmp_path):
    doc = json.loads(ok("predict", "pieces", "measure", "--pieces", "stem,head", "--runs", "20",
                        "--runs-per-group", "5", "--warmup-runs", "1", "--warmup-s", "0.01",
                        "--out", tmp_path / "pieces.json", "--json").stdout)
    assert doc["out"] == str(tmp_path / "pieces.json") and doc["device"] == "cpu" and doc["count"] == 2
    assert set(doc["pieces"]) == {"stem", "head"} and all(v > 0 for v in doc["pieces"].values())
    assert json.loads((tmp_path / "pieces.json").read_text())["pieces"]["stem"]["latency_ms"] == doc["pieces"]["stem"]


def test_export_blox_json(tmp_path):
    from blox_lat.dataset import _synthetic as syn

    syn.write_journal(tmp_path / "cpu", "cpu", [0, 1, 2], samples=20)
    syn.write_training_records(tmp_path / "train", range(5), epochs=4)
    ok("dataset", "build", "--from", tmp_path / "cpu", "--from", tmp_path / "train", "--out", tmp_path / "rel",
       "--version", "1.0.0", "--no-static")
    doc = json.loads(ok("dataset", "export-blox", tmp_path / "rel", "--out", tmp_path / "bx", "--json").stdout)
    assert doc["out"] == str(tmp_path / "bx") and doc["release"] == str(tmp_path / "rel")
    assert "blox-ext-0.csv" in doc["files"] and all((tmp_path / "bx" / f).is_file() for f in doc["files"])


def test_devices_validate_json(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(DEVICE_TOML)
    doc = json.loads(ok("devices", "validate", path, "--json").stdout)
    assert doc == {"path": str(path), "ok": True, "profiles": ["my-box"]}


# -- B: interval labels follow --level --------------------------------------------------------
def test_show_interval_label_follows_level(made):
    p = pr.load(made / "p.json")
    text = ok("predict", "show", made / "p.json", "--level", "0.8").stdout
    assert "80% interval" in text and "90% interval" not in text
    lo, hi = np.exp(np.array(pr.load(made / "p.json").interval_table()["0.8"]))
    assert f"x{lo:.3f} .. x{hi:.3f}" in text
    assert p.interval_factors(0.8) == pytest.approx((lo, hi))
    doc = json.loads(ok("predict", "show", made / "p.json", "--level", "0.5", "--json").stdout)
    assert doc["interval_at_level"]["level"] == 0.5
    assert doc["interval_at_level"]["factors"] == pytest.approx(np.exp(doc["interval"]["bounds"]["0.5"]))
    assert "90% interval" in ok("predict", "show", made / "p.json").stdout  # the default level
    res = run("predict", "show", made / "p.json", "--level", "1.5")
    assert res.exit_code == 2 and "strictly between 0 and 1" in res.output


def test_all_text_names_its_level(made, tmp_path):
    text = ok("predict", "all", made / "p.json", "--out", tmp_path / "a.parquet", "--level", "0.8").stdout
    assert "80% intervals" in text


# -- B: predict show lists the per-block costs -----------------------------------------------
def test_show_lists_block_costs(made, tmp_path):
    ok("predict", "fit", made / "one", "--family", "additive", "--out", tmp_path / "add.json")
    doc = json.loads(ok("predict", "show", tmp_path / "add.json", "--json").stdout)
    costs = doc["block_costs"]
    assert costs["space"] == "ms" and len(costs["blocks"]) == 135 and costs["mean_ms"] > 0
    names = [b.name for b in sp.list_blocks()]
    assert [(c["stage"], c["block"], c["name"]) for c in costs["blocks"]] == [
        (s, b, names[b]) for s in range(3) for b in range(45)]
    shown = np.array([c["cost_ms"] for c in costs["blocks"]]).reshape(3, 45)
    truth = _costs()
    truth = truth - truth.mean(axis=1, keepdims=True)  # costs are known against the stage's average block
    assert np.corrcoef(shown.ravel(), truth.ravel())[0, 1] > 0.6  # 90 models, each block twice per stage
    table = np.asarray(pr.load(tmp_path / "add.json").model["costs"])
    assert shown == pytest.approx(table - table.mean(axis=1, keepdims=True), abs=1e-5)
    text = ok("predict", "show", tmp_path / "add.json").stdout
    assert "block costs (ms each block adds at its stage" in text
    first = costs["blocks"][0]
    assert any(line.split() == ["0", "0", first["name"], f"{first['cost_ms']:.4f}"] for line in text.splitlines())


def test_show_block_costs_of_a_log_family(made):
    p = pr.load(made / "p.json")
    assert p.model["space"] == "log"
    doc = json.loads(ok("predict", "show", made / "p.json", "--json").stdout)
    blocks = doc["block_costs"]["blocks"]
    assert len(blocks) == 135 and all((c["factor"] > 1) == (c["cost_ms"] > 0) for c in blocks)
    # the cost in ms is what the block's factor adds to the models that hold it, on average
    y = p.predict().latency_ms
    stage0 = all_blocks()[:, 0] == 7
    factor = blocks[7]["factor"]
    assert blocks[7]["cost_ms"] == pytest.approx(np.mean(y[stage0] * (1 - 1 / factor)), rel=1e-3)
    text = ok("predict", "show", made / "p.json").stdout
    assert "factor each block multiplies latency by" in text
    assert sum(1 for line in text.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])) == 135


# -- B: predict fit prints the test-retest floor ---------------------------------------------
def test_fit_prints_the_retest_floor(made, tmp_path):
    doc = json.loads(ok("predict", "fit", made / "runs", "--out", tmp_path / "p.json", "--json").stdout)
    floor = doc["cv"]["retest"]
    assert floor["models"] == 20 and floor["pairs"] == 20
    data = pr.load_measurements([made / "runs"])
    x = np.array([v["c1"] for v in data.repeats.values()])
    y = np.array([v["c2"] for v in data.repeats.values()])
    both = pr.accuracy(np.r_[x, y], np.r_[y, x])
    assert floor["spearman"] == both["spearman"] and floor["mape_pct"] == both["mape_pct"]
    assert floor["mape_pct"] == pytest.approx(100 * np.mean(np.abs(np.r_[y / x, x / y] - 1)), abs=1e-3)
    assert pr.load(tmp_path / "p.json").cv["retest"] == floor  # the file keeps it
    text = ok("predict", "fit", made / "runs", "--out", tmp_path / "q.json").stdout
    line = next(line for line in text.splitlines() if line.startswith("retest floor"))
    assert f"spearman {floor['spearman']}, mape_pct {floor['mape_pct']}" in line and "20 models" in line
    assert "cv additive-log" in text  # beside the cross-validated figures
    assert f"retest floor       spearman {floor['spearman']}" in ok("predict", "show", tmp_path / "q.json").stdout


def test_fit_without_repeats_says_the_floor_is_unknown(made, tmp_path):
    text = ok("predict", "fit", made / "one", "--out", tmp_path / "p.json").stdout
    assert "retest floor       unknown: 0 models measured in two or more campaigns" in text
    assert pr.load(tmp_path / "p.json").cv["retest"] == {"models": 0}


# -- B: predict pieces fit gives no zero-width interval --------------------------------------
def _whole(folder: Path, pieces: Path, n: int) -> Path:
    lat = {k: v["latency_ms"] for k, v in json.loads(pieces.read_text())["pieces"].items()}
    idx = np.random.default_rng(4).choice(91125, n, replace=False)
    b = all_blocks()[idx].astype(int)
    fixed = lat["stem"] + lat["head"] + sum(lat[f"reduction/{s}"] for s in range(3))
    y = 0.3 + 0.9 * (fixed + sum(np.array([lat[f"cell/{s}/{x}"] for x in b[:, s]]) for s in range(3)))
    return _journal(folder, idx, y * np.random.default_rng(5).lognormal(0.0, 0.02, n))


def test_pieces_fit_without_whole_models_refuses(tmp_path):
    pieces = _pieces_doc(tmp_path / "pieces.json")
    res = run("predict", "pieces", "fit", pieces, "--out", tmp_path / "p.json")
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "needs at least 3 whole models of 'cpu'" in res.output and "--whole" in res.output
    assert "interval" not in res.stdout and not (tmp_path / "p.json").exists()
    res = run("predict", "pieces", "fit", pieces, "--whole", _whole(tmp_path / "two", pieces, 2),
              "--out", tmp_path / "p.json")
    assert res.exit_code == 2 and "and got 2" in res.output and not (tmp_path / "p.json").exists()


def test_pieces_fit_with_whole_models_gives_an_interval(tmp_path):
    pieces = _pieces_doc(tmp_path / "pieces.json")
    whole = _whole(tmp_path / "whole", pieces, 8)
    text = ok("predict", "pieces", "fit", pieces, "--whole", whole, "--out", tmp_path / "p.json").stdout
    lo, hi = pr.load(tmp_path / "p.json").interval_factors(0.9)
    assert lo < 1.0 < hi and f"x{lo:.3f} .. x{hi:.3f}" in text and "x1.000 .. x1.000" not in text
    doc = json.loads(ok("predict", "pieces", "fit", pieces, "--whole", whole, "--out", tmp_path / "q.json",
                        "--json").stdout)
    assert doc["method"] == "pieces" and doc["training"]["models"] == 8 and doc["out"] == str(tmp_path / "q.json")


# -- B: predict transfer says whether it used the prior, and why -----------------------------
def _prior_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("prior "))


def test_transfer_says_it_used_the_prior_and_why(made, tmp_path):
    text = ok("predict", "transfer", made / "p.json", made / "int8", "--out", tmp_path / "t.json").stdout
    t = pr.load(tmp_path / "t.json")
    decision = t.cv["decision"]
    assert decision["prior_used"] is True and t.provenance["prior_used"] is True
    mine, alone = t.cv["families"]["transfer"], t.cv["families"]["structured"]
    assert decision["compared"]["transfer"]["rmse_log"] == mine["rmse_log"] < alone["rmse_log"]
    line = _prior_line(text)
    assert line.split(None, 1)[1].startswith("used: the prior's transfer cross-validated better")
    assert f"rmse_log {mine['rmse_log']} with the prior vs {alone['rmse_log']} alone" in line
    assert "cv structured" in text and "cv transfer" in text  # both sides of the comparison are printed


def test_transfer_says_it_dropped_the_prior_and_why(made, tmp_path):
    few = np.random.default_rng(8).choice(91125, 300, replace=False)  # a device the prior knows nothing of
    _journal(tmp_path / "other", few, _latency(few, seed=7) * np.random.default_rng(9).lognormal(0.0, 0.01, 300),
             device="cpu-int8", precision="int8")
    text = ok("predict", "transfer", made / "p.json", tmp_path / "other", "--out", tmp_path / "t.json").stdout
    t = pr.load(tmp_path / "t.json")
    assert t.cv["decision"]["prior_used"] is False and t.provenance["prior_used"] is False
    line = _prior_line(text)
    assert line.split(None, 1)[1].startswith("not used: a structured fit of the samples alone cross-validated better")
    assert f"rmse_log {t.cv['families']['transfer']['rmse_log']} with the prior" in line
    doc = json.loads(ok("predict", "transfer", made / "p.json", tmp_path / "other", "--out", tmp_path / "u.json",
                        "--json").stdout)
    assert doc["cv"]["decision"] == t.cv["decision"]


def test_transfer_with_few_samples_says_no_comparison_was_made(made, tmp_path):
    idx = np.array(pr.plan_balanced(90, seed=3))[:20]
    _journal(tmp_path / "few", idx, 1.5 * _latency(idx), device="cpu-int8", precision="int8")
    text = ok("predict", "transfer", made / "p.json", tmp_path / "few", "--out", tmp_path / "t.json").stdout
    assert _prior_line(text).split(None, 1)[1] == (
        "used: 20 samples, fewer than the 40 from which a structured fit of the samples alone is tried")
