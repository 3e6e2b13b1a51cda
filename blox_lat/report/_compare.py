"""``compare``: two campaigns or releases on the same models, model by model.

For each model measured ``ok`` in both, the ratio ``r = latency_B / latency_A`` of the protocol
latencies and a confidence interval for it from the group means (the protocol's independent
unit): on the log scale, ``se^2 = s_A^2 / (n_A m_A^2) + s_B^2 / (n_B m_B^2)`` (delta method,
``m``, ``s``, ``n`` the mean, standard deviation and count of a model's group means) with
Welch-Satterthwaite degrees of freedom, so ``CI = r * exp(+- t * se)``.

Many models are compared at once, so by default the intervals are *simultaneous*
(Bonferroni): each is built at ``1 - (1 - confidence) / models``, and the chance that *any*
unchanged model is called faster or slower is at most ``1 - confidence``. A model is
``slower`` when its interval lies above 1 and its ratio is at least ``1 + min_effect``,
``faster`` when its interval lies below 1 and its ratio is at most ``1 / (1 + min_effect)``,
otherwise ``not significant``. The minimum effect guards against what the interval cannot
see: group means of one run are not fully independent (the host drifts within a run), so a
tiny but "significant" change is most often that drift. ``relative=True`` first divides every
ratio by the level shift (the median ratio), for comparisons across hosts or phones where
the whole level moves and what matters is which models moved against the rest.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blox_lat.report._errors import ProtocolMismatchError, SourceError, SourceMismatchError
from blox_lat.report._sources import DeviceData, Source, load_source
from blox_lat.report._stats import spearman

__all__ = ["Comparison", "compare", "compare_devices", "protocol_differences"]

CLASSES = ("slower", "faster", "not significant")


def protocol_differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two protocol identities: ``{field: (a, b)}``."""
    a, b = a or {}, b or {}
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def _log_stats(group_means: np.ndarray | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(variance of the log of the mean, group count) per model; NaN variance with < 2 groups."""
    if group_means is None or group_means.size == 0:
        return np.full(count, np.nan), np.zeros(count)
    g = group_means
    n = np.sum(~np.isnan(g), axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.nanmean(g, axis=1)
        var = np.nansum((g - m[:, None]) ** 2, axis=1) / (n - 1)
        v = var / (n * m * m)
    v[n < 2] = np.nan
    return v, n


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: per-model arrays (aligned) and the summary."""

    a: str
    b: str
    device_a: str
    device_b: str
    confidence: float
    correction: str
    min_effect: float
    relative: bool
    index: np.ndarray
    latency_a: np.ndarray
    latency_b: np.ndarray
    ratio: np.ndarray
    low: np.ndarray
    high: np.ndarray
    classification: np.ndarray
    only_a: int
    only_b: int
    protocol_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def models(self) -> int:
        return int(self.index.size)

    @property
    def per_model_confidence(self) -> float:
        alpha = 1 - self.confidence
        return 1 - (alpha / max(self.models, 1) if self.correction == "bonferroni" else alpha)

    def counts(self) -> dict[str, int]:
        return {c: int(np.count_nonzero(self.classification == c)) for c in (*CLASSES, "no interval")}

    def summary(self) -> dict[str, Any]:
        logs = np.log(self.ratio)
        level = float(np.exp(np.median(logs))) if logs.size else float("nan")
        return {
            "a": self.a, "b": self.b, "device_a": self.device_a, "device_b": self.device_b,
            "models": self.models, "only_in_a": self.only_a, "only_in_b": self.only_b,
            "confidence": self.confidence, "correction": self.correction,
            "per_model_confidence": self.per_model_confidence, "min_effect": self.min_effect,
            "relative_to_level": self.relative,
            "geometric_mean_ratio": float(np.exp(logs.mean())) if logs.size else float("nan"),
            "level_shift": level,
            "spearman": spearman(self.latency_a, self.latency_b),
            "counts": self.counts(),
            "protocol_differences": {k: list(v) for k, v in self.protocol_differences.items()},
        }

    def rows(self, which: str = "changed") -> list[dict[str, Any]]:
        """Per-model rows: ``changed`` (slower or faster, most changed first) or ``all``."""
        if which == "all":
            pick = np.arange(self.models)
        else:
            pick = np.flatnonzero(np.isin(self.classification, ("slower", "faster")))
            pick = pick[np.argsort(-np.abs(np.log(self.ratio[pick])), kind="stable")]
        from blox_lat.space import space_table

        hashes = space_table().hashes
        return [{"model_index": int(self.index[i]), "model_hash": hashes[int(self.index[i])],
                 "latency_a_ms": round(float(self.latency_a[i]), 6), "latency_b_ms": round(float(self.latency_b[i]), 6),
                 "ratio": round(float(self.ratio[i]), 6),
                 "ci_low": None if math.isnan(self.low[i]) else round(float(self.low[i]), 6),
                 "ci_high": None if math.isnan(self.high[i]) else round(float(self.high[i]), 6),
                 "classification": str(self.classification[i])} for i in pick.tolist()]

    def to_dict(self, which: str = "all") -> dict[str, Any]:
        return {**self.summary(), "rows": self.rows(which)}

    def to_markdown(self, which: str = "changed") -> str:
        s = self.summary()
        c = s["counts"]
        lines = [f"**{s['b']}** vs **{s['a']}** ({s['device_b']} / {s['device_a']}): {s['models']} models, "
                 f"{c['slower']} slower, {c['faster']} faster, {c['not significant']} not significant"
                 + (f", {c['no interval']} without an interval" if c["no interval"] else "")
                 + f" ({_confidence_text(self)}, minimum effect {self.min_effect:.0%}).", "",
                 f"Geometric mean of the ratios {s['geometric_mean_ratio']:.4f}, level shift "
                 f"(median ratio) {s['level_shift']:.4f}, Spearman {s['spearman']:.4f}.", ""]
        rows = self.rows(which)
        if rows:
            lines += ["| model | hash | A (ms) | B (ms) | B/A | CI | |", "|---:|---|---:|---:|---:|---|---|"]
            for r in rows:
                ci = "n/a" if r["ci_low"] is None else f"{r['ci_low']:.3f} to {r['ci_high']:.3f}"
                lines.append(f"| {r['model_index']} | `{r['model_hash'][:12]}` | {r['latency_a_ms']:.4f} | "
                             f"{r['latency_b_ms']:.4f} | {r['ratio']:.3f} | {ci} | {r['classification']} |")
        return "\n".join(lines) + "\n"


def _confidence_text(c: Comparison) -> str:
    if c.correction == "bonferroni":
        return f"{c.confidence:.0%} simultaneous confidence (Bonferroni over {c.models} models)"
    return f"{c.confidence:.0%} confidence per model, no correction for {c.models} comparisons"


def compare_devices(a: DeviceData, b: DeviceData, *, confidence: float = 0.95, correction: str = "bonferroni",
                    min_effect: float = 0.05, relative: bool = False, allow_protocol_mismatch: bool = False,
                    label_a: str | None = None, label_b: str | None = None) -> Comparison:
    """Compare one device's results in two sources (see the module docstring for the method)."""
    from scipy.special import stdtrit  # Student's t quantile; scipy.stats itself imports for seconds

    if not 0 < confidence < 1:
        raise SourceError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if correction not in ("bonferroni", "none"):
        raise SourceError(f"correction must be 'bonferroni' or 'none', got {correction!r}")
    if min_effect < 0:
        raise SourceError(f"minimum effect must be >= 0, got {min_effect}")
    diffs = protocol_differences(a.protocol, b.protocol)
    if diffs and not allow_protocol_mismatch:
        detail = ", ".join(f"{k} {va} vs {vb}" for k, (va, vb) in diffs.items())
        raise ProtocolMismatchError(f"{label_a or a.source} and {label_b or b.source} were measured with different "
                                    f"protocols ({detail}); pass --allow-protocol-mismatch to compare anyway")
    common, ia, ib = np.intersect1d(a.index, b.index, assume_unique=True, return_indices=True)
    if common.size == 0:
        raise SourceMismatchError(f"{label_a or a.source} and {label_b or b.source} have no model in common on "
                                  f"{a.device}/{b.device}; compare campaigns of the same models")
    la, lb = a.latency_ms[ia], b.latency_ms[ib]
    ratio = lb / la
    level = float(np.exp(np.median(np.log(ratio))))
    if relative:
        ratio = ratio / level
    va, na = _log_stats(a.group_means, a.count)
    vb, nb = _log_stats(b.group_means, b.count)
    va, na, vb, nb = va[ia], na[ia], vb[ib], nb[ib]
    se = np.sqrt(va + vb)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    df = np.where(np.isfinite(df) & (df > 0), df, np.where(np.isfinite(se), 1e9, np.nan))  # zero spread
    alpha = 1 - confidence
    if correction == "bonferroni":
        alpha /= common.size
    has = np.isfinite(se)
    tq = np.full(common.size, np.nan)
    if has.any():
        tq[has] = stdtrit(df[has], 1 - alpha / 2)
    low, high = ratio * np.exp(-tq * se), ratio * np.exp(tq * se)
    cls = np.full(common.size, "not significant", dtype=object)
    cls[~has] = "no interval"
    cls[has & (low > 1) & (ratio >= 1 + min_effect)] = "slower"
    cls[has & (high < 1) & (ratio <= 1 / (1 + min_effect))] = "faster"
    return Comparison(a=label_a or a.source, b=label_b or b.source, device_a=a.device, device_b=b.device,
                      confidence=confidence, correction=correction, min_effect=min_effect, relative=relative,
                      index=common, latency_a=la, latency_b=lb, ratio=ratio, low=low, high=high,
                      classification=cls, only_a=int(a.count - common.size), only_b=int(b.count - common.size),
                      protocol_differences=diffs)


def _pick_device(source: Source, device: str | None, other: Source) -> DeviceData:
    if device is not None:
        if device not in source.devices:
            raise SourceMismatchError(f"{source.path} has no device {device!r}; it has: {', '.join(source.devices) or 'none'}")
        return source.devices[device]
    if len(source.devices) == 1:
        return next(iter(source.devices.values()))
    shared = sorted(set(source.devices) & set(other.devices))
    if len(shared) == 1:
        return source.devices[shared[0]]
    raise SourceMismatchError(f"{source.path} has devices {', '.join(source.devices)}: name one with --device")


def _load_pair(a: str | Source, b: str | Source) -> tuple[Source, Source]:
    """Both sources; two paths are read side by side (B in a second process) where there are
    two CPUs, since parsing a campaign's journal is most of a comparison's time."""
    if isinstance(a, Source) or isinstance(b, Source) or (os.cpu_count() or 1) < 2:
        return (a if isinstance(a, Source) else load_source(a, raw=True),
                b if isinstance(b, Source) else load_source(b, raw=True))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        later = pool.submit(load_source, b, raw=True)
        sa = load_source(a, raw=True)
        return sa, later.result()


def compare(a: str | Source, b: str | Source, *, device: str | None = None, device_b: str | None = None,
            **options: Any) -> Comparison:
    """Compare two campaigns or releases (paths or loaded sources) on one device each.

    ``device`` picks the device in A (and in B unless ``device_b`` is given); with one device
    per source it may be omitted. Options: ``confidence``, ``correction``, ``min_effect``,
    ``relative``, ``allow_protocol_mismatch`` (see :func:`compare_devices`).
    """
    sa, sb = _load_pair(a, b)
    da = _pick_device(sa, device, sb)
    db = _pick_device(sb, device_b or device, sa)
    return compare_devices(da, db, label_a=sa.path, label_b=sb.path, **options)
