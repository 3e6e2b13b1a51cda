"""Reports and comparisons: figures of latency data, one self-contained HTML page, ``compare``.

- :func:`build_report` (``blox-lat report``): campaign folders and releases -> ``report.html``
  (figures embedded), ``report.json`` (every number shown) and ``figures/*.png|svg``.
- :func:`compare` (``blox-lat compare``): two campaigns or releases on the same models -> a
  :class:`Comparison` (per-model ratio, simultaneous confidence interval, faster / slower /
  not significant, geometric mean, Spearman, level shift).
- :func:`model_stats` (``blox-lat stats``): one model's samples, protocol statistics and
  histogram from a campaign or a release; :func:`anchor_stats`: a campaign's anchor runs.
- Any single figure for a notebook: :func:`load_source`, then e.g.
  ``latency_distribution_figure(list(src.devices.values()))``; each returns a matplotlib
  ``Figure`` (Agg, no pyplot state).
"""

from blox_lat.report._compare import CompareOptions, Comparison, compare, compare_devices, protocol_differences
from blox_lat.report._errors import (
    OutputError,
    OutputExistsError,
    ProtocolMismatchError,
    ReportError,
    SourceError,
    SourceMismatchError,
)
from blox_lat.report._modelstats import AnchorStats, ModelStats, anchor_stats, model_stats
from blox_lat.report._sources import AccuracyMetric, DeviceData, Source, load_source, load_sources
from blox_lat.report._stats import BlockFit, fit_block_costs, kendall, pareto_front, spearman

#: names whose modules import matplotlib: loaded on first use, so ``compare`` starts without it
_LAZY = {
    "ReportResult": "_build", "build_report": "_build", "static_costs": "_build",
    **{name: "_figures" for name in (
        "OKABE_ITO", "anchor_level_figure", "block_cost_figure", "campaign_figure", "compare_figure",
        "device_scatter_figure",
        "latency_distribution_figure", "noise_figure", "pareto_figure", "prediction_figure", "proxy_figure",
        "static_cost_figure")},
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"blox_lat.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'blox_lat.report' has no attribute {name!r}")


__all__ = [
    "OKABE_ITO",
    "AccuracyMetric",
    "AnchorStats",
    "BlockFit",
    "CompareOptions",
    "Comparison",
    "DeviceData",
    "ModelStats",
    "OutputError",
    "OutputExistsError",
    "ProtocolMismatchError",
    "ReportError",
    "ReportResult",
    "Source",
    "SourceError",
    "SourceMismatchError",
    "anchor_level_figure",
    "anchor_stats",
    "block_cost_figure",
    "build_report",
    "campaign_figure",
    "compare",
    "compare_devices",
    "compare_figure",
    "device_scatter_figure",
    "fit_block_costs",
    "kendall",
    "latency_distribution_figure",
    "load_source",
    "load_sources",
    "model_stats",
    "noise_figure",
    "pareto_figure",
    "pareto_front",
    "prediction_figure",
    "protocol_differences",
    "proxy_figure",
    "spearman",
    "static_cost_figure",
    "static_costs",
]
