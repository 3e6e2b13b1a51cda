"""Profiled block costs as a predictor's prior (``predict fit --prior-profile``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from blox_lat import predict
from blox_lat.cli.main import cli
from blox_lat.harness import TimingProtocol
from blox_lat.predict._model import evaluate
from blox_lat.profile import profile_models

CPU_A = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "predictor" / "cpu-a.journal.jsonl.gz"
FAST = TimingProtocol(groups=2, runs_per_group=5, warmup_min_runs=3, warmup_min_s=0.0)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    folder = tmp_path_factory.mktemp("profiles")
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    summary = profile_models(["0", "1", "73948", "24519"], "cpu", out=folder, runs=8, protocol=FAST, store=store)
    assert all(r.ok for r in summary.records)
    return folder, summary.records


def test_the_prior_is_the_profiled_cells_and_reproduces_their_latencies(profiles):
    folder, records = profiles
    prior = predict.profile_prior(folder)
    assert prior.device == "cpu (profile)" and prior.method == "profile"
    costs = np.asarray(prior.model["costs"])
    for rec in records:
        arch_blocks = [int(b.piece.split("/")[2]) for b in rec.blocks if b.piece.startswith("cell/")]
        for stage, block in enumerate(arch_blocks):
            cell = next(b.ms for b in rec.blocks if b.piece == f"cell/{stage}/{block}")
            held = [r for r in records if any(b.piece == f"cell/{stage}/{block}" for b in r.blocks)]
            if len(held) == 1:
                assert costs[stage, block] == pytest.approx(cell)
    blocks = np.array([[int(b.piece.split("/")[2]) for b in r.blocks if b.piece.startswith("cell/")] for r in records])
    assert np.mean(evaluate(prior.model, blocks)) == pytest.approx(np.mean([r.latency_ms for r in records]), rel=1e-6)
    assert prior.training["uncovered_pairs"] == 135 - len({(s, b) for row in blocks for s, b in enumerate(row)})


def test_predict_fit_with_a_profile_prior(profiles, tmp_path):
    folder, _ = profiles
    out = tmp_path / "cpu.predictor.json"
    r = CliRunner().invoke(cli, ["predict", "fit", str(CPU_A), "--device", "cpu", "--prior-profile", str(folder),
                                 "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    saved = json.loads(out.read_text())
    assert saved["method"] == "transfer" and saved["provenance"]["prior"]["device"] == "cpu (profile)"
    assert "prior-unchanged" in saved["cv"]["families"] and "decision" in saved["cv"]
    p = predict.load(out)
    assert p.predict([0, 24519]).latency_ms.shape == (2,)


def test_a_folder_without_profiles_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["predict", "fit", str(CPU_A), "--device", "cpu", "--prior-profile",
                                 str(tmp_path / "empty"), "--out", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "profile some models first" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.json").exists()
