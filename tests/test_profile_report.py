"""The report's per-layer profile figures (blox-lat report ... --profile DIR)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.harness import TimingProtocol
from blox_lat.profile import profile_models

CPU_A = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "predictor" / "cpu-a.journal.jsonl.gz"
FAST = TimingProtocol(groups=2, runs_per_group=5, warmup_min_runs=3, warmup_min_s=0.0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    campaign = tmp_path_factory.mktemp("campaign")
    (campaign / "journal.jsonl").write_bytes(gzip.decompress(CPU_A.read_bytes()))  # ~1,000 real cpu models
    folder = tmp_path_factory.mktemp("profiles")
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    profile_models(["0", "1", "73948", "24519", "5000"], "cpu", out=folder, runs=8, protocol=FAST, store=store)
    return campaign, folder


def test_report_shows_block_bars_and_profiled_against_fitted_costs(sources, tmp_path):
    campaign, profiles = sources
    out = tmp_path / "report"
    r = CliRunner().invoke(cli, ["report", str(campaign), "--profile", str(profiles), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "report.json").read_text())
    part = doc["parts"]["profiles"]
    assert part["figures"] == ["profile-blocks-cpu", "profile-vs-fit-cpu"]
    numbers = part["numbers"]["profiles"]["cpu"]
    assert numbers["models"] == 5 and numbers["fitted_on"] > 900
    assert -1 <= numbers["spearman"] <= 1
    for name in part["figures"]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000
    assert "Per-layer profiles" in (out / "report.html").read_text()


def test_a_profile_of_a_device_without_campaign_gets_bars_and_a_note(sources, tmp_path):
    _, profiles = sources
    other = tmp_path / "c"
    other.mkdir()
    lines = gzip.decompress(CPU_A.read_bytes()).decode().splitlines()
    (other / "journal.jsonl").write_text("\n".join(ln.replace('"device":"cpu"', '"device":"cpu-x"') for ln in lines) + "\n")
    r = CliRunner().invoke(cli, ["report", str(other), "--profile", str(profiles), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    part = json.loads((tmp_path / "r" / "report.json").read_text())["parts"]["profiles"]
    assert part["figures"] == ["profile-blocks-cpu"] and "no campaign of this device" in part["notes"][0]


def test_a_damaged_profiles_file_is_one_line_exit_2(sources, tmp_path):
    campaign, _ = sources
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "profiles.jsonl").write_text("{nope\n")
    r = CliRunner().invoke(cli, ["report", str(campaign), "--profile", str(bad), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "profiles.jsonl:1" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r").exists()
