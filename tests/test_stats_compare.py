"""``compare`` and ``stats`` as pyperf users expect them (issue 25): changes in pyperf's words,
three significant digits, ``compare --plot``, and ``stats MODEL`` with numbers equal to
numpy's on the samples and to the harness's standard error.

Data: synthetic journals (:func:`blox_lat.dataset._synthetic.write_journal`, the format
``blox-lat measure`` writes) with one model slowed and one sped up in B, and the committed
cpu-a campaign (anchored, several records per model) for levels and anchors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.dataset._synthetic import write_journal
from blox_lat.report._compare import change_text
from blox_lat.report._stats import sig3

MODELS = tuple(range(10))
SLOWER, FASTER = 3, 5  # B's model 3 takes 1.2x as long, model 5 0.8x
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")


def _scale(folder: Path, factors: dict[int, float]) -> None:
    lines = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    for line in lines:
        f = factors.get(line.get("model_index"))
        if line["kind"] == "measurement" and f is not None:
            m = line["measurement"]
            for key in ("latency_ms", "median_ms", "mean_ms", "min_ms", "std_ms", "iqr_ms"):
                m[key] *= f
            m["group_means_ms"] = [v * f for v in m["group_means_ms"]]
            m["samples_ms"] = [v * f for v in m["samples_ms"]]
    (folder / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pyperf")
    write_journal(root / "a", "cpu", MODELS, samples=100, rng_seed=0)
    write_journal(root / "b", "cpu", MODELS, samples=100, rng_seed=1)
    _scale(root / "b", {SLOWER: 1.2, FASTER: 0.8})
    return root / "a", root / "b"


def _significant_digits(token: str) -> int:
    return len(token.lstrip("-").replace(".", "").lstrip("0"))


def _three_digits(text: str) -> list[str]:
    """Every decimal number in ``text`` that does not have exactly three significant digits."""
    return [t for t in NUMBER.findall(text) if _significant_digits(t) != 3]


# -- compare in pyperf's words --------------------------------------------------------------------


def test_change_text_reads_like_pyperf():
    assert change_text(1.1) == "1.10x slower (+10.0 %)"
    assert change_text(1 / 1.05) == "1.05x faster (-4.76 %)"
    assert change_text(0.8) == "1.25x faster (-20.0 %)"
    assert change_text(1.0) == "no change"
    assert [sig3(v) for v in (1.1, 0.0123456, 9.996, 123.4, 12345, 2.3471591875)] == [
        "1.10", "0.0123", "10.0", "123", "12300", "2.35"]


def test_compare_text_has_a_pyperf_line_per_model_and_overall(pair):
    a, b = pair
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), "--all"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert re.search(rf"^model {SLOWER} \([0-9a-f]{{12}}\): \S+ ms \+- \S+ ms -> \S+ ms \+- \S+ ms: "
                     r"1\.20x slower \(\+\d\d\.\d %\); CI \S+ to \S+$", out, re.M), out
    assert re.search(rf"^model {FASTER} \(.*: 1\.25x faster \(-\d\d\.\d %\); CI", out, re.M), out
    assert len(re.findall(r": not significant; CI ", out)) == len(MODELS) - 2, out
    assert re.search(r"^Geometric mean: 1\.\d\dx (slower|faster) \([+-]\d\.\d\d+ %\)$", out, re.M), out
    assert "raw latency" in out.splitlines()[2]  # the headline names the kind compared
    assert _three_digits(out) == [], out  # ratios used to print with six decimals, latencies four


def test_compare_markdown_and_json_agree_with_the_text(pair):
    a, b = pair
    md = CliRunner().invoke(cli, ["compare", str(a), str(b), "--markdown", "--all"])
    assert md.exit_code == 0, md.output
    assert "| change |" in md.output and "| 1.20x slower (+" in md.output and "| not significant |" in md.output
    assert _three_digits(md.output) == [], md.output
    js = json.loads(CliRunner().invoke(cli, ["compare", str(a), str(b), "--json"]).output)
    assert {r["model_index"]: r["change"] for r in js["rows"]} == {
        SLOWER: change_text(next(r["ratio"] for r in js["rows"] if r["model_index"] == SLOWER)),
        FASTER: change_text(next(r["ratio"] for r in js["rows"] if r["model_index"] == FASTER))}
    assert js["overall"].startswith("Geometric mean: ")
    assert _significant_digits(str(js["rows"][0]["ratio"])) > 3  # JSON keeps its precision


# -- compare --plot ---------------------------------------------------------------------------------


def test_compare_plot_writes_a_real_png_and_svg(pair, tmp_path):
    a, b = pair
    png, svg = tmp_path / "cmp.png", tmp_path / "cmp.svg"
    for path in (png, svg):
        res = CliRunner().invoke(cli, ["compare", str(a), str(b), "--plot", str(path)])
        assert res.exit_code == 0, res.output
        assert f"plot: {path}" in res.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 500 and height > 300
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 10_000
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, none left


def test_compare_figure_names_both_sources_and_the_kind(pair):
    from blox_lat import report as rp
    from blox_lat.report._figures import _VERDICT_COLOURS, compare_figure

    a, b = pair
    c = rp.compare(str(a), str(b))
    fig = compare_figure(c)
    ax = fig.axes[0]
    title = ax.get_title()
    assert "b" in title and "a" in title and "raw latency" in title and "95% simultaneous" in title
    labels = ax.get_legend_handles_labels()[1]
    assert "slower (1)" in labels and "faster (1)" in labels and f"not significant ({len(MODELS) - 2})" in labels
    assert _VERDICT_COLOURS["slower"] != _VERDICT_COLOURS["faster"]


def test_compare_imports_matplotlib_only_for_plot(pair, tmp_path):
    a, b = pair
    code = ("import sys\nfrom click.testing import CliRunner\nfrom blox_lat.cli.main import cli\n"
            "r = CliRunner().invoke(cli, sys.argv[1:])\nassert r.exit_code == 0, r.output\n"
            "print('matplotlib' in sys.modules)")
    for extra, expected in (([], "False"), (["--plot", str(tmp_path / "p.png")], "True")):
        proc = subprocess.run([sys.executable, "-c", code, "compare", str(a), str(b), *extra],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("name, words", [("cmp.pdf", ".png or .svg"), ("missing/cmp.png", "does not exist")])
def test_compare_plot_bad_file_is_one_line_exit_2(pair, tmp_path, name, words):
    a, b = pair
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), "--plot", str(tmp_path / name)])
    assert res.exit_code == 2 and words in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / name).exists()


# -- stats MODEL --from SOURCE ----------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "predictor"
ANCHORED = 17262  # a cpu-a model timed with anchors, three attempts


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """Synthetic: models 0..9 (model 8 failed), and model 3 journaled twice (the later one stands)."""
    root = tmp_path_factory.mktemp("stats") / "camp"
    write_journal(root, "cpu", MODELS, samples=100, rng_seed=0, fail=(8,))
    lines = [json.loads(line) for line in (root / "journal.jsonl").read_text().splitlines()]
    again = json.loads(json.dumps(next(r for r in lines if r.get("model_index") == 3)))
    again["recorded_at"] = "2026-01-01T01:00:00+00:00"
    m = again["measurement"]
    m["samples_ms"] = [v * 1.5 for v in m["samples_ms"]]
    m["group_means_ms"] = [v * 1.5 for v in m["group_means_ms"]]
    m["latency_ms"] *= 1.5
    with open(root / "journal.jsonl", "a") as fh:
        fh.write(json.dumps(again) + "\n")
    return root


@pytest.fixture(scope="module")
def cpu_a(tmp_path_factory) -> Path:
    import gzip

    folder = tmp_path_factory.mktemp("anchored") / "cpu-a"
    folder.mkdir()
    (folder / "journal.jsonl").write_bytes(gzip.decompress((DATA / "cpu-a.journal.jsonl.gz").read_bytes()))
    return folder


def _stats(*args: str) -> dict:
    res = CliRunner().invoke(cli, ["stats", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _standing(folder: Path, index: int):
    from blox_lat.harness import read_records, stand
    from blox_lat.space import space_table

    standings = stand(read_records(folder / "journal.jsonl"))
    return standings, standings.of("cpu")[space_table().hashes[index]]


def test_stats_numbers_are_numpys_and_the_harness_standard_error(campaign):
    import numpy as np

    from blox_lat.harness import trimmed_mean_se

    data = _stats("3", "--from", str(campaign))
    _, standing = _standing(campaign, 3)
    m = standing.record.measurement
    samples = np.asarray(m.samples_ms)
    assert data["record"]["records"] == 2 and data["record"]["recorded_at"] == "2026-01-01T01:00:00+00:00"
    assert data["samples_ms"] == samples.tolist() and samples.mean() > 1.5 * 4  # the later record stands
    s = data["samples"]
    p5, p25, p50, p75, p95 = np.percentile(samples, [5, 25, 50, 75, 95])
    assert s["n"] == samples.size == 100
    assert (s["min_ms"], s["p5_ms"], s["p25_ms"], s["median_ms"], s["p75_ms"], s["p95_ms"], s["max_ms"]) == (
        samples.min(), p5, p25, p50, p75, p95, samples.max())
    assert s["mean_ms"] == pytest.approx(samples.mean(), rel=1e-12)
    assert s["std_ms"] == pytest.approx(samples.std(), rel=1e-12)  # population, as the harness's std_ms
    assert data["latency_ms"] == m.latency_ms and data["group_means_ms"] == list(m.group_means_ms)
    assert data["se_ms"] == m.se_ms == standing.se_ms == trimmed_mean_se(m.group_means_ms) and m.se_ms > 0
    low, high = data["ci95_ms"]
    assert (low + high) / 2 == pytest.approx(m.latency_ms) and (high - low) / 2 == pytest.approx(1.959964 * m.se_ms)
    counts, edges = np.histogram(samples, bins=20)
    assert [b["count"] for b in data["histogram"]] == counts.tolist()
    assert [b["low_ms"] for b in data["histogram"]] == edges[:-1].tolist()
    assert data["level"] is None and data["latency_corrected_ms"] is None


def test_stats_json_shape(campaign):
    data = _stats("3", "--from", str(campaign))
    assert set(data) == {"source", "source_kind", "device", "model_index", "model_hash", "status", "reason", "record",
                         "protocol", "samples", "latency_ms", "se_ms", "ci95_ms", "groups", "runs_per_group",
                         "group_means_ms", "cv", "group_cv", "noisy", "flags", "level", "latency_corrected_ms",
                         "latency_corrected_se_ms", "level_reference", "histogram", "samples_ms"}
    assert set(data["samples"]) == {"n", "min_ms", "p5_ms", "p25_ms", "median_ms", "p75_ms", "p95_ms", "max_ms",
                                    "mean_ms", "std_ms", "cv"}
    assert data["source_kind"] == "campaign" and data["device"] == "cpu" and data["groups"] == 10
    assert set(data["record"]) == {"recorded_at", "campaign_id", "attempts", "records", "origin"}
    assert data["record"]["origin"].endswith("journal.jsonl:12")  # the appended line


def test_stats_text_is_pyperf_like(campaign):
    import numpy as np

    res = CliRunner().invoke(cli, ["stats", "3", "--from", str(campaign)])
    assert res.exit_code == 0, res.output
    data = _stats("3", "--from", str(campaign))
    out = res.output
    assert f"  median {sig3(data['samples']['median_ms'])} ms" in out
    assert f"  latency {sig3(data['latency_ms'])} ms +- {sig3(data['se_ms'])} ms (standard error)" in out
    hist = out.split("histogram of the 100 samples:\n", 1)[1].splitlines()
    assert len(hist) == 20
    counts = [int(re.match(r"\s*\S+ ms:\s+(\d+)", line).group(1)) for line in hist]
    assert counts == np.histogram(data["samples_ms"], bins=20)[0].tolist()
    top = max(counts)
    assert all(line.count("#") == round(40 * c / top) for line, c in zip(hist, counts))
    body = out.split("\nsamples:", 1)[1].split("histogram of", 1)[0]
    assert _three_digits(body) == [], body


def test_stats_from_a_release_equals_the_campaign(campaign, tmp_path):
    import blox_lat.dataset as ds

    ds.build([str(campaign)], tmp_path / "rel", "1.0.0", static=False)
    from_release, from_journal = _stats("3", "--from", str(tmp_path / "rel")), _stats("3", "--from", str(campaign))
    assert from_release["source_kind"] == "release"
    for key in ("samples", "latency_ms", "se_ms", "ci95_ms", "group_means_ms", "histogram", "samples_ms", "model_hash"):
        assert from_release[key] == pytest.approx(from_journal[key]) if key in ("se_ms", "ci95_ms") else (
            from_release[key] == from_journal[key]), key
    ds.build([str(campaign)], tmp_path / "no-raw", "1.0.0", static=False, raw=False)
    res = CliRunner().invoke(cli, ["stats", "3", "--from", str(tmp_path / "no-raw")])
    assert res.exit_code == 2 and "bench-raw/cpu" in res.output and len(res.output.strip().splitlines()) == 1


def test_stats_anchored_model_has_its_level_and_corrected_latency(cpu_a):
    standings, standing = _standing(cpu_a, ANCHORED)
    data = _stats(str(ANCHORED), "--from", str(cpu_a))
    assert data["level"] == standing.level and data["latency_corrected_ms"] == standing.corrected_ms
    assert data["latency_corrected_se_ms"] == standing.corrected_se_ms and data["se_ms"] == standing.se_ms
    assert data["level_reference"] == standings.references["cpu"].campaign_id
    text = CliRunner().invoke(cli, ["stats", str(ANCHORED), "--from", str(cpu_a)]).output
    assert f"level {sig3(standing.level)} (on the reference of campaign" in text
    assert f"level-corrected latency {sig3(standing.corrected_ms)} ms" in text


def test_stats_anchors_shows_every_anchor_run_and_its_level(cpu_a):
    import numpy as np

    from blox_lat.harness import AnchorsRecord, read_records

    lines = sorted((r for r in read_records(cpu_a / "journal.jsonl") if isinstance(r, AnchorsRecord)),
                   key=lambda r: r.recorded_at)
    data = _stats("--anchors", "--from", str(cpu_a))
    assert len(data["runs"]) == len(lines) > 10
    assert [a["model_hash"] for a in data["anchors"]] == lines[0].hashes
    for i, a in enumerate(data["anchors"]):
        latencies = [r.latencies_ms[i] for r in lines]
        assert a["latencies_ms"] == latencies and a["latency"]["median_ms"] == np.median(latencies)
    levels = [r.level for r in lines]  # one campaign: its own reference, factor 1
    assert [r["level"] for r in data["runs"]] == pytest.approx(levels)
    assert data["levels"]["median"] == pytest.approx(np.median(levels)) and data["levels"]["n"] == len(lines)
    one = _stats("--anchors", str(lines[0].anchors[1]["model_index"]), "--from", str(cpu_a))
    assert [a["model_hash"] for a in one["anchors"]] == [lines[0].hashes[1]]
    res = CliRunner().invoke(cli, ["stats", "--anchors", "3", "--from", str(cpu_a)])
    assert res.exit_code == 2 and "is not an anchor" in res.output


def test_stats_failed_model_shows_its_reason(campaign):
    data = _stats("8", "--from", str(campaign))
    assert data["status"] == "failed" and data["reason"] == "synthetic failure" and data["samples"]["n"] == 0
    text = CliRunner().invoke(cli, ["stats", "8", "--from", str(campaign)]).output
    assert "standing record: failed (synthetic failure)" in text


@pytest.mark.parametrize("args, words", [
    (["stats", "not-a-model", "--from", "{c}"], "does not name a model"),
    (["stats", "91125", "--from", "{c}"], "91125"),
    (["stats", "42", "--from", "{c}"], "it has 10 models (indices 0, 1, 2, 3, 4, ...)"),
    (["stats", "3", "--from", "{c}", "--device", "gpu"], "has no device 'gpu'; it has: cpu"),
    (["stats", "--from", "{c}"], "give a MODEL"),
    (["stats", "--anchors", "--from", "{c}"], "no anchor runs"),
    (["stats", "3", "--from", "{c}/nowhere"], "does not exist"),
])
def test_stats_bad_input_is_one_line_exit_2(campaign, args, words):
    res = CliRunner().invoke(cli, [a.replace("{c}", str(campaign)) for a in args])
    assert res.exit_code == 2, res.output
    assert words in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert res.output.startswith("blox-lat: error: ")


def test_stats_is_a_registered_command_run_by_the_console_script(campaign):
    from blox_lat.cli.main import COMMANDS

    assert COMMANDS["stats"] == "blox_lat.cli.report:stats"
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert re.search(r"^\s+stats\s+One model's measurement", listing, re.M), listing
    proc = subprocess.run([sys.executable, "-m", "blox_lat", "stats", "42", "--from", str(campaign)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"blox-lat: error: {campaign} has no record of model 42 ({_hash(42)[:12]}) on cpu; it has 10 models "
        "(indices 0, 1, 2, 3, 4, ...)"]


def _hash(index: int) -> str:
    from blox_lat.space import space_table

    return space_table().hashes[index]
