"""The report's per-layer profile figures (``blox-lat report ... --profile DIR``).

- per-block stacked bars: for each profiled model (up to ``MAX_BARS``, by protocol latency),
  the time of its stem, each stage's block and reduction, and head, with the protocol latency
  of the same run as a mark beside the bar;
- profiled against fitted block costs: each stage-block pair's profiled cell time (mean over the
  profiled models holding it) against the additive fit of the campaigns' latencies for the same
  device (:func:`~blox_lat.report._stats.fit_block_costs`), both centred per stage (a fit knows
  costs up to a constant per stage), with the Spearman correlation over the pairs both have.

Profiles are read with :func:`blox_lat.profile.read_profiles`, the one reader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from blox_lat.report._figures import OKABE_ITO, _figure, _styled, colour
from blox_lat.report._stats import BlockFit, spearman

__all__ = ["MAX_BARS", "block_bars_figure", "load_profiles", "profiled_cell_costs", "profiled_vs_fitted_figure"]

MAX_BARS = 40
_KINDS = ("stem", "cell/0", "reduction/0", "cell/1", "reduction/1", "cell/2", "reduction/2", "head")
_LABELS = ("stem", "stage 0 block", "stage 0 reduction", "stage 1 block", "stage 1 reduction", "stage 2 block",
           "stage 2 reduction", "head")
_COLOURS = ("#999999", OKABE_ITO[0], "#a6cee3", OKABE_ITO[1], "#fdbf6f", OKABE_ITO[2], "#b2df8a", "#555555")


def load_profiles(folders: Sequence[str | os.PathLike[str]]) -> dict[str, list[Any]]:
    """The standing ok profile records of ``folders``, by device."""
    from blox_lat.profile import read_profiles, standing_profiles

    out: dict[str, list[Any]] = {}
    for folder in folders:
        for rec in standing_profiles(read_profiles(folder)).values():
            if rec.ok:
                out.setdefault(rec.device, []).append(rec)
    return out


def _kind(piece: str) -> str:
    return piece if piece in ("stem", "head") else piece.rsplit("/", 1)[0] if piece.startswith("cell/") else piece


@_styled
def block_bars_figure(records: Sequence[Any], device: str) -> Figure:
    """Stacked per-block times of each profiled model, the protocol latency marked beside."""
    shown = sorted(records, key=lambda r: r.latency_ms)[:MAX_BARS]
    fig, axes = _figure(width=7.0, height=3.7, right=1.7, bottom=0.85)
    ax = axes[0][0]
    x = np.arange(len(shown))
    bottom = np.zeros(len(shown))
    for kind, label, col in zip(_KINDS, _LABELS, _COLOURS):
        ms = np.array([sum(b.ms for b in r.blocks if _kind(b.piece) == kind) for r in shown])
        ax.bar(x, ms, bottom=bottom, color=col, width=0.8, label=label)
        bottom += ms
    other = np.array([sum(b.ms for b in r.blocks if not b.piece) for r in shown])
    if other.any():
        ax.bar(x, other, bottom=bottom, color="#dddddd", width=0.8, label="unmapped")
    ax.plot(x, [r.latency_ms for r in shown], linestyle="none", marker="_", markersize=9, color="#000000",
            label="protocol latency")
    ax.set_xticks(x, [str(r.model_index) for r in shown], rotation=90, fontsize=6)
    ax.set_xlabel("model (index)")
    ax.set_ylabel("time per inference (ms)")
    ax.set_title(f"{device}: per-block times from the profiler ({len(shown)} of {len(records)} models)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def profiled_cell_costs(records: Sequence[Any]) -> np.ndarray:
    """(3, 45) mean profiled cell time of each stage-block pair (NaN where none was profiled)."""
    from blox_lat.profile import cell_costs

    return cell_costs(records)[0]


def _centred(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full_like(a, np.nan)
    for s in range(3):
        if mask[s].any():
            out[s][mask[s]] = a[s][mask[s]] - a[s][mask[s]].mean()
    return out


def profiled_vs_fitted(records: Sequence[Any], fit: BlockFit) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(profiled, fitted, stage of each pair, Spearman) over the pairs both know, centred per stage."""
    prof = profiled_cell_costs(records)
    mask = np.isfinite(prof) & np.isfinite(fit.cost)
    p, f = _centred(prof, mask), _centred(np.asarray(fit.cost, dtype=float), mask)
    stages = np.repeat(np.arange(3)[:, None], 45, axis=1)
    rho = spearman(p[mask], f[mask]) if mask.sum() >= 3 else None
    return p[mask], f[mask], stages[mask], rho


@_styled
def profiled_vs_fitted_figure(records: Sequence[Any], fit: BlockFit, device: str) -> Figure:
    """Each stage-block pair: profiled cell time against the fitted block cost, centred per stage."""
    p, f, stages, rho = profiled_vs_fitted(records, fit)
    fig, axes = _figure(width=4.6, height=3.6)
    ax = axes[0][0]
    for s in range(3):
        keep = stages == s
        ax.plot(f[keep], p[keep], linestyle="none", marker="o", markersize=4, color=colour(s), label=f"stage {s}")
    if p.size:
        lo, hi = float(min(p.min(), f.min())), float(max(p.max(), f.max()))
        ax.plot([lo, hi], [lo, hi], color="#999999", linewidth=0.8)
    ax.set_xlabel("fitted block cost, centred per stage (ms)")
    ax.set_ylabel("profiled block time, centred (ms)")
    ax.set_title(f"{device}: {p.size} stage-block pairs, Spearman "
                 + (f"{rho:.3f}" if rho is not None else "n/a"))
    ax.legend(frameon=False)
    return fig
