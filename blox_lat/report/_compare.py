"""``compare``: two campaigns or releases on the same models, model by model.

For each model measured ``ok`` in both, the ratio ``r = latency_B / latency_A`` of one kind of
latency (``latency``: ``raw``, the protocol latency; ``corrected``, the level-corrected one;
``auto``, corrected when every model compared has it) and a confidence interval for it from the
two values' standard errors: on the log scale ``se = hypot(se_A / latency_A, se_B / latency_B)``
and ``CI = r * exp(+- q * se)``. A raw latency's standard error comes from its group means
(:func:`blox_lat.harness.trimmed_mean_se`); a corrected one's adds the uncertainty of its set's
level (and of the factor that put its campaign on the common level reference). ``q`` is the
normal quantile: on two runs of the same code on one host (the committed cpu-a / cpu-b
campaigns, 10 groups per model) the per-model 95 % intervals of the corrected latency cover
97.7 % of the 256 models, so a Student's t quantile for the few groups (which would have
tripled the simultaneous interval's width) is not needed.

Two campaign folders of the same device are put on ONE level reference first: the harness's
rule (:func:`blox_lat.harness.stand`) runs over the records of both, and each side takes the
values standing for its own campaigns, so the level shift between the campaigns and its
uncertainty are inside every corrected interval.

Many models are compared at once, so by default the intervals are *simultaneous*
(Bonferroni): each is built at ``1 - (1 - confidence) / models``, and the chance that *any*
unchanged model is called faster or slower is at most ``1 - confidence``; the per-model
intervals at ``confidence`` are given too. A model is ``slower`` when its interval lies above
1 and its ratio is at least ``1 + min_effect``, ``faster`` when its interval lies below 1 and
its ratio is at most ``1 / (1 + min_effect)``, otherwise ``not significant`` (unchanged). The
minimum effect guards against what the interval cannot see: group means of one run are not
fully independent (the host drifts within a run), so a tiny but "significant" change is most
often that drift. ``relative=True`` first divides every ratio by the level shift (the median
ratio), for comparisons across hosts or phones where the whole level moves and what matters is
which models moved against the rest.

Printed output speaks pyperf's language: each model's change reads ``1.10x slower (+10.0 %)``,
``1.05x faster (-4.76 %)`` or ``not significant``, all of them together
``Geometric mean: 1.02x slower (+2.00 %)``, and every printed number has three significant
digits (:func:`~blox_lat.report._stats.sig3`); JSON keeps full precision.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.report._errors import OutputError, ProtocolMismatchError, SourceError, SourceMismatchError
from blox_lat.report._sources import (
    LATENCY_LABELS,
    DeviceData,
    Source,
    is_campaign_path,
    load_campaigns_together,
    load_source,
)
from blox_lat.report._stats import sig3, spearman

__all__ = ["CompareOptions", "Comparison", "change_text", "compare", "compare_devices", "protocol_differences"]

CLASSES = ("slower", "faster", "not significant")


def change_text(ratio: float) -> str:
    """A ratio B/A in pyperf's words: ``1.10x slower (+10.0 %)``, ``1.05x faster (-4.76 %)``
    (the factor is A/B there, as pyperf writes it), ``no change`` at exactly 1."""
    r = float(ratio)
    if not math.isfinite(r) or r <= 0:
        return "n/a"
    if r == 1:
        return "no change"
    change = f"{'+' if r > 1 else ''}{sig3((r - 1) * 100)} %"
    return f"{sig3(r)}x slower ({change})" if r > 1 else f"{sig3(1 / r)}x faster ({change})"


def protocol_differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two protocol identities: ``{field: (a, b)}``."""
    a, b = a or {}, b or {}
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


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
    latency: str = "raw"  # which latency is compared: raw or corrected
    se_log: np.ndarray | None = None  # standard error of log(ratio) per model
    low95: np.ndarray | None = None  # per-model intervals at ``confidence`` (no correction)
    high95: np.ndarray | None = None
    classification95: np.ndarray | None = None
    level_reference: str | None = None  # the campaign whose level reference both sides share
    se_a: np.ndarray | None = None  # standard errors (ms) of latency_a and latency_b
    se_b: np.ndarray | None = None

    @property
    def models(self) -> int:
        return int(self.index.size)

    @property
    def per_model_confidence(self) -> float:
        alpha = 1 - self.confidence
        return 1 - (alpha / max(self.models, 1) if self.correction == "bonferroni" else alpha)

    def counts(self, per_model: bool = False) -> dict[str, int]:
        """Models per class, of the simultaneous intervals (or the per-model ones)."""
        cls = self.classification95 if per_model and self.classification95 is not None else self.classification
        return {c: int(np.count_nonzero(cls == c)) for c in (*CLASSES, "no interval")}

    @property
    def latency_label(self) -> str:
        return LATENCY_LABELS[self.latency]

    def headline(self) -> str:
        """One line like pyperf's: ``N slower, M faster, K unchanged (95 % simultaneous, ...)``."""
        c = self.counts()
        gm = self.geometric_mean()
        scope = "simultaneous" if self.correction == "bonferroni" else "per model"
        return (f"{c['slower']} slower, {c['faster']} faster, {c['not significant']} unchanged"
                + (f", {c['no interval']} without an interval" if c["no interval"] else "")
                + f" ({self.confidence:.0%} {scope}, {self.latency_label}); geometric mean ratio {sig3(gm)}x")

    def geometric_mean(self) -> float:
        """The geometric mean of the ratios B/A (NaN without models)."""
        logs = np.log(self.ratio)
        return float(np.exp(logs.mean())) if logs.size else float("nan")

    def overall(self) -> str:
        """All models in one line, as pyperf ends a comparison: ``Geometric mean: 1.02x slower (+2.00 %)``."""
        return f"Geometric mean: {change_text(self.geometric_mean())}"

    def change(self, i: int) -> str:
        """Model ``i``'s verdict: its change in pyperf's words when it is slower or faster,
        otherwise ``not significant`` (or ``no interval``)."""
        cls = str(self.classification[i])
        return change_text(float(self.ratio[i])) if cls in ("slower", "faster") else cls

    def summary(self) -> dict[str, Any]:
        logs = np.log(self.ratio)
        level = float(np.exp(np.median(logs))) if logs.size else float("nan")
        return {
            "a": self.a, "b": self.b, "device_a": self.device_a, "device_b": self.device_b,
            "models": self.models, "only_in_a": self.only_a, "only_in_b": self.only_b,
            "latency": self.latency, "latency_label": self.latency_label, "level_reference": self.level_reference,
            "confidence": self.confidence, "correction": self.correction,
            "per_model_confidence": self.per_model_confidence, "min_effect": self.min_effect,
            "relative_to_level": self.relative,
            "geometric_mean_ratio": self.geometric_mean(),
            "level_shift": level,
            "spearman": spearman(self.latency_a, self.latency_b),
            "counts": self.counts(),
            "counts_per_model": self.counts(per_model=True),
            "summary": self.headline(),
            "overall": self.overall(),
            "protocol_differences": {k: list(v) for k, v in self.protocol_differences.items()},
        }

    def _pick(self, which: str) -> np.ndarray:
        if which == "all":
            return np.arange(self.models)
        pick = np.flatnonzero(np.isin(self.classification, ("slower", "faster")))
        return pick[np.argsort(-np.abs(np.log(self.ratio[pick])), kind="stable")]

    def rows(self, which: str = "changed") -> list[dict[str, Any]]:
        """Per-model rows: ``changed`` (slower or faster, most changed first) or ``all``."""
        pick = self._pick(which)
        from blox_lat.space import space_table

        hashes = space_table().hashes

        def num(values: np.ndarray | None, i: int) -> float | None:
            return None if values is None or not math.isfinite(values[i]) else round(float(values[i]), 6)

        return [{"model_index": int(self.index[i]), "model_hash": hashes[int(self.index[i])], "latency": self.latency,
                 "latency_a_ms": round(float(self.latency_a[i]), 6), "latency_b_ms": round(float(self.latency_b[i]), 6),
                 "ratio": round(float(self.ratio[i]), 6), "se_log_ratio": num(self.se_log, i),
                 "ci_low": num(self.low, i), "ci_high": num(self.high, i),
                 "ci95_low": num(self.low95, i), "ci95_high": num(self.high95, i),
                 "classification": str(self.classification[i]), "change": self.change(i)} for i in pick.tolist()]

    def lines(self, which: str = "changed") -> list[str]:
        """One line per model as pyperf writes one per benchmark, three significant digits:
        ``model 17 (3f2a9c1b0d4e): 1.23 ms +- 0.00456 ms -> 1.35 ms +- 0.00501 ms: 1.10x slower
        (+9.76 %); CI 1.08 to 1.12`` (``+-``: the standard error; CI: the interval the
        classification used)."""
        from blox_lat.space import space_table

        hashes = space_table().hashes

        def value(values: np.ndarray, se: np.ndarray | None, i: int) -> str:
            text = f"{sig3(values[i])} ms"
            return text + (f" +- {sig3(se[i])} ms" if se is not None and math.isfinite(se[i]) else "")

        out = []
        for i in self._pick(which).tolist():
            ci = (f"; CI {sig3(self.low[i])} to {sig3(self.high[i])}"
                  if math.isfinite(self.low[i]) and math.isfinite(self.high[i]) else "")
            out.append(f"model {int(self.index[i])} ({hashes[int(self.index[i])][:12]}): "
                       f"{value(self.latency_a, self.se_a, i)} -> {value(self.latency_b, self.se_b, i)}: "
                       f"{self.change(i)}{ci}")
        return out

    def to_dict(self, which: str = "all") -> dict[str, Any]:
        return {**self.summary(), "rows": self.rows(which)}

    def to_text(self, which: str = "changed") -> str:
        """What ``blox-lat compare`` prints: the sources, the kind compared, the headline, the
        per-model counts, level shift and Spearman, then one line per model (:meth:`lines`) and
        the geometric mean in pyperf's words (:meth:`overall`)."""
        s = self.summary()
        only = f" ({self.only_a} only in A, {self.only_b} only in B)" if self.only_a or self.only_b else ""
        out = [f"A {self.a} ({self.device_a})  vs  B {self.b} ({self.device_b}): {self.models} models in common{only}",
               f"comparing the {self.latency_label}"
               + (f" (both on the level reference of campaign {self.level_reference})" if self.level_reference else ""),
               s["summary"]]
        p = s["counts_per_model"]
        out.append(f"minimum effect {self.min_effect:.0%}"
                   + (f"; per-model {self.confidence:.0%} intervals (no correction): {p['slower']} slower, "
                      f"{p['faster']} faster, {p['not significant']} unchanged" if self.correction == "bonferroni" else ""))
        out.append(f"level shift (median ratio B/A) {sig3(s['level_shift'])}, Spearman {sig3(s['spearman'])}")
        if self.protocol_differences:
            out.append("protocols differ: " + ", ".join(f"{k} {va} vs {vb}"
                                                        for k, (va, vb) in self.protocol_differences.items()))
        lines = self.lines(which)
        if lines:
            out += ["", f"{self.latency_label} in A -> in B (ms, +- standard error): change; CI of the ratio B/A",
                    *lines]
        out += ["", self.overall()]
        return "\n".join(out) + "\n"

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw :func:`~blox_lat.report._figures.compare_figure` into ``path``, PNG or SVG by its
        suffix, atomically (a reader never sees half a file; an existing file is replaced, as
        ``savefig`` would). Imports matplotlib, so only a comparison that is drawn pays for it.
        :class:`OutputError` for another suffix or a folder that cannot be written."""
        from blox_lat._fs import atomic_write

        target = Path(path)
        fmt = target.suffix.lower().lstrip(".")
        if fmt not in ("png", "svg"):
            raise OutputError(f"{target}: a plot is written as .png or .svg, not {target.suffix or 'no suffix'!r}; "
                              "name the file accordingly")
        if not target.parent.is_dir():
            raise OutputError(f"{target}: the folder {target.parent} does not exist; create it first")
        from blox_lat.report._figures import compare_figure

        fig = compare_figure(self)
        try:
            atomic_write(target, lambda fh: fig.savefig(fh, format=fmt, dpi=110))
        except OSError as exc:
            raise OutputError(f"cannot write {target} ({exc.strerror or type(exc).__name__}); "
                              "pick a writable folder") from None
        return target

    def to_markdown(self, which: str = "changed") -> str:
        s = self.summary()
        c = s["counts"]
        lines = [f"**{s['b']}** vs **{s['a']}** ({s['device_b']} / {s['device_a']}), {self.latency_label}: "
                 f"{s['models']} models, "
                 f"{c['slower']} slower, {c['faster']} faster, {c['not significant']} not significant"
                 + (f", {c['no interval']} without an interval" if c["no interval"] else "")
                 + f" ({_confidence_text(self)}, minimum effect {self.min_effect:.0%}).", "",
                 f"{self.overall()}; level shift (median ratio) {sig3(s['level_shift'])}, "
                 f"Spearman {sig3(s['spearman'])}.", ""]
        rows = self.rows(which)
        if rows:
            lines += [f"| model | hash | A (ms, {self.latency}) | B (ms, {self.latency}) | B/A | CI | change |",
                      "|---:|---|---:|---:|---:|---|---|"]
            for r in rows:
                ci = "n/a" if r["ci_low"] is None else f"{sig3(r['ci_low'])} to {sig3(r['ci_high'])}"
                lines.append(f"| {r['model_index']} | `{r['model_hash'][:12]}` | {sig3(r['latency_a_ms'])} | "
                             f"{sig3(r['latency_b_ms'])} | {sig3(r['ratio'])} | {ci} | {r['change']} |")
        return "\n".join(lines) + "\n"


def _confidence_text(c: Comparison) -> str:
    if c.correction == "bonferroni":
        return f"{c.confidence:.0%} simultaneous confidence (Bonferroni over {c.models} models)"
    return f"{c.confidence:.0%} confidence per model, no correction for {c.models} comparisons"


@dataclass(frozen=True)
class CompareOptions:
    """How two sides are compared (the module docstring gives the method): the ``latency`` kind
    (``raw``, ``corrected`` or ``auto``: corrected when every model compared has a
    level-corrected latency on both sides), the ``confidence``, the ``correction``
    (``bonferroni`` or ``none``), the ``min_effect``, ``relative`` (divide out the level shift)
    and whether sides measured with different protocols may be compared. Checked here."""

    latency: str = "auto"
    confidence: float = 0.95
    correction: str = "bonferroni"
    min_effect: float = 0.05
    relative: bool = False
    allow_protocol_mismatch: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise SourceError(f"confidence must be between 0 and 1 (exclusive), got {self.confidence}")
        if self.correction not in ("bonferroni", "none"):
            raise SourceError(f"correction must be 'bonferroni' or 'none', got {self.correction!r}")
        if self.min_effect < 0:
            raise SourceError(f"minimum effect must be >= 0, got {self.min_effect}")


def compare_devices(a: DeviceData, b: DeviceData, options: CompareOptions | None = None, *,
                    label_a: str | None = None, label_b: str | None = None,
                    level_reference: str | None = None) -> Comparison:
    """Compare one device's results in two sources (see the module docstring for the method),
    as ``options`` say (default :class:`CompareOptions`). ``label_a`` / ``label_b`` name the
    sides (default: their sources); ``level_reference`` names the campaign whose level
    reference both sides share, when the caller put them on one."""
    from scipy.special import ndtri  # scipy.stats itself imports for seconds

    from blox_lat.harness import LatencyKindError, resolve_latency_kind

    options = options or CompareOptions()
    latency, confidence, correction = options.latency, options.confidence, options.correction
    min_effect, relative = options.min_effect, options.relative
    diffs = protocol_differences(a.protocol, b.protocol)
    if diffs and not options.allow_protocol_mismatch:
        detail = ", ".join(f"{k} {va} vs {vb}" for k, (va, vb) in diffs.items())
        raise ProtocolMismatchError(f"{label_a or a.source} and {label_b or b.source} were measured with different "
                                    f"protocols ({detail}); pass --allow-protocol-mismatch to compare anyway")
    common, ia, ib = np.intersect1d(a.index, b.index, assume_unique=True, return_indices=True)
    if common.size == 0:
        raise SourceMismatchError(f"{label_a or a.source} and {label_b or b.source} have no model in common on "
                                  f"{a.device}/{b.device}; compare campaigns of the same models")
    both = np.concatenate([a.corrected_ms[ia], b.corrected_ms[ib]])
    try:
        kind = resolve_latency_kind(latency, [float(v) if np.isfinite(v) else None for v in both.tolist()])
    except LatencyKindError as exc:
        raise SourceError(f"{label_a or a.source} vs {label_b or b.source}: {exc}") from None
    la, lb = a.latency(kind)[ia], b.latency(kind)[ib]
    sa, sb = a.latency_se(kind)[ia], b.latency_se(kind)[ib]
    ratio = lb / la
    level = float(np.exp(np.median(np.log(ratio))))
    if relative:
        ratio = ratio / level
    ra, rb = sa / la, sb / lb  # relative standard errors
    se = np.hypot(ra, rb)
    has = np.isfinite(se)

    def interval(alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = float(ndtri(1 - alpha / 2))
        low, high = ratio * np.exp(-q * se), ratio * np.exp(q * se)
        cls = np.full(common.size, "not significant", dtype=object)
        cls[~has] = "no interval"
        cls[has & (low > 1) & (ratio >= 1 + min_effect)] = "slower"
        cls[has & (high < 1) & (ratio <= 1 / (1 + min_effect))] = "faster"
        return low, high, cls

    alpha = 1 - confidence
    low95, high95, cls95 = interval(alpha)
    low, high, cls = interval(alpha / common.size) if correction == "bonferroni" else (low95, high95, cls95)
    return Comparison(a=label_a or a.source, b=label_b or b.source, device_a=a.device, device_b=b.device,
                      confidence=confidence, correction=correction, min_effect=min_effect, relative=relative,
                      index=common, latency_a=la, latency_b=lb, ratio=ratio, low=low, high=high,
                      classification=cls, only_a=int(a.count - common.size), only_b=int(b.count - common.size),
                      protocol_differences=diffs, latency=kind, se_log=se, low95=low95, high95=high95,
                      classification95=cls95, level_reference=level_reference if kind == "corrected" else None,
                      se_a=sa, se_b=sb)


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


def _campaign_pair(a: str, b: str) -> tuple[Source, Source, str | None]:
    """Two campaign folders on ONE level reference per device (:func:`load_campaigns_together`),
    and the campaign whose reference both share (when one device is in both)."""
    (sa, sb), references = load_campaigns_together([a, b])
    shared = set(sa.devices) & set(sb.devices)
    return sa, sb, references.get(next(iter(shared))) if len(shared) == 1 else None


def _load_pair(a: str | Source, b: str | Source) -> tuple[Source, Source, str | None]:
    """Both sources (and the campaign whose level reference they share, if any). Two campaign
    folders are read together onto one level reference; otherwise two paths are read side by
    side (B in a second process) where there are two CPUs."""
    if is_campaign_path(a) and is_campaign_path(b):
        return _campaign_pair(str(a), str(b))
    if isinstance(a, Source) or isinstance(b, Source) or (os.cpu_count() or 1) < 2:
        return (a if isinstance(a, Source) else load_source(a, raw=True),
                b if isinstance(b, Source) else load_source(b, raw=True), None)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        later = pool.submit(load_source, b, raw=True)
        sa = load_source(a, raw=True)
        return sa, later.result(), None


def compare(a: str | Source, b: str | Source, *, device: str | None = None, device_b: str | None = None,
            **options: Any) -> Comparison:
    """Compare two campaigns or releases (paths or loaded sources) on one device each.

    ``device`` picks the device in A (and in B unless ``device_b`` is given); with one device
    per source it may be omitted. Options: ``latency`` (``auto``, ``raw``, ``corrected``),
    ``confidence``, ``correction``, ``min_effect``, ``relative``, ``allow_protocol_mismatch``
    (see :class:`CompareOptions`). Two campaign folders of one device are compared on one level
    reference (the module docstring says how).
    """
    sa, sb, reference = _load_pair(a, b)
    da = _pick_device(sa, device, sb)
    db = _pick_device(sb, device_b or device, sa)
    shared = reference if da.device == db.device else None
    return compare_devices(da, db, CompareOptions(**options), label_a=sa.path, label_b=sb.path,
                           level_reference=shared)
