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
