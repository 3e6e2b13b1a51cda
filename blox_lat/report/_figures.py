"""One function per figure, each returning a matplotlib ``Figure`` (Agg backend, no pyplot).

A notebook can call any of them on its own; :func:`blox_lat.report.build_report` calls them
all. Colours are the Okabe-Ito palette (distinguishable with every common colour-vision
deficiency), and series of one figure differ in marker too; heatmaps use ``cividis`` and
print each cell's value; axes carry units; every title names the device and the source it
came from. Labels are at least 8 pt at 110 dpi, so at least 9 pt on a page that shows the
PNG at its own size (96 CSS px per inch). Scatter plots of many models are rasterised inside
the SVG so it stays small.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from blox_lat.report._sources import LATENCY_LABELS, AccuracyMetric, DeviceData
from blox_lat.report._stats import BlockFit, kendall, pareto_front, spearman

__all__ = [
    "OKABE_ITO", "anchor_level_figure", "block_cost_figure", "campaign_figure", "compare_figure", "device_scatter_figure",
    "latency_distribution_figure", "noise_figure", "pareto_figure", "prediction_figure", "proxy_figure",
    "static_cost_figure",
]

#: Okabe & Ito (2008), black last
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_RC = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
       "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10}
_CELL_PT = 8.5  # a heatmap's block labels and cell values


def _styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a figure function under the report's font sizes (never touching global rcParams)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        import matplotlib

        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def kind_label(device: DeviceData) -> str:
    """``raw latency`` or ``level-corrected latency``: what ``device.latency_ms`` holds."""
    return LATENCY_LABELS[device.latency_kind]


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def where(device: DeviceData) -> str:
    """``cpu (campaign-a)``: the device and the source (folder or release) it came from, for a title."""
    return f"{device.device} ({source_name(device.source)})"


def source_name(source: str | None) -> str:
    """The last part of a source's path: its folder or release name."""
    return (Path(str(source)).name or str(source)) if source else "unknown source"


def _integer_ticks(axis: Any) -> None:
    """Counts get whole-number ticks (not 0.2, 0.4, ... for one failure)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _figure(width: float = 7.0, height: float = 3.2, cols: int = 1, rows: int = 1, *, left: float = 0.62,
            right: float = 0.15, bottom: float = 0.48, top: float = 0.3, wspace: float = 0.7,
            hspace: float = 0.45) -> tuple[Figure, Any]:
    """A figure with fixed margins in inches (a layout engine would lay out every label twice,
    most of a figure's drawing time)."""
    fig = Figure(figsize=(width, height), dpi=110)
    axes = fig.subplots(rows, cols, squeeze=False)
    panel_w = (width - left - right - wspace * (cols - 1)) / cols
    panel_h = (height - bottom - top - hspace * (rows - 1)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)
    for ax in axes.flat:
        ax.tick_params(labelsize=_RC["xtick.labelsize"])
        ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def _log(ax: Any, which: str, values: Any, label: str) -> None:
    """A log axis with plain-number tick labels (``0.5``, ``2``, ``10``: no mathtext to lay out)
    when the values span at least a factor of 3; a linear one otherwise (a log axis over a
    narrow range has no labelled tick). ``label`` ends in its unit in parentheses."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    axis = ax.xaxis if which == "x" else ax.yaxis
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    if v.size and v.max() / v.min() >= 3:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        axis.set_minor_formatter(NullFormatter())
        label = label[:-1] + ", log scale)" if label.endswith(")") else label + " (log scale)"
    set_label(label)


def _points(ax: Any, x: np.ndarray, y: np.ndarray, colour_: str, label: str | None = None, size: float = 2.0,
            alpha: float = 0.6, marker: str = "o") -> None:
    """Many points fast: one Line2D of markers (rasterised in vector output)."""
    ms = size if x.size > 2000 else max(size, 4.0)
    ax.plot(x, y, linestyle="none", marker=marker, markersize=ms, markeredgewidth=0, alpha=alpha if x.size > 2000 else 0.9,
            color=colour_, label=label, rasterized=x.size > 2000)


@_styled
def latency_distribution_figure(devices: Sequence[DeviceData], names: Sequence[str] | None = None) -> Figure:
    """Histogram (log-spaced bins) and ECDF of the latency of every device (``names`` label them).

    Each device's histogram is its share of models per bin (%), so a small campaign is as tall
    as a large one; the counts are in the legend."""
    rows = -(-len(devices) // 2)  # legend rows, under the panels
    fig, axes = _figure(cols=2, height=3.6 + 0.2 * rows, top=0.62, bottom=0.62 + 0.2 * rows)
    hist, ecdf = axes[0]
    kinds = sorted({kind_label(d) for d in devices})
    what = kinds[0] if len(kinds) == 1 else "latency (raw or level-corrected, see legend)"
    lo = min(float(np.min(d.latency_ms)) for d in devices)
    hi = max(float(np.max(d.latency_ms)) for d in devices)
    bins = np.geomspace(lo * 0.98, hi * 1.02, 50) if hi > lo else 20
    for i, (d, name) in enumerate(zip(devices, names or [d.device for d in devices])):
        label = f"{name} ({d.count} ok, {len(d.failed)} failed, {int(d.noisy.sum())} noisy)"
        if len(kinds) > 1:
            label += f", {kind_label(d)}"
        hist.hist(d.latency_ms, bins=bins, histtype="step", linewidth=1.4, color=colour(i), label=label,
                  weights=np.full(d.latency_ms.size, 100.0 / d.latency_ms.size))
        xs = np.sort(d.latency_ms)
        ecdf.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post", color=colour(i), linewidth=1.4)
    for ax in (hist, ecdf):
        _log(ax, "x", np.concatenate([d.latency_ms for d in devices]), f"{what} (ms)")
    hist.set_ylabel("share of the device's models (%)")
    ecdf.set_ylabel("fraction of models ≤ latency")
    shown = ", ".join(f"{n} ({source_name(d.source)})" for d, n in zip(devices, names or [d.device for d in devices]))
    fig.suptitle(_wrap(f"{what[0].upper()}{what[1:]} of {shown}", 110), fontsize=_RC["axes.titlesize"])
    hist.set_title("distribution (share per bin)")
    ecdf.set_title("empirical CDF")
    # under both panels, over no line
    fig.legend(*hist.get_legend_handles_labels(), loc="lower center", ncols=min(len(devices), 2), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False))


def _cell_text(v: float) -> str:
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}"


_ROW_IN = 0.2  # a block's row in a heatmap (inches): room for an 8.5 pt label and value
_HEAT_TOP, _HEAT_BOTTOM = 0.95, 0.2


def _heat_figure(panels: int, block_names: Sequence[str]) -> tuple[Figure, list[Any]]:
    """A figure of ``panels`` block x stage heatmaps side by side (45 rows, 3 columns each; the
    block names on the left, horizontal) and the colour-bar axes of each."""
    label_in = 0.075 * max(len(n) for n in block_names) + 0.45
    panel_in, bar_in, gap_in = 2.1, 0.12, 0.85
    width = label_in + panels * (panel_in + gap_in + bar_in) + 0.1
    height = _HEAT_TOP + _HEAT_BOTTOM + _ROW_IN * len(block_names)
    fig = Figure(figsize=(width, height), dpi=110)
    out = []
    for i in range(panels):
        x = label_in + i * (panel_in + gap_in + bar_in)
        ax = fig.add_axes((x / width, _HEAT_BOTTOM / height, panel_in / width, (height - _HEAT_TOP - _HEAT_BOTTOM) / height))
        cax = fig.add_axes(((x + panel_in + 0.08) / width, _HEAT_BOTTOM / height, bar_in / width,
                            (height - _HEAT_TOP - _HEAT_BOTTOM) / height))
        out.append((ax, cax))
    return fig, out


def _heatmap(fig: Figure, ax: Any, cax: Any, values: np.ndarray, title: str, unit: str,
             block_names: Sequence[str] | None) -> None:
    """One block x stage heatmap of ``values`` (stage x block), each cell's value printed on it
    (light text on the dark end of ``cividis``), blank cells for NaN."""
    grid = np.asarray(values, dtype=np.float64).T
    masked = np.ma.masked_invalid(grid)
    image = ax.imshow(masked, aspect="auto", cmap="cividis", interpolation="nearest")
    bar = fig.colorbar(image, cax=cax)
    bar.set_label(unit)
    bar.ax.tick_params(labelsize=_RC["ytick.labelsize"])
    lo, hi = (float(masked.min()), float(masked.max())) if masked.count() else (0.0, 1.0)
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            dark = (v - lo) / (hi - lo) < 0.45 if hi > lo else True
            ax.text(c, r, _cell_text(float(v)), ha="center", va="center", fontsize=_CELL_PT,
                    color="white" if dark else "black")
    ax.set_xticks(range(grid.shape[1]), [f"stage {s}" for s in range(grid.shape[1])], fontsize=_CELL_PT + 0.5)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    if block_names is None:
        ax.set_yticks(range(grid.shape[0]), [])
    else:
        ax.set_yticks(range(grid.shape[0]), block_names, fontsize=_CELL_PT)
    if title:
        ax.set_title(title, loc="left", pad=22)
    ax.grid(False)


@_styled
def block_cost_figure(fit: BlockFit, block_names: Sequence[str], device: str, kind: str = "raw",
                      source: str | None = None) -> Figure:
    """Block x stage heatmap of each block's fitted latency contribution (ms) on one device
    (``kind``: the latency fitted, raw or corrected; ``source``: where it was measured), the
    value printed in each cell."""
    fig, [(ax, cax)] = _heat_figure(1, block_names)
    name = f"{device} ({source_name(source)})" if source else device
    _heatmap(fig, ax, cax, fit.cost, "", "ms", block_names)
    _heat_title(fig, _wrap(f"{name}: {LATENCY_LABELS[kind]} above the stage's cheapest block; additive fit "
                           f"R² = {fit.r2:.3f} ({fit.models} models)", int(fig.get_figwidth() * 11)))
    return fig


def _heat_title(fig: Figure, text: str) -> None:
    """A heatmap figure's title, from its left edge (the block names' column) and over every panel."""
    fig.suptitle(text, x=0.08 / fig.get_figwidth(), y=1 - 0.08 / fig.get_figheight(), ha="left", va="top",
                 fontsize=_RC["axes.titlesize"])


@_styled
def static_cost_figure(params_cost: np.ndarray, flops_cost: np.ndarray, block_names: Sequence[str]) -> Figure:
    """Block x stage heatmaps of each block's parameters and FLOPs (exact, from the space; the
    same on every device), the value printed in each cell."""
    fig, [(a, ca), (b, cb)] = _heat_figure(2, block_names)
    _heatmap(fig, a, ca, params_cost / 1e3, "parameters above the\nstage's cheapest block", "thousands", block_names)
    _heatmap(fig, b, cb, flops_cost / 1e6, "FLOPs above the\nstage's cheapest block", "millions", None)
    _heat_title(fig, "Parameters and FLOPs of each block: exact, from the space, the same on every device")
    return fig


@_styled
def device_scatter_figure(a: DeviceData, b: DeviceData, correlation: tuple[float, float] | None = None) -> Figure:
    """Latency on device A vs device B for the models both measured (log axes), with y = x.

    ``correlation`` is (Spearman, Kendall) when the caller has computed them already."""
    common, ia, ib = np.intersect1d(a.index, b.index, assume_unique=True, return_indices=True)
    x, y = a.latency_ms[ia], b.latency_ms[ib]
    fig, axes = _figure(width=4.6, height=4.1, top=0.55)
    ax = axes[0, 0]
    _points(ax, x, y, colour(0))
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color=colour(7), linewidth=0.8, linestyle="--", label="y = x")
    _log(ax, "x", np.concatenate([x, y]), f"{kind_label(a)} on {a.device} (ms)")
    _log(ax, "y", np.concatenate([x, y]), f"{kind_label(b)} on {b.device} (ms)")
    rho, tau = correlation or (spearman(x, y), kendall(x, y))
    ax.set_title(f"{where(a)} vs {where(b)}\n{common.size} models: Spearman {rho:.3f}, Kendall {tau:.3f}")
    ax.legend(loc="upper left")
    return fig


@_styled
def proxy_figure(device: DeviceData, flops: np.ndarray, params: np.ndarray,
                 correlations: Sequence[tuple[float, float]] | None = None) -> Figure:
    """Latency vs FLOPs and vs parameters, with the rank correlations of each.

    ``correlations`` is ((Spearman, Kendall) with FLOPs, the same with params) if known."""
    fig, axes = _figure(cols=2, height=3.5, top=0.6)
    y = device.latency_ms
    fig.suptitle(f"{where(device)}: {kind_label(device)} against FLOPs and parameters", fontsize=_RC["axes.titlesize"])
    known = correlations or (None, None)
    for ax, proxy, label, corr in ((axes[0, 0], flops / 1e6, "FLOPs (millions)", known[0]),
                                   (axes[0, 1], params / 1e6, "parameters (millions)", known[1])):
        _points(ax, proxy, y, colour(0))
        _log(ax, "x", proxy, label)
        _log(ax, "y", y, f"{kind_label(device)} on {device.device} (ms)")
        rho, tau = corr or (spearman(proxy, y), kendall(proxy, y))
        ax.set_title(f"Spearman {rho:.3f}, Kendall {tau:.3f}")
    return fig


@_styled
def noise_figure(device: DeviceData, cv_threshold: float | None = None) -> Figure:
    """Coefficient of variation against latency; noisy and re-measured models stand out."""
    fig, axes = _figure(width=5.4, height=3.6)
    ax = axes[0, 0]
    quiet = ~device.noisy & (device.attempts <= 1)
    _points(ax, device.latency_ms[quiet], device.cv[quiet] * 100, colour(0), label="measured once")
    again = ~device.noisy & (device.attempts > 1)
    if again.any():  # blue circles, bluish-green triangles, vermillion crosses: told apart by hue and shape
        _points(ax, device.latency_ms[again], device.cv[again] * 100, colour(2), label="re-measured", size=4.5,
                marker="^")
    if device.noisy.any():
        _points(ax, device.latency_ms[device.noisy], device.cv[device.noisy] * 100, colour(3), label="noisy", size=5,
                marker="X")
    if cv_threshold:
        ax.axhline(cv_threshold * 100, color=colour(7), linestyle="--", linewidth=0.8, label="noise threshold")
    _log(ax, "x", device.latency_ms, f"{kind_label(device)} (ms)")
    ax.set_ylabel("CV of the raw samples (%)")
    ax.set_title(f"{where(device)}: noise of {device.count} measurements")
    ax.legend(loc="upper right")
    return fig


@_styled
def anchor_level_figure(device: DeviceData) -> Figure:
    """The device's level through the campaign, from the anchor models of every set."""
    levels = np.asarray(device.anchor_levels, dtype=np.float64)
    fig, axes = _figure(width=5.0, height=3.0)
    ax = axes[0, 0]
    t0 = levels[0, 0]
    ax.plot((levels[:, 0] - t0) / 3600, levels[:, 1], marker="o", markersize=3, color=colour(0))
    ax.axhline(1.0, color=colour(7), linestyle="--", linewidth=0.8)
    ax.set_xlabel("time since the campaign started (h)")
    ax.set_ylabel("level (anchor latency / reference run)")
    ax.set_title(f"{where(device)}: device level through the campaign")
    return fig


@_styled
def campaign_figure(device: DeviceData) -> Figure:
    """Models done over time, the measuring rate, and failures by reason."""
    reasons: dict[str, int] = {}
    for reason in device.failed.values():
        key = reason.split(":")[0][:40]
        reasons[key] = reasons.get(key, 0) + 1
    fig, axes = _figure(cols=2 if reasons else 1, width=7.0 if reasons else 4.6, top=0.55)
    fig.suptitle(f"{where(device)}: campaign", fontsize=_RC["axes.titlesize"])
    ax = axes[0, 0]
    t = np.sort(device.recorded_s[np.isfinite(device.recorded_s)])
    hours = (t - t[0]) / 3600 if t.size else t
    ax.step(hours, np.arange(1, t.size + 1), where="post", color=colour(0), label="models done")
    ax.set_xlabel("time since the first model (h)")
    ax.set_ylabel("models measured (count)")
    _integer_ticks(ax.yaxis)
    ax.set_title("progress")
    if reasons:
        bar = axes[0, 1]
        names = sorted(reasons, key=lambda k: -reasons[k])
        bar.barh(range(len(names)), [reasons[n] for n in names], color=colour(3))
        bar.set_yticks(range(len(names)), names)
        bar.invert_yaxis()
        bar.set_xlabel("failed models (count)")
        _integer_ticks(bar.xaxis)
        bar.set_title("failures by reason")
    return fig


@_styled
def pareto_figure(device: DeviceData, metric: AccuracyMetric) -> Figure:
    """Accuracy against latency; the Pareto front (faster and more accurate) highlighted."""
    acc = metric.values[device.index]
    ok = np.isfinite(acc)
    lat, acc = device.latency_ms[ok], acc[ok]
    front = pareto_front(lat, acc)
    fig, axes = _figure(width=5.4, height=3.8)
    ax = axes[0, 0]
    _points(ax, lat, acc, colour(5), label=f"{lat.size} models", alpha=0.35)
    ax.step(lat[front], acc[front], where="post", color=colour(3), linewidth=1.2)
    ax.plot(lat[front], acc[front], linestyle="none", marker="D", markersize=4, color=colour(3),
            label=f"Pareto front ({front.size})")
    _log(ax, "x", lat, f"{kind_label(device)} on {device.device} (ms)")
    ax.set_ylabel(metric.label)
    ax.set_title(f"{where(device)}: accuracy vs latency ({metric.name})")
    ax.legend(loc="lower right")
    return fig


@_styled
def prediction_figure(measured: np.ndarray, predicted: np.ndarray, device: str, low: np.ndarray | None = None,
                      high: np.ndarray | None = None, *, trained: np.ndarray | None = None, kind: str = "raw",
                      held_out: dict[str, Any] | None = None, source: str | None = None) -> Figure:
    """Predicted vs measured latency of one kind (``kind``: the one the predictor predicts),
    with the +-10 % band; the models the predictor was trained on are marked apart from the
    others, and the title gives held-out accuracy (``held_out``: the predictor's
    cross-validated ``mape_pct`` / ``within10_pct``) rather than the in-sample fit; with
    ``source`` it also names where the measurements came from."""
    label = LATENCY_LABELS[kind]
    fig, axes = _figure(width=4.6, height=4.1, top=0.55)
    name = f"{device} ({source_name(source)})" if source else device
    ax = axes[0, 0]
    trained = np.zeros(measured.size, dtype=bool) if trained is None else np.asarray(trained, dtype=bool)
    if (~trained).any():
        _points(ax, measured[~trained], predicted[~trained], colour(0),
                label=f"not in the training set ({int((~trained).sum())})")
    if trained.any():
        _points(ax, measured[trained], predicted[trained], colour(5), size=2.5,
                label=f"in the training set ({int(trained.sum())}, in-sample)", alpha=0.5)
    lo, hi = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, xs, color=colour(7), linewidth=0.8)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color=colour(1), alpha=0.25, label="±10 %")
    if held_out and held_out.get("mape_pct") is not None:
        title = (f"{name}\nheld out (cross-validated) MAPE {held_out['mape_pct']:.1f} %"
                 + (f", {held_out['within10_pct']:.0f} % within ±10 %" if held_out.get("within10_pct") is not None
                    else ""))
    elif (~trained).any():
        rel = np.abs(predicted[~trained] / measured[~trained] - 1)
        title = f"{name}\nheld out {float(np.mean(rel <= 0.1)):.1%} within ±10 %"
    else:
        title = f"{name}\nin-sample only (no held-out figure)"
    both = np.concatenate([measured, predicted])
    _log(ax, "x", both, f"measured {label} (ms)")
    _log(ax, "y", both, f"predicted {label} (ms)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return fig


#: how :func:`compare_figure` colours each verdict: slower vermillion, faster blue, the rest grey
_VERDICT_COLOURS = {"slower": OKABE_ITO[3], "faster": OKABE_ITO[0], "not significant": "#999999",
                    "no interval": "#cccccc"}


@_styled
def compare_figure(c: Any) -> Figure:
    """A :class:`~blox_lat.report.Comparison` drawn: each model's ratio B/A against its latency
    in A, with the interval its verdict used; slower, faster and not significant coloured
    apart, the minimum effect dashed. The title names both sources, the device(s) and the kind
    of latency compared. (``c`` is not annotated with the class: ``_compare`` imports this
    module to draw, and the layers allow no cycle.)"""
    fig, axes = _figure(width=7.2, height=4.0, top=0.62, left=0.7, right=1.75)
    ax = axes[0, 0]
    many = c.models > 2000
    shown = [c.ratio]
    for verdict, col in _VERDICT_COLOURS.items():
        m = c.classification == verdict
        if not m.any():
            continue
        x, y = c.latency_a[m], c.ratio[m]
        has = np.isfinite(c.low[m]) & np.isfinite(c.high[m])
        if has.any():
            ax.vlines(x[has], c.low[m][has], c.high[m][has], color=col, linewidth=0.7, alpha=0.45 if many else 0.8,
                      rasterized=many)
            shown += [c.low[m][has], c.high[m][has]]
        _points(ax, x, y, col, label=f"{verdict} ({int(m.sum())})", size=2.5)
    ax.axhline(1.0, color=colour(7), linewidth=0.8)
    if c.min_effect > 0:
        for level in (1 + c.min_effect, 1 / (1 + c.min_effect)):
            ax.axhline(level, color=colour(7), linewidth=0.7, linestyle="--")
        ax.plot([], [], color=colour(7), linewidth=0.7, linestyle="--", label=f"minimum effect ±{c.min_effect:.0%}")
    _log(ax, "x", c.latency_a, f"{c.latency_label} in A (ms)")
    _log(ax, "y", np.concatenate(shown), "ratio B / A (1 = unchanged)")
    scope = "simultaneous" if c.correction == "bonferroni" else "per-model"
    device = c.device_a if c.device_a == c.device_b else f"{c.device_a} / {c.device_b}"
    ax.set_title(f"B: {_short(c.b)}  vs  A: {_short(c.a)}, on {device}\n{c.latency_label}, {c.models} models, "
                 f"{c.confidence:.0%} {scope} intervals" + (", relative to the level shift" if c.relative else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # outside: never over a model
    return fig


def _short(path: str, keep: int = 40) -> str:
    """A source's path as a title shows it: its last parts, at most ``keep`` characters."""
    parts = Path(path).parts
    text = str(Path(*parts[-2:])) if len(parts) > 2 else str(path)
    return text if len(text) <= keep else "..." + text[-(keep - 3):]

