"""One truth from journal to every output (issue 22): ``report`` and ``compare`` read campaigns
through the harness's reader and rule, compare like with like (one latency kind, one level
reference) and say which kind they show.

Data: the committed cpu-a / cpu-b campaigns (same code, same host; 256 models in both),
decompressed into campaign folders."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import blox_lat.dataset as ds
from blox_lat import report as rp
from blox_lat.cli.main import cli

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "predictor"
SLOWED_COUNT = 10
SLOWDOWN = 1.1


def _unpack(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "journal.jsonl").write_bytes(gzip.decompress((DATA / f"{name}.journal.jsonl.gz").read_bytes()))
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("one-truth")
    return _unpack("cpu-a", root / "cpu-a"), _unpack("cpu-b", root / "cpu-b")


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines() if line.strip()]


def _write(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _flagged(result) -> set[int]:
    return {int(i) for i, c in zip(result.index, result.classification) if c in ("slower", "faster")}


def test_compare_of_two_runs_of_the_same_code_flags_at_most_one_percent(pair):
    """Before: 124 of 256 unchanged models called changed (raw latencies, one set's group means)."""
    a, b = pair
    result = rp.compare(str(a), str(b), latency="corrected")
    assert result.models == 256 and result.latency == "corrected"
    assert len(_flagged(result)) <= 0.01 * result.models, result.headline()
    assert result.level_reference is not None  # both campaigns on one level reference
    assert "unchanged (95% simultaneous, level-corrected latency)" in result.headline()


def test_compare_finds_injected_ten_percent_slowdowns(pair, tmp_path):
    a, b = pair
    records = _lines(b)
    models = sorted({r["model_hash"] for r in records if r["kind"] == "measurement" and r["status"] == "ok"})
    slowed = set(models[::len(models) // SLOWED_COUNT][:SLOWED_COUNT])
    for r in records:
        if r["kind"] == "measurement" and r["model_hash"] in slowed and r["status"] == "ok":
            m = r["measurement"]
            m["latency_ms"] *= SLOWDOWN
            m["group_means_ms"] = [v * SLOWDOWN for v in m["group_means_ms"]]
            m["samples_ms"] = [v * SLOWDOWN for v in m["samples_ms"]]
            if r.get("latency_corrected_ms") is not None:
                r["latency_corrected_ms"] *= SLOWDOWN
    slow_b = _write(tmp_path / "cpu-b-slow", records)
    result = rp.compare(str(a), str(slow_b), latency="corrected")
    indices = {int(r["model_index"]) for r in records if r.get("model_hash") in slowed}
    slower = {int(i) for i, c in zip(result.index, result.classification) if c == "slower"}
    assert len(slower & indices) >= SLOWED_COUNT - 1, result.headline()
    assert len(_flagged(result) - indices) <= 2, result.headline()


def test_compare_json_and_text_name_the_kind(pair):
    a, b = pair
    runner = CliRunner()
    for kind in ("raw", "corrected"):
        res = runner.invoke(cli, ["compare", str(a), str(b), "--latency", kind, "--json", "--all"])
        assert res.exit_code == 0, res.output
        data = json.loads(res.output)
        assert data["latency"] == kind and all(row["latency"] == kind for row in data["rows"])
        assert data["counts_per_model"] and all("ci95_low" in row for row in data["rows"])
    auto = json.loads(runner.invoke(cli, ["compare", str(a), str(b), "--json"]).output)
    assert auto["latency"] == "corrected"  # every model of both has a corrected latency
    text = runner.invoke(cli, ["compare", str(a), str(b)])
    assert text.exit_code == 0 and "comparing the level-corrected latency" in text.output
    assert re.search(r"\d+ slower, \d+ faster, \d+ unchanged \(95% simultaneous, level-corrected latency\); "
                     r"geometric mean ratio \d\.\d\dx", text.output), text.output


def test_report_json_and_page_name_the_kind(pair, tmp_path):
    a, _b = pair
    for kind in ("raw", "corrected"):
        out = tmp_path / kind
        res = CliRunner().invoke(cli, ["report", str(a), "--out", str(out), "--latency", kind])
        assert res.exit_code == 0, res.output
        doc = json.loads((out / "report.json").read_text())
        assert doc["latency"] == {"cpu": kind}
        assert doc["parts"]["distribution"]["numbers"]["devices"][0]["latency"] == kind
        assert doc["parts"]["block-costs"]["numbers"]["fits"]["cpu"]["latency"] == kind
        label = {"raw": "raw latency", "corrected": "level-corrected latency"}[kind]
        page = (out / "report.html").read_text()
        assert f"Models per device ({label} in ms)" in page and f"Additive fit {label}" in page


def test_a_release_report_shows_anchor_levels_from_its_columns(pair, tmp_path):
    """Before: 'no anchor data' although bench/cpu holds level and latency_corrected_ms."""
    _a, b = pair
    release = ds.build([b], tmp_path / "rel", "1.0.0", static=False).path
    data = rp.load_source(release).devices["cpu"]
    assert data.anchor_levels is not None and len(data.anchor_levels) >= 2
    assert data.latency_kind_for("auto") == "corrected"
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["report", str(release), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "report.json").read_text())
    assert "anchor-level-cpu" in doc["parts"]["noise"]["figures"]
    assert not any("no anchor data" in n for n in doc["parts"]["noise"]["notes"])
    assert doc["latency"] == {"cpu": "corrected"}


def test_the_predictions_figure_compares_like_with_like_and_reports_held_out_accuracy(pair, tmp_path):
    from blox_lat import predict as pr

    a, b = pair
    predictor = pr.fit(pr.load_measurements([b]), allow_uncovered=True)  # trained on cpu-b's 256 models
    name, table, meta = pr.pred_section(predictor.save(tmp_path / "cpu.predictor.json"))
    release = ds.build([a, b], tmp_path / "rel", "1.0.0", static=False, predictions=[(name, table, meta)]).path
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["report", str(release), "--out", str(out)])
    assert res.exit_code == 0, res.output
    numbers = json.loads((out / "report.json").read_text())["parts"]["predictions"]["numbers"]["cpu"]
    assert numbers["latency"] == predictor.latency == "corrected"
    assert numbers["trained_on"] == 256 and numbers["held_out_measured"]["models"] == numbers["models"] - 256 > 0
    chosen = predictor.cv["families"][predictor.cv["chosen"]]
    assert numbers["cross_validated"]["mape_pct"] == pytest.approx(chosen["mape_pct"])
    assert numbers["within_10pct"] == pytest.approx(chosen["within10_pct"] / 100)  # held out, not in-sample


def _broken(pair_b: Path, tmp: Path, value) -> tuple[Path, int]:
    records = _lines(pair_b)
    line = next(n for n, r in enumerate(records) if r["kind"] == "measurement" and r["status"] == "ok")
    records[line]["measurement"]["latency_ms"] = value
    folder = tmp / f"bad-{value}"
    folder.mkdir(parents=True)
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder, line + 1


@pytest.mark.parametrize("value", [float("nan"), 0.0, -1.0])
def test_a_bad_latency_is_refused_by_report_and_compare_naming_file_and_line(pair, tmp_path, value):
    a, b = pair
    bad, line = _broken(b, tmp_path, value)
    where = f"{bad / 'journal.jsonl'}:{line}"
    for args in (["report", str(bad), "--out", str(tmp_path / "r")], ["compare", str(a), str(bad)],
                 ["compare", str(bad), str(a)]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert where in res.output and res.output.startswith("blox-lat: error: "), res.output
        assert not (tmp_path / "r").exists()
