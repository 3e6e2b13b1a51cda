"""``stats``: one model's measurement in full, as ``pyperf stats`` and ``pyperf hist`` show a
benchmark, and the anchor runs of a campaign.

:func:`model_stats` reads one model from a campaign folder (its journal, through the harness's
one reader and rule: :func:`~blox_lat.harness.read_records`, :func:`~blox_lat.harness.stand`,
so the record shown is the one ``report``, ``compare`` and ``dataset build`` use) or from a
release with a ``bench-raw/<device>`` section (the samples). It gives the raw samples'
distribution (numpy's linear percentiles, population standard deviation as the harness's
``std_ms``), the protocol's statistics (the latency: inter-quartile mean of the group means;
its standard error, :func:`~blox_lat.harness.trimmed_mean_se`; a normal 95 % interval), the
group means, cv and flags, the level and level-corrected latency where the model was timed
with anchors, and a histogram of the samples.

:func:`anchor_stats` gives the same for a campaign's anchor models: each anchor's latency
over its runs, and the level of every run over time (on the device's common level reference).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.report._errors import SourceError, SourceMismatchError
from blox_lat.report._stats import sig3, significant

__all__ = ["AnchorStats", "ModelStats", "anchor_stats", "histogram", "model_stats", "sample_summary"]

#: two-sided 95 % normal quantile (the harness's noise rule uses the same)
Z95 = statistics.NormalDist().inv_cdf(0.975)
#: bins of a histogram, as ``pyperf hist`` draws about 20
BINS = 20
#: the longest bar of a histogram, in characters
BAR = 40
#: percentiles a summary gives (numpy's default, linear)
PERCENTILES = (5, 25, 50, 75, 95)


def sample_summary(values: Any) -> dict[str, Any]:
    """n, min, p5, p25, median, p75, p95, max, mean, std (population, as the harness's
    ``std_ms``) and cv of ``values`` (ms); the numbers None when there are none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"n": 0, **{k: None for k in ("min_ms", "p5_ms", "p25_ms", "median_ms", "p75_ms", "p95_ms", "max_ms",
                                             "mean_ms", "std_ms", "cv")}}
    p5, p25, p50, p75, p95 = (float(x) for x in np.percentile(v, PERCENTILES))
    mean, std = float(v.mean()), float(v.std())
    return {"n": int(v.size), "min_ms": float(v.min()), "p5_ms": p5, "p25_ms": p25, "median_ms": p50, "p75_ms": p75,
            "p95_ms": p95, "max_ms": float(v.max()), "mean_ms": mean, "std_ms": std,
            "cv": std / mean if mean > 0 else None}


def histogram(values: Any, bins: int = BINS) -> list[dict[str, Any]]:
    """Equal-width bins over ``values``: ``low_ms``, ``high_ms``, ``count`` each (numpy's bins)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return []
    counts, edges = np.histogram(v, bins=bins if v.max() > v.min() else 1)
    return [{"low_ms": float(lo), "high_ms": float(hi), "count": int(c)}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts)]


def _histogram_lines(hist: list[dict[str, Any]], unit: str = "ms") -> list[str]:
    """``pyperf hist``'s drawing: each bin's centre, its count and a bar of ``#``."""
    if not hist:
        return []
    top = max(h["count"] for h in hist) or 1
    width = len(str(top))
    centres = _distinct([(h["low_ms"] + h["high_ms"]) / 2 for h in hist])
    pad = max(len(c) for c in centres)
    suffix = f" {unit}" if unit else ""
    return [f"{c.rjust(pad)}{suffix}: {str(h['count']).rjust(width)} {'#' * round(BAR * h['count'] / top)}".rstrip()
            for c, h in zip(centres, hist)]


def _distinct(values: list[float]) -> list[str]:
    """``values`` with three significant digits, or as few more as tell them all apart (bin
    centres 0.05 % apart would otherwise read alike)."""
    for digits in range(3, 10):
        texts = [significant(v, digits) for v in values]
        if len(set(texts)) == len(texts):
            break
    return texts


def _summary_lines(s: dict[str, Any], unit: str = "ms") -> list[str]:
    if not s["n"]:
        return ["  none kept"]
    rows = [("min", s["min_ms"]), ("p5", s["p5_ms"]), ("p25", s["p25_ms"]), ("median", s["median_ms"]),
            ("p75", s["p75_ms"]), ("p95", s["p95_ms"]), ("max", s["max_ms"]), ("mean", s["mean_ms"]),
            ("std", s["std_ms"])]
    u = f" {unit}" if unit else ""
    out = [f"  {name:<7}{sig3(value)}{u}" for name, value in rows]
    if s["cv"] is not None:
        out[-1] += f" (cv {sig3(s['cv'] * 100)} %)"
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return x if np.isfinite(x) else None


@dataclass(frozen=True)
class ModelStats:
    """One model's measurement on one device in one source (see the module docstring).

    ``record`` holds where the standing record came from (``recorded_at``, ``campaign_id``,
    ``attempts``, ``records``: how many the source holds for the model, ``origin``:
    ``file:line`` for a journal). Latencies are ms; None where the source has no value."""

    source: str
    source_kind: str  # campaign or release
    device: str
    model_index: int
    model_hash: str
    status: str
    reason: str | None
    record: dict[str, Any]
    protocol: dict[str, Any] | None
    samples_ms: np.ndarray = field(repr=False)
    group_means_ms: np.ndarray = field(repr=False)
    runs_per_group: int | None
    latency_ms: float | None
    se_ms: float | None
    cv: float | None
    group_cv: float | None
    noisy: bool
    flags: tuple[str, ...]
    level: float | None = None
    corrected_ms: float | None = None
    corrected_se_ms: float | None = None
    level_reference: str | None = None  # the campaign whose level reference the level is on

    @property
    def ci95_ms(self) -> tuple[float, float] | None:
        """The latency's normal 95 % interval from its standard error."""
        if self.latency_ms is None or self.se_ms is None:
            return None
        return self.latency_ms - Z95 * self.se_ms, self.latency_ms + Z95 * self.se_ms

    def samples(self) -> dict[str, Any]:
        return sample_summary(self.samples_ms)

    def histogram(self, bins: int = BINS) -> list[dict[str, Any]]:
        return histogram(self.samples_ms, bins)

    def to_dict(self) -> dict[str, Any]:
        ci = self.ci95_ms
        return {"source": self.source, "source_kind": self.source_kind, "device": self.device,
                "model_index": self.model_index, "model_hash": self.model_hash, "status": self.status,
                "reason": self.reason, "record": self.record, "protocol": self.protocol,
                "samples": self.samples(), "latency_ms": self.latency_ms, "se_ms": self.se_ms,
                "ci95_ms": None if ci is None else list(ci), "groups": int(self.group_means_ms.size),
                "runs_per_group": self.runs_per_group, "group_means_ms": self.group_means_ms.tolist(),
                "cv": self.cv, "group_cv": self.group_cv, "noisy": self.noisy, "flags": list(self.flags),
                "level": self.level, "latency_corrected_ms": self.corrected_ms,
                "latency_corrected_se_ms": self.corrected_se_ms, "level_reference": self.level_reference,
                "histogram": self.histogram(), "samples_ms": self.samples_ms.tolist()}

    def to_text(self) -> str:
        """What ``blox-lat stats`` prints; three significant digits."""
        r = self.record
        out = [f"model {self.model_index} ({self.model_hash}) on {self.device}, from {self.source} ({self.source_kind})",
               f"standing record: {self.status}" + (f" ({self.reason})" if self.reason else "")
               + (f", recorded {r['recorded_at']}" if r.get("recorded_at") else "")
               + (f", campaign {r['campaign_id']}" if r.get("campaign_id") else "")
               + (f", attempts {r['attempts']}" if r.get("attempts") else "")
               + (f", records of the model {r['records']}" if r.get("records") else "")
               + (f" ({r['origin']})" if r.get("origin") else "")]
        if self.status != "ok":
            return "\n".join(out) + "\n"
        p = self.protocol or {}
        if p.get("groups") or p.get("runs_per_group"):
            out.append(f"protocol: {p.get('groups', '?')} groups x {p.get('runs_per_group', '?')} runs"
                       + (f", interleaved {p['interleave']} models" if (p.get("interleave") or 1) > 1 else ""))
        s = self.samples()
        out += ["", f"samples: {s['n']}", *_summary_lines(s)]
        out += ["", f"protocol statistics (inter-quartile mean of {self.group_means_ms.size} group means):",
                f"  latency {sig3(self.latency_ms)} ms"
                + (f" +- {sig3(self.se_ms)} ms (standard error)" if self.se_ms is not None else "")]
        if self.ci95_ms is not None and self.latency_ms:
            half = Z95 * self.se_ms
            out.append(f"  95 % interval: latency +- {sig3(half)} ms (+- {sig3(100 * half / self.latency_ms)} %)")
        if self.group_means_ms.size:
            out.append("  group means (ms): " + " ".join(sig3(v) for v in self.group_means_ms))
        out.append(f"  cv {sig3(self.cv * 100) + ' %' if self.cv is not None else 'n/a'}, "
                   f"group cv {sig3(self.group_cv * 100) + ' %' if self.group_cv is not None else 'n/a'}, "
                   f"flags: {', '.join(self.flags) or 'none'}" + (" (noisy)" if self.noisy else ""))
        if self.level is not None:
            out.append(f"  level {sig3(self.level)}"
                       + (f" (on the reference of campaign {self.level_reference})" if self.level_reference else "")
                       + (f", level-corrected latency {sig3(self.corrected_ms)} ms" if self.corrected_ms else "")
                       + (f" +- {sig3(self.corrected_se_ms)} ms" if self.corrected_se_ms else ""))
        else:
            out.append("  no level: the model was timed without anchors")
        hist = _histogram_lines(self.histogram())
        if hist:
            out += ["", f"histogram of the {s['n']} samples:", *hist]
        return "\n".join(out) + "\n"


def _source_kind(path: Path) -> str:
    if (path / "dataset.json").is_file() or (path.is_file() and path.name == "dataset.json"):
        return "release"
    if (path / "journal.jsonl").is_file() or (path / "journal.jsonl.gz").is_file() or (
            path.is_file() and (path.suffix == ".jsonl" or path.name.endswith(".jsonl.gz"))):
        return "campaign"
    if not path.exists():
        raise SourceError(f"{path} does not exist: give a campaign folder (journal.jsonl) or a release (dataset.json)")
    raise SourceError(f"{path} is neither a campaign folder (no journal.jsonl) nor a release (no dataset.json)")


def _pick_device(path: Path, devices: list[str], device: str | None) -> str:
    if device is not None:
        if device not in devices:
            raise SourceMismatchError(f"{path} has no device {device!r}; it has: {', '.join(devices) or 'none'}")
        return device
    if not devices:
        raise SourceError(f"{path} has no measurements yet; run 'blox-lat measure' first")
    if len(devices) > 1:
        raise SourceMismatchError(f"{path} has devices {', '.join(devices)}: name one with --device")
    return devices[0]


def _not_in(path: Path, index: int, model_hash: str, device: str, indices: list[int]) -> SourceMismatchError:
    shown = ", ".join(str(i) for i in sorted(indices)[:5]) + (", ..." if len(indices) > 5 else "")
    return SourceMismatchError(f"{path} has no record of model {index} ({model_hash[:12]}) on {device}; it has "
                               f"{len(indices)} models" + (f" (indices {shown})" if indices else ""))


def model_stats(path: str | Path, model: Any, *, device: str | None = None) -> ModelStats:
    """One model's measurement from a campaign folder or a release (see the module docstring).

    ``model`` is anything :func:`blox_lat.space.resolve` takes (index, hash, vector, blocks);
    ``device`` picks the device where the source has several."""
    from blox_lat.space import resolve

    arch = resolve(model)
    p = Path(path)
    if _source_kind(p) == "campaign":
        return _campaign_stats(p, arch.index, arch.hash, device)
    return _release_stats(p, arch.index, arch.hash, device)


def _campaign_stats(path: Path, index: int, model_hash: str, device: str | None) -> ModelStats:
    from blox_lat.harness import stand
    from blox_lat.report._sources import read_campaign_records

    standings = stand(read_campaign_records(path))
    dev = _pick_device(path, standings.devices, device)
    models = standings.of(dev)
    standing = models.get(model_hash)
    if standing is None:
        from blox_lat.space import space_table

        index_of = space_table().index_of_hash
        raise _not_in(path, index, model_hash, dev, [index_of[h] for h in models if h in index_of])
    rec = standing.record
    m = rec.measurement
    record = {"recorded_at": rec.recorded_at, "campaign_id": rec.campaign_id, "attempts": rec.attempts,
              "records": standing.seen, "origin": rec.origin}
    samples = np.asarray(m.samples_ms if m is not None and m.samples_ms is not None else [], dtype=np.float64)
    means = np.asarray((m.group_means_ms or ()) if m is not None else (), dtype=np.float64)
    reference = standings.references.get(dev)
    return ModelStats(
        source=str(path), source_kind="campaign", device=dev, model_index=index, model_hash=model_hash,
        status=rec.status, reason=rec.reason, record=record, protocol=rec.protocol, samples_ms=samples,
        group_means_ms=means, runs_per_group=None if m is None else m.runs_per_group,
        latency_ms=rec.latency_ms, se_ms=standing.se_ms, cv=None if m is None else m.cv,
        group_cv=None if m is None else m.group_cv, noisy=rec.noisy, flags=() if m is None else m.flags,
        level=standing.level, corrected_ms=standing.corrected_ms, corrected_se_ms=standing.corrected_se_ms,
        level_reference=None if reference is None or standing.level is None else str(reference.campaign_id))


def _release_stats(path: Path, index: int, model_hash: str, device: str | None) -> ModelStats:
    import blox_lat.dataset as ds
    from blox_lat.harness import trimmed_mean_se

    rel = ds.open(path)
    dev = _pick_device(path, rel.devices, device)
    sections = rel.manifest["sections"]
    if f"bench-raw/{dev}" not in sections:
        raise SourceError(f"{path} has no bench-raw/{dev} section (it was built without the samples); "
                          "give the campaign folder instead, or rebuild the release with its raw samples")
    sec = rel.section(f"bench/{dev}")
    row = sec.rows[index]
    if row < 0:
        raise _not_in(path, index, model_hash, dev, [i for i, r in enumerate(sec.rows) if r >= 0])
    b = sec.row_dict(row)
    raw_sec = rel.section(f"bench-raw/{dev}")
    raw_row = raw_sec.rows[index]
    raw = raw_sec.row_dict(raw_row) if raw_row >= 0 else {}
    samples = np.asarray(raw.get("samples_ms") or [], dtype=np.float64)
    means = np.asarray(raw.get("group_means_ms") or [], dtype=np.float64)
    se = _num(b.get("latency_se_ms"))
    if se is None and means.size > 1:
        se = trimmed_mean_se(means.tolist())
    meta = sec.entry.get("metadata") or {}
    protocols = meta.get("protocols") or []
    reference = meta.get("level_reference") or {}
    level = _num(b.get("level"))
    record = {"recorded_at": b.get("recorded_at"), "campaign_id": b.get("campaign_id"),
              "attempts": b.get("attempts"), "records": b.get("records"), "origin": None}
    ok = b.get("status") == "ok"
    return ModelStats(
        source=str(path), source_kind="release", device=dev, model_index=index, model_hash=model_hash,
        status=str(b.get("status")), reason=b.get("reason"), record=record,
        protocol=protocols[0] if len(protocols) == 1 else None, samples_ms=samples, group_means_ms=means,
        runs_per_group=b.get("runs_per_group"), latency_ms=_num(b.get("latency_ms")) if ok else None, se_ms=se,
        cv=_num(b.get("cv")), group_cv=_num(b.get("group_cv")), noisy=bool(b.get("noisy")),
        flags=tuple(b.get("flags") or ()), level=level, corrected_ms=_num(b.get("latency_corrected_ms")),
        corrected_se_ms=_num(b.get("latency_corrected_se_ms")),
        level_reference=str(reference["campaign_id"]) if level is not None and reference.get("campaign_id") else None)


# -- anchors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorStats:
    """A campaign's anchor runs on one device: ``runs`` (one per anchors line, in time order:
    ``recorded_at``, ``hours`` since the first, ``set_id``, ``attempt``, ``trigger``,
    ``members``, ``level`` on the common reference, ``latencies_ms`` by anchor hash) and
    ``anchors`` (index, hash, reference latency, and its latencies over the runs)."""

    source: str
    device: str
    level_reference: str | None
    anchors: list[dict[str, Any]]
    runs: list[dict[str, Any]]

    def levels(self) -> np.ndarray:
        return np.asarray([r["level"] for r in self.runs if r["level"] is not None], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        levels = self.levels()
        return {"source": self.source, "device": self.device, "level_reference": self.level_reference,
                "anchors": [{**a, "latency": sample_summary(a["latencies_ms"]),
                             "histogram": histogram(a["latencies_ms"])} for a in self.anchors],
                "levels": {**_unitless(sample_summary(levels)), "histogram": _unitless_bins(histogram(levels))},
                "runs": self.runs}

    def to_text(self) -> str:
        out = [f"anchors of {self.source} on {self.device}: {len(self.anchors)} anchor model"
               + ("s" if len(self.anchors) != 1 else "") + f", {len(self.runs)} runs"
               + (f", levels on the reference of campaign {self.level_reference}" if self.level_reference else "")]
        for a in self.anchors:
            s = sample_summary(a["latencies_ms"])
            out += ["", f"anchor model {a['model_index']} ({a['model_hash']}): reference {sig3(a['reference_ms'])} ms, "
                        f"latency over {s['n']} runs:", *_summary_lines(s)]
            hist = _histogram_lines(histogram(a["latencies_ms"]))
            if len(hist) > 1:
                out += [f"  histogram of its {s['n']} latencies:", *("    " + h for h in hist)]
        levels = self.levels()
        s = sample_summary(levels)
        out += ["", f"levels over {s['n']} runs:", *_summary_lines(s, unit="")]
        out += ["", "runs (hours since the first; level; each anchor's latency in ms):"]
        order = [a["model_hash"] for a in self.anchors]
        for r in self.runs:
            lat = " ".join(sig3(r["latencies_ms"][h]) if h in r["latencies_ms"] else "-" for h in order)
            out.append(f"  {r['hours']:7.2f} h  set {r['set_id']}/{r['attempt']}"
                       + (f" ({r['trigger']})" if r.get("trigger") else "")
                       + f"  level {sig3(r['level']) if r['level'] is not None else 'n/a'}  {lat}")
        return "\n".join(out) + "\n"


def _unitless(s: dict[str, Any]) -> dict[str, Any]:
    return {k[:-3] if k.endswith("_ms") else k: v for k, v in s.items()}


def _unitless_bins(bins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"low": b["low_ms"], "high": b["high_ms"], "count": b["count"]} for b in bins]


def anchor_stats(path: str | Path, *, device: str | None = None, model: Any = None) -> AnchorStats:
    """The anchor runs of a campaign folder (see :class:`AnchorStats`); ``model`` (anything
    :func:`blox_lat.space.resolve` takes) keeps one anchor model."""
    from blox_lat.harness import AnchorsRecord, CampaignReference, common_reference
    from blox_lat.report._sources import _stamps, read_campaign_records

    p = Path(path)
    if _source_kind(p) != "campaign":
        raise SourceError(f"{p} is a release: it keeps each model's level (its level column) but not the anchor "
                          "runs; give the campaign folder for --anchors")
    lines = [r for r in read_campaign_records(p) if isinstance(r, AnchorsRecord)]
    devices = sorted({r.device for r in lines})
    if not devices or (device is not None and device not in devices):
        raise SourceError(f"{p} has no anchor runs{f' on {device}' if device else ''}: it was measured without "
                          "anchors (blox-lat measure --anchors)")
    dev = _pick_device(p, devices, device)
    lines = sorted((r for r in lines if r.device == dev), key=lambda r: str(r.recorded_at or ""))
    refs = {}
    for r in lines:
        refs.setdefault(str(r.campaign_id), CampaignReference(str(r.campaign_id), tuple(r.hashes),
                                                             tuple(float(x) for x in r.reference_ms),
                                                             str(r.recorded_at or "")))
    reference, factors = common_reference(list(refs.values()))
    first = refs[reference.campaign_id] if reference is not None else next(iter(refs.values()))
    wanted = list(first.anchors)
    if model is not None:
        from blox_lat.space import resolve

        arch = resolve(model)
        if arch.hash not in wanted:
            from blox_lat.space import space_table

            index_of = space_table().index_of_hash
            raise SourceMismatchError(f"model {arch.index} is not an anchor of {p} on {dev}; its anchors are "
                                      + ", ".join(str(index_of.get(h, h)) for h in wanted))
        wanted = [arch.hash]
    seconds = _stamps([str(r.recorded_at or "") for r in lines])
    t0 = float(np.nanmin(seconds)) if np.isfinite(seconds).any() else float("nan")
    runs = []
    for r, t in zip(lines, seconds.tolist()):
        factor = factors.get(str(r.campaign_id))
        runs.append({"recorded_at": r.recorded_at, "hours": (t - t0) / 3600 if np.isfinite(t - t0) else float("nan"),
                     "campaign_id": r.campaign_id, "set_id": r.set_id, "attempt": r.attempt, "trigger": r.trigger,
                     "members": r.members, "level": None if factor is None else float(r.level) * factor,
                     "latencies_ms": {h: v for h, v in zip(r.hashes, r.latencies_ms) if h in wanted}})
    anchors = []
    for i, h in enumerate(first.anchors):
        if h not in wanted:
            continue
        index = next((a.get("model_index") for r in lines for a in r.anchors if a.get("model_hash") == h), None)
        anchors.append({"model_index": index, "model_hash": h, "reference_ms": first.reference_ms[i],
                        "latencies_ms": [run["latencies_ms"][h] for run in runs if h in run["latencies_ms"]]})
    return AnchorStats(source=str(p), device=dev, level_reference=None if reference is None else reference.campaign_id,
                       anchors=anchors, runs=runs)
