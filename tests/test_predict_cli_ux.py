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


def _journal(folder: Path, idx, lat, *, device="cpu", campaign="c1", precision="fp32", day: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    profile = {"name": device, "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
               "input_size": 32, "precision": precision, "options": {"threads": 1}}
    protocol = {"version": 1, "groups": 100, "runs_per_group": 10, "warmup_min_runs": 10, "warmup_min_s": 0.5}
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
