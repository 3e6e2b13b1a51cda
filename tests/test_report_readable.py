"""Figures and a page a person reads (issue 25): a report of the committed real CPU campaigns
(``benchmarks/data/predictor/cpu-a`` and ``cpu-b``), laid out by headless chromium at 1280 px,
checked from its DOM and from the matplotlib figures the report draws: no table wider than its
container, every figure titled with its device and source, long hash lists collapsed, heat-map
labels of at least 9 pt as displayed and values in their cells, integer count ticks, noise
series told apart, and a distribution that does not hide the smaller campaign."""

from __future__ import annotations

import colorsys
import gzip
import html
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from blox_lat import report as rp
from blox_lat.report import _figures as F
from blox_lat.report._build import ReportBuilder, _safe
from blox_lat.report._sources import load_sources

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "predictor"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280  # the window a practitioner read the page in
MIN_PT = 9.0  # smallest legible label, in points as displayed (CSS: 96 px per inch)
LONG = 10  # rows: a longer list is collapsed


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("real")
    out = []
    for name in ("cpu-a", "cpu-b"):
        (root / name).mkdir()
        with gzip.open(DATA / f"{name}.journal.jsonl.gz", "rb") as fi, open(root / name / "journal.jsonl", "wb") as fo:
            shutil.copyfileobj(fi, fo)
        out.append(root / name)
    return out


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "rep"
    rp.build_report(sources, out, jobs=1)
    return out


@pytest.fixture(scope="module")
def builder(sources) -> ReportBuilder:
    return ReportBuilder(load_sources(sources))


@pytest.fixture(scope="module")
def figures(builder) -> dict:
    return {name: fig for part in builder.parts() for name, fig, _caption in part.figures}


_PROBE = """<script>
window.addEventListener('load', () => {
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.parentElement, style = getComputedStyle(box);
    return {caption: (t.caption || {}).textContent || '', width: t.offsetWidth, room: box.clientWidth,
            scrolls: ['auto', 'scroll'].includes(style.overflowX)};
  });
  const imgs = [...document.querySelectorAll('figure img')].map(i => ({id: i.parentElement.id,
    shown: i.clientWidth, natural: i.naturalWidth}));
  document.body.setAttribute('data-probe', JSON.stringify({tables, imgs, page: document.documentElement.clientWidth}));
});
</script>"""


@pytest.fixture(scope="module")
def laid_out(built, tmp_path_factory) -> dict:
    """The page as chromium lays it out in a 1280 px wide window: tables and image widths."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    tmp = tmp_path_factory.mktemp("chromium")
    probe = tmp / "probe.html"
    probe.write_text((built / "report.html").read_text().replace("</head>", _PROBE + "</head>", 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars",
             f"--window-size={WIDTH},2000", "--force-device-scale-factor=1", "--virtual-time-budget=10000", "--dump-dom"]
    res = subprocess.run([CHROMIUM, *flags, probe.as_uri()], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', res.stdout)
    assert match, res.stdout[:500]
    return json.loads(html.unescape(match.group(1)))


def _titles(fig) -> str:
    texts = [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center", "right")]
    if fig._suptitle is not None:
        texts.append(fig._suptitle.get_text())
    return " | ".join(t for t in texts if t)


def test_no_table_is_wider_than_its_container(laid_out):
    assert laid_out["page"] >= WIDTH - 20 and laid_out["tables"]
    clipped = [t["caption"] for t in laid_out["tables"] if t["width"] > t["room"] + 1 and not t["scrolls"]]
    assert clipped == []


def test_every_figure_is_titled_with_its_device_and_source(builder, figures):
    devices = builder.devices
    keys = sorted(devices, key=len, reverse=True)  # "cpu-cpu-b" before "cpu"
    for name, fig in figures.items():
        title = _titles(fig)
        if name == "block-static":  # exact, from the space: the same on every device, and says so
            assert "every device" in title, title
            continue
        if name == "latency-distribution" or name.startswith("devices-"):
            shown = list(devices)
        else:
            shown = [next(k for k in keys if name.endswith("-" + _safe(k)))]
        for key in shown:
            d = devices[key]
            assert d.device in title and Path(d.source).name in title, (name, title)


def test_long_hash_lists_are_collapsed(built):
    page = (built / "report.html").read_text()
    open_page = re.sub(r"<details>.*?</details>", "", page, flags=re.S)
    for table in re.findall(r"<table>.*?</table>", open_page, flags=re.S):
        rows, hashes = table.count("<tr>") - 1, len(re.findall(r"<code>[0-9a-f]{32}</code>", table))
        assert rows <= LONG or hashes == 0, table[:300]
    summaries = re.findall(r"<details><summary>(.*?)</summary>", page, flags=re.S)
    assert any("noisy" in s for s in summaries) and any("re-measured" in s for s in summaries), summaries
    assert all(re.search(r"\d", s) for s in summaries)  # each says how many


def test_heatmap_labels_are_legible_and_cells_carry_values(figures, laid_out):
    shown = {i["id"]: i for i in laid_out["imgs"]}
    heatmaps = {n: f for n, f in figures.items() if n.startswith("block-")}
    assert {"block-static", "block-costs-cpu", "block-costs-cpu-cpu-b"} <= set(heatmaps)
    for name, fig in heatmaps.items():
        img = shown[f"fig-{name}"]
        assert abs(img["natural"] - fig.get_figwidth() * fig.dpi) <= 1  # the PNG is this figure at its dpi
        scale = img["shown"] / img["natural"]  # the page may shrink a figure, never below 9 pt
        for ax in fig.axes:
            if not ax.images:
                continue  # a colour bar
            labels = [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
            assert labels, name
            smallest = min(t.get_fontsize() for t in labels) * fig.dpi / 96 * scale
            assert smallest >= MIN_PT, (name, smallest)
            values = np.ma.masked_invalid(ax.images[0].get_array())
            cells = [t for t in ax.texts if re.fullmatch(r"-?[\d.]+", t.get_text())]
            assert len(cells) == int(values.count()), name  # every coloured cell says its value
            assert min(t.get_fontsize() for t in cells) * fig.dpi / 96 * scale >= MIN_PT - 1, name


def test_failures_by_reason_ticks_are_integers(builder):
    d = next(iter(builder.devices.values()))
    fig = F.campaign_figure(replace(d, failed={int(d.index[0]): "timeout: no answer in 60 s"}))
    bars = fig.axes[1]
    assert "failures" in bars.get_title()
    lo, hi = bars.get_xlim()
    ticks = [t for t in bars.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_noise_series_are_told_apart(builder):
    d = next(iter(builder.devices.values()))
    assert d.noisy.any() and (d.attempts > 1).any()
    fig = F.noise_figure(d, 0.05)
    series = [line for line in fig.axes[0].lines if line.get_marker() not in (None, "None", "") and line.get_label()]
    assert len(series) == 3
    assert len({line.get_marker() for line in series}) == 3
    hues = [colorsys.rgb_to_hsv(*to_rgb(line.get_color()))[0] * 360 for line in series]
    for i in range(3):
        for j in range(i + 1, 3):
            gap = abs(hues[i] - hues[j])
            assert min(gap, 360 - gap) >= 25, hues  # not two oranges


def test_distribution_shows_each_device_as_a_share(builder, figures):
    fig = figures["latency-distribution"]
    ylabel = fig.axes[0].get_ylabel()
    assert "%" in ylabel and "count" not in ylabel, ylabel
    legend = " ".join(t.get_text() for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
                      for t in leg.get_texts())
    for d in builder.devices.values():
        assert f"{d.count} ok" in legend  # the counts stay, in the legend
