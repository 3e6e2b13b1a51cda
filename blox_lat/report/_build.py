"""``build_report``: every figure whose data exists, ``report.json`` and one self-contained page.

:class:`ReportBuilder` has one small method per part of the page. Each part is a
:class:`~blox_lat.report._part.Part`: figures, the numbers they show (all of them go into
``report.json``), tables, and for a figure that cannot be drawn a sentence saying why. The
predictions part lives in ``_predictions``; which devices a report shows is chosen by
:func:`_select_devices` and :func:`_show` before the builder starts. The output folder is written
under a temporary name and renamed into place, so a failed report leaves nothing behind and an
existing folder is replaced only with ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat._fs import replace_dir, utc_now
from blox_lat.report import _figures as F
from blox_lat.report._errors import OutputError, OutputExistsError, SourceError, SourceMismatchError
from blox_lat.report._part import LIST_LIMIT as _LIST_LIMIT
from blox_lat.report._part import Part
from blox_lat.report._part import json_ready as _r
from blox_lat.report._part import safe_name as _safe
from blox_lat.report._predictions import predictions_part
from blox_lat.report._sources import LATENCY_LABELS, DeviceData, Source, load_sources
from blox_lat.report._stats import fit_block_costs, kendall, pareto_front, spearman

__all__ = ["Part", "ReportResult", "build_report", "save_figures", "static_costs"]

REPORT_SCHEMA = 1


@dataclass(frozen=True)
class ReportResult:
    out: Path
    html: Path
    json: Path
    figures: tuple[str, ...]
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "html": str(self.html), "json": str(self.json),
                "figures": list(self.figures), "wall_s": round(self.wall_s, 3)}


def static_costs() -> tuple[float, np.ndarray, float, np.ndarray]:
    """(params of the cheapest model, 3 x 45 params above it, same for FLOPs).

    Both are exactly additive over stages (a stage's cost depends only on its block and the
    stage's fixed width), so any model's count is ``base + sum of its stages' costs``.
    """
    from blox_lat import space as sp

    cost_p, cost_f = np.zeros((3, 45)), np.zeros((3, 45))
    for s in range(3):
        for b in range(45):
            blocks = [0, 0, 0]
            blocks[s] = b
            arch = sp.from_blocks(blocks)
            cost_p[s, b], cost_f[s, b] = sp.params(arch), sp.flops(arch)
    base_p, base_f = float(cost_p[0, 0]), float(cost_f[0, 0])
    cost_p, cost_f = cost_p - base_p, cost_f - base_f
    floor_p, floor_f = cost_p.min(axis=1), cost_f.min(axis=1)
    return (base_p + floor_p.sum(), cost_p - floor_p[:, None], base_f + floor_f.sum(), cost_f - floor_f[:, None])


def _blocks_of(index: np.ndarray) -> np.ndarray:
    from blox_lat.space import space_table

    t = space_table().triple_of_index[index].astype(np.int64)
    return np.stack([t % 45, (t // 45) % 45, t // 2025], axis=1)


def _select_devices(sources: list[Source], wanted: list[str] | None) -> dict[str, DeviceData]:
    """The devices of ``sources`` (a name seen twice gets ``@folder``), only ``wanted`` if given;
    refused when none is left or one has no successful measurement."""
    found: dict[str, DeviceData] = {}
    for src in sources:
        for name, data in src.devices.items():
            key = name if name not in found else f"{name}@{Path(src.path).name}"
            found[key] = data
    if wanted:
        missing = [w for w in wanted if w not in found]
        if missing:
            raise SourceMismatchError(f"no device {', '.join(map(repr, missing))} in the sources; they have: "
                                      f"{', '.join(found) or 'none'}")
        found = {w: found[w] for w in wanted}
    if not found:
        raise SourceError("the sources hold no measurements on any device; measure or build a release first")
    empty = [k for k, d in found.items() if d.count == 0]
    if empty:
        raise SourceError(f"device {empty[0]!r} has no successful measurement in {found[empty[0]].source}; "
                          "nothing to plot (every model failed)")
    return found


def _show(devices: dict[str, DeviceData], latency: str) -> dict[str, DeviceData]:
    """Each device showing the latency ``--latency`` asks for (``auto``: per device,
    corrected when every ok model of it has a level-corrected latency)."""
    from blox_lat.harness import LatencyKindError

    out = {}
    for name, d in devices.items():
        try:
            out[name] = d.shown(d.latency_kind_for(latency))
        except LatencyKindError as exc:
            raise SourceError(f"{name} in {d.source}: {exc}") from None
    return out


class ReportBuilder:
    """Turns loaded sources into parts; :meth:`parts` lists them in page order."""

    def __init__(self, sources: list[Source], devices: list[str] | None = None, latency: str = "auto",
                 profiles: dict[str, list[Any]] | None = None) -> None:
        self.sources = sources
        self.latency = latency
        self.profiles = profiles or {}  # device -> profile records (blox-lat profile)
        self.devices = _show(_select_devices(sources, devices), latency)
        from blox_lat import space as sp
        from blox_lat.space import space_table

        self.hashes = space_table().hashes
        self.block_names = [b.name for b in sp.list_blocks()]
        self.params_base, self.params_cost, self.flops_base, self.flops_cost = static_costs()
        self.blocks = {name: _blocks_of(d.index) for name, d in self.devices.items()}

    @property
    def kinds(self) -> dict[str, str]:
        """device -> the latency the report shows for it (``raw`` or ``corrected``)."""
        return {name: d.latency_kind for name, d in self.devices.items()}

    def _static(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blocks = _blocks_of(index)
        stages = np.arange(3)
        params = self.params_base + self.params_cost[stages, blocks].sum(axis=1)
        flops = self.flops_base + self.flops_cost[stages, blocks].sum(axis=1)
        return params, flops

    def _model(self, index: int) -> dict[str, Any]:
        return {"model_index": int(index), "model_hash": self.hashes[int(index)]}

    def parts(self) -> list[Part]:
        return [self.distribution(), self.block_costs(), self.device_pairs(), self.proxies(), self.noise(),
                self.predictions(), self.campaigns(), self.pareto(), self.environment(),
                *([self.layer_profiles()] if self.profiles else [])]

    def layer_profiles(self) -> Part:
        """Per-block stacked bars of profiled models, and profiled against fitted block costs."""
        from blox_lat.report._profiles import block_bars_figure, profiled_vs_fitted, profiled_vs_fitted_figure

        part = Part("profiles", "Per-layer profiles")
        numbers = {}
        for name, records in self.profiles.items():
            part.figures.append((f"profile-blocks-{_safe(name)}", block_bars_figure(records, name),
                                 "Each profiled model's time per block (profiler on; stem, each stage's block and "
                                 "reduction, head) and its protocol latency of the same run (mark)."))
            d = self.devices.get(name)
            entry: dict[str, Any] = {"models": len(records)}
            if d is None or d.count < 3:
                part.notes.append(f"{name}: no campaign of this device with 3 or more models among the sources, so no "
                                  "fitted block costs to hold the profiles against.")
            else:
                fit = fit_block_costs(self.blocks[name], d.latency_ms)
                _, _, _, rho = profiled_vs_fitted(records, fit)
                entry.update(spearman=_r(rho, 4), fitted_on=fit.models)
                part.figures.append((f"profile-vs-fit-{_safe(name)}", profiled_vs_fitted_figure(records, fit, name),
                                     f"Each stage-block pair profiled: its cell's mean profiled time against its cost in "
                                     f"the additive fit of {fit.models} measured models, both centred per stage."))
            numbers[name] = entry
        part.numbers["profiles"] = numbers
        return part

    def distribution(self) -> Part:
        part = Part("distribution", "Latency distribution")
        rows = []
        for name, d in self.devices.items():
            q = np.percentile(d.latency_ms, [0, 5, 50, 95, 100])
            row = {"device": name, "latency": d.latency_kind, "source": d.source, "measured": d.count,
                   "failed": len(d.failed),
                   "noisy": int(d.noisy.sum()), "remeasured": int((d.attempts > 1).sum()),
                   "burst": int(d.burst.sum()) if d.burst is not None else 0,
                   "min_ms": q[0], "p5_ms": q[1], "median_ms": q[2], "p95_ms": q[3], "max_ms": q[4]}
            rows.append(_r(row, 4))
        part.numbers["devices"] = rows
        part.numbers["latency"] = self.kinds
        kinds = " / ".join(sorted({LATENCY_LABELS[k] for k in self.kinds.values()}))
        part.tables.append((f"Models per device ({kinds} in ms)", list(rows[0]), rows))
        part.figures.append(("latency-distribution", F.latency_distribution_figure(list(self.devices.values()), list(self.devices)),
                             f"Histogram and empirical CDF of the {kinds} on every device (column latency: which one)."))
        return part

    def block_costs(self) -> Part:
        part = Part("block-costs", "Per-stage block cost")
        part.numbers["params_base"] = self.params_base
        part.numbers["flops_base"] = self.flops_base
        part.numbers["params_cost"] = _r(self.params_cost, 1)
        part.numbers["flops_cost"] = _r(self.flops_cost, 1)
        part.numbers["block_names"] = self.block_names
        part.figures.append(("block-static", F.static_cost_figure(self.params_cost, self.flops_cost, self.block_names),
                             "Parameters and FLOPs each block adds over the stage's cheapest block (exact, from the "
                             "space; a model's count is the cheapest model's plus its three blocks')."))
        fits = {}
        for name, d in self.devices.items():
            if d.count < 3:
                part.notes.append(f"{name}: {d.count} model(s) measured; the additive block fit needs at least 3.")
                continue
            fit = fit_block_costs(self.blocks[name], d.latency_ms)
            fits[name] = {"latency": d.latency_kind, "r2": _r(fit.r2, 4), "rmse_ms": _r(fit.rmse_ms, 4), "base_ms": _r(fit.base_ms, 4),
                          "models": fit.models, "parameters": fit.parameters, "determined": fit.determined,
                          "cost_ms": _r(fit.cost, 4)}
            caption = (f"Additive fit {LATENCY_LABELS[d.latency_kind]} = base + Σ cost[stage, block] on {fit.models} models "
                       f"({fit.parameters} stage-block parameters), R² = {fit.r2:.3f}, RMSE {fit.rmse_ms:.3g} ms, "
                       f"base {fit.base_ms:.3g} ms; blank cells: blocks no measured model uses.")
            if not fit.determined:
                caption += " Fewer models than parameters: the fit is underdetermined (ridge-regularised), so R² says little."
            part.figures.append((f"block-costs-{_safe(name)}",
                                 F.block_cost_figure(fit, self.block_names, name, d.latency_kind, d.source), caption))
        part.numbers["fits"] = fits
        return part

    def device_pairs(self) -> Part:
        part = Part("devices", "Device against device")
        names = list(self.devices)
        pairs = []
        if len(names) < 2:
            part.notes.append("Only one device in the sources: no device-vs-device scatter.")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                da, db = self.devices[a], self.devices[b]
                common, ia, ib = np.intersect1d(da.index, db.index, assume_unique=True, return_indices=True)
                if common.size < 3:
                    part.notes.append(f"{a} and {b} share {common.size} model(s); a rank correlation needs 3.")
                    continue
                x, y = da.latency_ms[ia], db.latency_ms[ib]
                rho, tau = spearman(x, y), kendall(x, y)
                pairs.append(_r({"a": a, "b": b, "latency_a": da.latency_kind, "latency_b": db.latency_kind,
                                 "models": int(common.size), "spearman": rho, "kendall": tau}, 4))
                part.figures.append((f"devices-{_safe(a)}-vs-{_safe(b)}", F.device_scatter_figure(da, db, (rho, tau)),
                                     f"{LATENCY_LABELS[da.latency_kind].capitalize()} on {a} against "
                                     f"{LATENCY_LABELS[db.latency_kind]} on {b} of the {common.size} models "
                                     "measured on both."))
        part.numbers["pairs"] = pairs
        return part

    def proxies(self) -> Part:
        part = Part("proxies", "Latency against FLOPs and parameters")
        rows = []
        for name, d in self.devices.items():
            if d.count < 3:
                part.notes.append(f"{name}: fewer than 3 models, no rank correlation with FLOPs or parameters.")
                continue
            params, flops = self._static(d.index)
            corr = [(spearman(proxy, d.latency_ms), kendall(proxy, d.latency_ms)) for proxy in (flops, params)]
            rows.append(_r({"device": name, "latency": d.latency_kind, "models": d.count,
                            "spearman_flops": corr[0][0], "kendall_flops": corr[0][1],
                            "spearman_params": corr[1][0], "kendall_params": corr[1][1]}, 4))
            part.figures.append((f"proxies-{_safe(name)}", F.proxy_figure(d, flops, params, corr),
                                 f"How well FLOPs and parameter counts rank the models by latency on {name}: a rank "
                                 "correlation well below 1 means the proxy misleads a search."))
        part.numbers["correlations"] = rows
        if rows:
            part.tables.append(("Rank correlation of latency (column latency: which one) with the proxies",
                                list(rows[0]), rows))
        return part

    def noise(self) -> Part:
        part = Part("noise", "Noise")
        per_device = {}
        for name, d in self.devices.items():
            threshold = (d.environments[0].get("protocol") or {}).get("cv_threshold") if d.environments else None
            lat_key = f"{d.latency_kind}_latency_ms"
            noisy = [{**self._model(i), "cv": _r(c, 4), "attempts": int(a), lat_key: _r(lat, 4)}
                     for i, c, a, lat in zip(d.index[d.noisy], d.cv[d.noisy], d.attempts[d.noisy], d.latency_ms[d.noisy])]
            again = d.attempts > 1
            remeasured = [{**self._model(i), "attempts": int(a), "cv": _r(c, 4)}
                          for i, a, c in zip(d.index[again], d.attempts[again], d.cv[again])]
            hit = d.burst if d.burst is not None else np.zeros(len(d.index), dtype=bool)
            burst = [{**self._model(i), lat_key: _r(lat, 4)} for i, lat in zip(d.index[hit], d.latency_ms[hit])]
            cv = d.cv[np.isfinite(d.cv)]  # a release may lack the CV of some (or all) models
            per_device[name] = {"latency": d.latency_kind, "level_reference": d.level_reference,
                                "median_cv": _r(float(np.median(cv)) if cv.size else None, 4), "cv_threshold": threshold,
                                "noisy": noisy, "remeasured": remeasured, "burst": burst}
            part.figures.append((f"noise-{_safe(name)}", F.noise_figure(d, threshold),
                                 f"{name}: coefficient of variation of every measurement; {len(noisy)} noisy, "
                                 f"{len(remeasured)} re-measured."))
            if burst:
                part.notes.append(f"{name}: {len(burst)} model(s) were timed in a set that ran through a burst of other "
                                  "work on the host that no redo repaired (flag burst): their latencies carry that noise, "
                                  "which the anchors cannot correct; measure them again on a quiet host with "
                                  "blox-lat measure ... --remeasure burst (docs/protocol.md).")
            for title, rows in (("noisy", noisy), ("re-measured", remeasured), ("burst (not repaired)", burst)):
                if rows:
                    part.tables.append((f"{name}: {title} models ({len(rows)}"
                                        + (f", first {_LIST_LIMIT} shown" if len(rows) > _LIST_LIMIT else "") + ")",
                                        list(rows[0]), rows[:_LIST_LIMIT]))
            if d.anchor_levels is not None and len(d.anchor_levels):
                where = ("the anchor models of every set" if d.kind == "campaign" else
                         "the release's level column (one point per set)")
                part.figures.append((f"anchor-level-{_safe(name)}", F.anchor_level_figure(d),
                                     f"{name}: the device's level from {where}, on the level reference of campaign "
                                     f"{(d.level_reference or {}).get('campaign_id', 'unknown')}."))
            else:
                part.notes.append(f"{name}: no anchor data (the journal records no anchor models), so neither the "
                                  "device's level through the campaign nor level-corrected latencies can be shown.")
        part.numbers["devices"] = per_device
        return part

    def predictions(self) -> Part:
        """Predicted against measured (:func:`~blox_lat.report._predictions.predictions_part`)."""
        return predictions_part(self.sources)

    def campaigns(self) -> Part:
        part = Part("campaigns", "Campaigns")
        rows = []
        for name, d in self.devices.items():
            t = d.recorded_s[np.isfinite(d.recorded_s)]
            span_h = float(t.max() - t.min()) / 3600 if t.size > 1 else 0.0
            rate = (t.size - 1) / span_h if span_h > 0 else None
            selected = max((int(e.get("selected") or 0) for e in d.environments), default=0)
            remaining = max(selected - d.count - len(d.failed), 0) if d.kind == "campaign" and selected else None
            reasons: dict[str, int] = {}
            for reason in d.failed.values():
                reasons[reason] = reasons.get(reason, 0) + 1
            rows.append(_r({"device": name, "kind": d.kind, "measured": d.count, "failed": len(d.failed),
                            "selected": selected or None, "remaining": remaining, "span_h": span_h,
                            "rate_per_h": rate, "eta_h": (remaining / rate) if remaining and rate else (0.0 if remaining == 0 else None),
                            "failures_by_reason": reasons}, 3))
            if t.size:
                part.figures.append((f"campaign-{_safe(name)}", F.campaign_figure(d),
                                     f"{name}: models journaled over time" + (", failures by reason." if reasons else ".")))
            if not d.thermal:
                part.notes.append(f"{name}: no temperature records (the journal carries no per-model thermal facts), "
                                  "so no temperatures before/after each model and no thermal waits.")
        part.numbers["devices"] = rows
        part.tables.append(("Progress, rate and ETA", ["device", "kind", "measured", "failed", "selected", "remaining",
                                                       "span_h", "rate_per_h", "eta_h"], rows))
        return part

    def pareto(self) -> Part:
        part = Part("pareto", "Accuracy against latency")
        metrics = [(src, m) for src in self.sources for m in src.accuracy]
        fronts = []
        if not metrics:
            part.notes.append("No accuracy section (base, finetune, distill) in these sources: no Pareto front.")
        for name, d in self.devices.items():
            for _src, metric in metrics:
                acc = metric.values[d.index]
                ok = np.isfinite(acc)
                if ok.sum() < 2:
                    part.notes.append(f"{name}: fewer than 2 models have {metric.name} accuracy; no front.")
                    continue
                idx, lat, a = d.index[ok], d.latency_ms[ok], acc[ok]
                front = pareto_front(lat, a)
                members = [{**self._model(idx[k]), f"{d.latency_kind}_latency_ms": _r(lat[k], 4),
                            "accuracy": _r(a[k], 3)} for k in front]
                fronts.append({"device": name, "latency": d.latency_kind, "metric": metric.name, "label": metric.label,
                               "models": int(ok.sum()), "front": members})
                fig_name = f"pareto-{_safe(name)}-{_safe(metric.name)}"
                part.figures.append((fig_name, F.pareto_figure(d, metric),
                                     f"{name}, {metric.label}: {len(members)} models on the front of {int(ok.sum())}."))
                part.tables.append((f"{name}, {metric.name}: the Pareto front ({len(members)} models"
                                    + (f", first {_LIST_LIMIT} shown" if len(members) > _LIST_LIMIT else "") + ")",
                                    list(members[0]), members[:_LIST_LIMIT]))
        part.numbers["fronts"] = fronts
        return part

    def environment(self) -> Part:
        part = Part("environment", "Environment")
        rows = []
        for name, d in self.devices.items():
            for env in d.environments:
                versions = env.get("versions") or {}
                profile = env.get("profile") or d.profile or {}
                protocol = env.get("protocol") or d.protocol or {}
                rows.append({"device": name, "campaign": env.get("campaign_id"), "env_id": env.get("env_id"),
                             "recorded_at": env.get("recorded_at"), "host": env.get("host"),
                             "cpu": (env.get("cpu") or {}).get("model"),
                             "runtime": f"{profile.get('runtime')} {profile.get('format')} {profile.get('precision')}",
                             "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if k in
                                                   ("python", "onnxruntime", "torch", "blox_lat", "git_commit")),
                             "protocol": ", ".join(f"{k}={v}" for k, v in protocol.items())})
            if not d.environments:
                part.notes.append(f"{name}: no environment records in {d.source}.")
        part.numbers["environments"] = rows
        if rows:
            part.tables.append(("Measurement environments", list(rows[0]), rows))
        return part


_PENDING: list[tuple[str, Any, Path]] = []  # figures to save, inherited by forked workers


def _save(i: int) -> None:
    name, fig, folder = _PENDING[i]
    fig.savefig(folder / f"{name}.png", dpi=110)
    fig.savefig(folder / f"{name}.svg")


def _quiet_worker() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it terminates the pool), so a
    worker ignores SIGINT instead of printing ``Process ForkPoolWorker-N:`` and a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _pool(jobs: int):
    """A fork pool of ``jobs`` quiet workers. SIGINT stays blocked while they are forked, so
    one that arrives before a worker's initializer ran cannot reach it (it waits in the parent
    and interrupts it as soon as the pool exists)."""
    import multiprocessing

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return multiprocessing.get_context("fork").Pool(jobs, initializer=_quiet_worker)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def save_figures(figures: list[tuple[str, Any]], folder: Path, jobs: int | None = None) -> None:
    """Every figure as ``folder/NAME.png`` and ``.svg``; drawing dominates a report's time, so
    with ``jobs`` > 1 forked workers (which inherit the figures, nothing is pickled) share it.
    Ctrl-C stops the parent, which terminates the workers; they print nothing."""
    global _PENDING
    import multiprocessing

    jobs = min(jobs or os.cpu_count() or 1, 4, len(figures))
    _PENDING = [(name, fig, folder) for name, fig in figures]
    try:
        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            with _pool(jobs) as pool:  # leaving the block terminates the workers, also on Ctrl-C
                pool.map(_save, range(len(_PENDING)), chunksize=1)
        else:
            for i in range(len(_PENDING)):
                _save(i)
    finally:
        _PENDING = []


def _prepare_out(out: Path, force: bool) -> tuple[Path, Path]:
    """(the folder to replace, the temporary folder to write the report into).

    A symbolic link ``out`` stands for the folder it points to (existing or not): that folder
    is what gets replaced, and the temporary folder is made beside it, so that the final
    rename stays on one file system. A path nobody can write fails here, in one line, before
    any source is read or any figure drawn."""
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    if target.exists() and not force:
        raise OutputExistsError(f"{out} exists; give another --out or pass --force to replace it")
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{out} is a file; give a folder for --out")
    if target.parent.exists() and not target.parent.is_dir():
        raise OutputError(f"{target.parent} is a file, so {target} cannot be a folder; give another --out")
    if not target.parent.is_dir():
        raise SourceError(f"the parent folder of {target} does not exist; create it first")
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        tmp.mkdir()
    except OSError as exc:
        raise _output_error(out, exc) from None
    return target, tmp


def _output_error(out: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write the report to {out} ({exc.strerror or exc}); give an --out in a folder "
                       "you can write to")


def build_report(sources: list[str | os.PathLike[str]] | list[Source], out: str | os.PathLike[str], *,
                 force: bool = False, devices: list[str] | None = None, jobs: int | None = None,
                 latency: str = "auto", profiles: list[str | os.PathLike[str]] = ()) -> ReportResult:
    """Write ``report.html``, ``report.json`` and ``figures/*.png|svg`` for the sources into ``out``.

    ``sources`` are campaign folders or releases (paths) or already loaded :class:`Source`
    objects; ``devices`` limits the report to those device names. Raises a
    :class:`~blox_lat.report.ReportError` (nothing written) for unusable input, an ``out``
    that cannot be written, or an existing ``out`` without ``force``. ``jobs`` processes draw
    the figures (default: up to 4 CPUs). ``latency`` (``auto``, ``raw``, ``corrected``) is
    the latency every figure, table and number shows; ``auto`` takes, per device, the
    level-corrected one when every model of it has one. ``profiles`` are ``blox-lat profile``
    folders: their per-block figures are added (``_profiles``).

    An ``out`` that is a symbolic link is followed: the report replaces (with ``force``) or
    creates the folder the link points to, and the link itself stays as it is, still pointing
    there. Nothing else is left beside either: the report is written under a temporary name
    and swapped in with :func:`blox_lat._fs.replace_dir`.
    """
    from blox_lat import __version__
    from blox_lat.report._html import render_html

    start = time.perf_counter()
    out = Path(out)
    target, tmp = _prepare_out(out, force)
    try:
        loaded = [s if isinstance(s, Source) else None for s in sources]
        paths = [s for s in sources if not isinstance(s, Source)]
        loaded_paths = iter(load_sources(paths) if paths else [])
        srcs = [s if s is not None else next(loaded_paths) for s in loaded]
        if not srcs:
            raise SourceError("no source given: name at least one campaign folder or release")
        from blox_lat.report._profiles import load_profiles

        builder = ReportBuilder(srcs, devices, latency, load_profiles(profiles) if profiles else None)
        parts = builder.parts()
        meta = {"schema": REPORT_SCHEMA, "generator": f"blox-lat {__version__}",
                "created_at": utc_now(zulu=True), "latency_requested": latency, "latency": builder.kinds,
                "sources": [{"path": s.path, "kind": s.kind, "schema": s.schema, "version": s.version,
                             "devices": list(s.devices)} for s in srcs]}
        figures = [name for part in parts for name, _fig, _caption in part.figures]
        try:
            (tmp / "figures").mkdir()
            save_figures([(name, fig) for part in parts for name, fig, _caption in part.figures], tmp / "figures", jobs)
            images = {name: (tmp / "figures" / f"{name}.png").read_bytes() for name in figures}
            document = {**meta, "parts": {p.key: {"title": p.title, "numbers": p.numbers, "notes": p.notes,
                                                  "figures": [n for n, _, _ in p.figures]} for p in parts}}
            (tmp / "report.json").write_text(json.dumps(_r(document), indent=1, allow_nan=False) + "\n")
            (tmp / "report.html").write_text(render_html(meta, parts, images), encoding="utf-8")
            replace_dir(tmp, target)
        except OSError as exc:  # a full disk, a file system gone read-only meanwhile
            raise _output_error(out, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReportResult(out, out / "report.html", out / "report.json", tuple(figures), time.perf_counter() - start)
