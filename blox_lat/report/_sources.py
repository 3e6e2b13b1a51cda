"""Sources of a report: a campaign folder (``journal.jsonl``) or a release (``dataset.json``),
read into typed, array-backed records that the figures and the comparison share.

A campaign is read through the harness's one reader and one rule:
:func:`blox_lat.harness.read_records` (every line validated once; a NaN, zero or negative
latency is refused naming ``file:line``) and :func:`blox_lat.harness.stand` (what stands for a
model: ok > noisy > failed, then the latest), with its levels on the device's common level
reference. A release carries the same values as columns (``level``, ``latency_corrected_ms``
and, where the release has them, ``latency_se_ms`` / ``latency_corrected_se_ms``).

:class:`DeviceData` is one device's measurements as parallel numpy arrays (one row per model
measured ``ok``) plus what failed and why; :class:`Source` is one folder: its devices, and for a
release its static costs (params, FLOPs) and accuracy metrics over all 91,125 models. A
campaign's ``anchors`` lines (a release's ``level`` column) fill :attr:`DeviceData.anchor_levels`
(the device's level through the campaign) and a release's ``pred/<device>`` sections
:attr:`Source.predictions`.
"""

from __future__ import annotations

import gc
import os
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.report._errors import SourceError, SourceMismatchError
from blox_lat.space import NUM_MODELS

__all__ = ["LATENCY_LABELS", "AccuracyMetric", "DeviceData", "Source", "load_source", "load_sources"]

#: how a figure, a table or a sentence names each kind of latency
LATENCY_LABELS = {"raw": "raw latency", "corrected": "level-corrected latency"}


@dataclass(frozen=True)
class DeviceData:
    """One device's results in one source; arrays are aligned, one entry per ``ok`` model.

    ``group_means`` is a (models x groups) matrix of the protocol's group means in ms (NaN
    padded), present when the source keeps them (campaigns always; releases with a
    ``bench-raw`` section when loaded with ``raw=True``). ``recorded_s`` is when each model
    was journaled (seconds since the epoch), ``order`` the journal position of each model.

    ``latency_ms`` is the protocol (raw) latency; ``level`` the level of the set that timed the
    model and ``corrected_ms`` the level-corrected latency, both on the device's common level
    reference ``level_reference`` (the earliest anchored campaign's; NaN for a model timed
    without anchors); ``se_ms`` and ``corrected_se_ms`` their standard errors (the corrected one
    includes the level's uncertainty; NaN where unknown). :meth:`shown` gives the copy whose
    ``latency_ms`` is the kind a report shows, naming it in ``latency_kind``.
    """

    device: str
    source: str
    kind: str
    index: np.ndarray
    latency_ms: np.ndarray
    cv: np.ndarray
    noisy: np.ndarray
    attempts: np.ndarray
    recorded_s: np.ndarray
    failed: dict[int, str]
    protocol: dict[str, Any] | None
    profile: dict[str, Any] | None
    environments: tuple[dict[str, Any], ...] = ()
    group_means: np.ndarray | None = field(default=None, repr=False)
    anchor_levels: np.ndarray | None = None  # (time s, level) of the anchor models, once journaled
    thermal: tuple[dict[str, Any], ...] = ()  # per-model temperatures, once journaled
    level: np.ndarray | None = field(default=None, repr=False)
    corrected_ms: np.ndarray | None = field(default=None, repr=False)
    se_ms: np.ndarray | None = field(default=None, repr=False)
    corrected_se_ms: np.ndarray | None = field(default=None, repr=False)
    level_reference: dict[str, Any] | None = None
    latency_kind: str = "raw"  # which latency ``latency_ms`` holds: raw or corrected
    raw_ms: np.ndarray | None = field(default=None, repr=False)  # the raw latency, whatever ``latency_ms`` shows
    #: the models whose set ran through a noise burst no redo repaired (measurement flag ``burst``)
    burst: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.index.size
        if self.raw_ms is None:
            object.__setattr__(self, "raw_ms", self.latency_ms)
        for name in ("level", "corrected_ms", "se_ms", "corrected_se_ms"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(n, np.nan))

    def latency(self, kind: str) -> np.ndarray:
        """The ``raw`` or ``corrected`` latency of every ok model (NaN where it has none)."""
        return self.corrected_ms if kind == "corrected" else self.raw_ms

    def latency_se(self, kind: str) -> np.ndarray:
        """Standard error of :meth:`latency` ``kind`` (ms; NaN where unknown)."""
        return self.corrected_se_ms if kind == "corrected" else self.se_ms

    def latency_kind_for(self, requested: str) -> str:
        """``raw`` or ``corrected`` for ``--latency requested`` (``auto``: corrected when every
        ok model has a level-corrected latency)."""
        from blox_lat.harness import resolve_latency_kind

        values = [None if not np.isfinite(v) else float(v) for v in self.corrected_ms.tolist()]
        return resolve_latency_kind(requested, values)

    def shown(self, kind: str) -> DeviceData:
        """This device with ``latency_ms`` holding the ``kind`` latency (``raw`` or ``corrected``)."""
        if kind == self.latency_kind:
            return self
        return replace(self, latency_ms=self.corrected_ms, latency_kind="corrected")

    @property
    def count(self) -> int:
        return int(self.index.size)

    def latency_by_index(self) -> np.ndarray:
        """Latency (ms) over all 91,125 model indices, NaN where not measured."""
        full = np.full(NUM_MODELS, np.nan)
        full[self.index] = self.latency_ms
        return full


@dataclass(frozen=True)
class AccuracyMetric:
    """An accuracy-like metric over all model indices (NaN where absent); higher is better."""

    name: str
    label: str
    values: np.ndarray


@dataclass(frozen=True)
class Source:
    """One report source: its devices and, for a release, static costs and accuracies."""

    path: str
    kind: str  # "campaign" or "release"
    schema: int
    devices: dict[str, DeviceData]
    params: np.ndarray | None = None
    flops: np.ndarray | None = None
    accuracy: tuple[AccuracyMetric, ...] = ()
    predictions: dict[str, Any] = field(default_factory=dict)  # device -> its pred/<device> section's arrays
    version: str | None = None


def _seconds(stamp: Any) -> float:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except (TypeError, ValueError):
        return float("nan")


def _pad(rows: list[list[float]]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 0))
    width = max(len(r) for r in rows)
    if all(len(r) == width for r in rows):
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _stamps(stamps: list[Any]) -> np.ndarray:
    """ISO 8601 stamps -> seconds since the epoch (NaN where unreadable); vectorised for UTC."""
    if stamps and all(isinstance(t, str) and t.endswith("+00:00") for t in stamps):
        try:
            return np.array([t[:-6] for t in stamps], dtype="datetime64[us]").astype(np.int64) / 1e6
        except ValueError:
            pass
    return np.asarray([_seconds(t) for t in stamps], dtype=np.float64)


def read_campaign_records(path: Path) -> list[Any]:
    """The typed records of a campaign's journal (:func:`blox_lat.harness.read_records`: every
    line validated once, a bad one named by ``file:line``); the cyclic garbage collector is
    paused meanwhile (91,125 records of nested containers otherwise trigger collections that
    cost more than the parsing)."""
    from blox_lat.harness import read_records

    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return read_records(path)
    except OSError as exc:
        raise SourceError(f"cannot read {path} ({exc.strerror}); check the path and its permissions") from None
    finally:
        if gc_was_on:
            gc.enable()


def _load_campaign(path: Path) -> Source:
    """One campaign folder: its records, and what stands for each model by the harness's one
    rule (:func:`blox_lat.harness.stand`), levels on the device's common reference."""
    from blox_lat.harness import stand

    records = read_campaign_records(path)
    standings = stand(records)
    devices = standings.devices
    if len(devices) > 1:
        raise SourceError(f"{path}: the journal mixes devices {devices[0]!r} and {devices[1]!r}; a campaign is one device")
    if not devices:
        raise SourceError(f"{path}: the campaign has no measurements yet; run 'blox-lat measure' first")
    data = campaign_device_data(path, records, standings, devices[0], standings.of(devices[0]))
    return Source(path=str(path), kind="campaign", schema=1, devices={data.device: data})


def campaign_device_data(path: Path, records: list[Any], standings: Any, device: str, chosen: dict[str, Any]
                         ) -> DeviceData:
    """:class:`DeviceData` of ``device`` from ``chosen`` (model hash -> its
    :class:`~blox_lat.harness.Standing`) with the environments and anchors lines of ``records``."""
    from blox_lat.harness import BURST_FLAG, AnchorsRecord, EnvironmentRecord
    from blox_lat.space import space_table

    index_of_hash = space_table().index_of_hash
    ok: list[tuple[int, Any]] = []
    failed: dict[int, str] = {}
    protocol = profile = None
    factors: dict[str, float] = {}  # campaign -> the factor that put its levels on the common reference
    for model, standing in chosen.items():
        index = index_of_hash.get(model)
        rec = standing.record
        if index is None:
            raise SourceMismatchError(f"{rec.origin or path}: {model!r} is not a Blox model hash "
                                      "(another search space?); report only Blox campaigns")
        if standing.ok:
            ok.append((index, standing))
            protocol = protocol or rec.protocol
            profile = profile or rec.profile
            if standing.level is not None and rec.level:
                factors.setdefault(str(rec.campaign_id), standing.level / rec.level)
        else:
            failed[index] = str(rec.reason or "failed")
    envs = [r.to_dict() for r in records if isinstance(r, EnvironmentRecord) and r.device in (device, None)]
    if protocol is None and envs:
        protocol = {k: v for k, v in (envs[0].get("protocol") or {}).items() if k != "cv_threshold"} or None
    levels = [(a.recorded_at, a.level * factors.get(str(a.campaign_id), 1.0)) for a in records
              if isinstance(a, AnchorsRecord) and a.device == device]

    def column(get: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.asarray([get(s) for _i, s in ok], dtype=dtype).reshape(len(ok))

    def nan(value: Any) -> float:
        return float("nan") if value is None else float(value)

    reference = standings.references.get(device)
    data = DeviceData(
        device=str(device), source=str(path), kind="campaign",
        index=np.fromiter((i for i, _s in ok), dtype=np.int64, count=len(ok)),
        latency_ms=column(lambda s: s.latency_ms), cv=column(lambda s: nan(s.record.measurement.cv)),
        noisy=column(lambda s: s.record.noisy, bool), attempts=column(lambda s: int(s.record.attempts or 1), np.int64),
        burst=column(lambda s: BURST_FLAG in s.record.measurement.flags, bool),
        recorded_s=_stamps([s.record.recorded_at for _i, s in ok]), failed=failed, protocol=protocol,
        profile=profile, environments=tuple(envs),
        group_means=_pad([list(s.record.measurement.group_means_ms or (s.latency_ms,)) for _i, s in ok]),
        anchor_levels=_anchor_levels(levels),
        level=column(lambda s: nan(s.level)), corrected_ms=column(lambda s: nan(s.corrected_ms)),
        se_ms=column(lambda s: nan(s.se_ms)), corrected_se_ms=column(lambda s: nan(s.corrected_se_ms)),
        level_reference=None if reference is None else {
            "campaign_id": reference.campaign_id, "anchors": list(reference.anchors),
            "reference_ms": list(reference.reference_ms)},
    )
    _check_latencies(data, "drop or re-measure that model's journal line")
    return data


def _check_latencies(data: DeviceData, fix: str) -> None:
    """Refuse a latency that no measurement can give (zero, negative, NaN, infinite): it can
    only come from an edited or damaged source, and every ratio, logarithm and log-scale axis
    downstream would turn it into numpy warnings, bogus results or a crash."""
    bad = ~(np.isfinite(data.latency_ms) & (data.latency_ms > 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
        raise SourceError(f"{data.source}: model {int(data.index[k])} on {data.device} has latency "
                          f"{float(data.latency_ms[k])!r} ms{more}, but a measured latency is a positive finite "
                          f"number; {fix}")


def _anchor_levels(levels: list[tuple[Any, float]]) -> np.ndarray | None:
    """(seconds, level) of the journal's anchor runs in time order; None without any."""
    if not levels:
        return None
    table = np.stack([_stamps([t for t, _ in levels]), np.array([v for _, v in levels])], axis=1)
    table = table[np.isfinite(table[:, 0])]
    return table[np.argsort(table[:, 0], kind="stable")] if len(table) else None


def _column(sec: Any, name: str) -> np.ndarray:
    return sec.column_numpy(name)


def _load_release(path: Path, raw: bool) -> Source:
    import json

    import blox_lat.dataset as ds
    from blox_lat.harness import BURST_FLAG

    rel = ds.open(path)
    devices: dict[str, DeviceData] = {}
    for device in rel.devices:
        sec = rel.section(f"bench/{device}")
        index = _column(sec, "model_index").astype(np.int64)
        status = _column(sec, "status")
        is_ok = np.asarray([s == "ok" for s in status], dtype=bool)
        reasons = _column(sec, "reason")
        failed = {int(i): str(r or "failed") for i, r in zip(index[~is_ok], reasons[~is_ok])}
        meta = sec.entry.get("metadata") or {}
        protocols = meta.get("protocols") or []
        recorded = _column(sec, "recorded_at")[is_ok]
        envs: tuple[dict[str, Any], ...] = ()
        if f"measure-env/{device}" in rel.manifest["sections"]:
            env_sec = rel.section(f"measure-env/{device}")
            envs = tuple(json.loads(r) for r in env_sec.column_numpy("record") if r)
        group_means = None
        if raw and f"bench-raw/{device}" in rel.manifest["sections"]:
            raw_sec = rel.section(f"bench-raw/{device}")
            rows = raw_sec.rows
            lists = raw_sec.column_numpy("group_means_ms")
            group_means = _pad([list(lists[rows[i]]) if rows[i] >= 0 and lists[rows[i]] is not None else []
                                for i in index[is_ok].tolist()])
        noisy = _column(sec, "noisy")
        names = {c["name"] for c in sec.entry.get("columns", [])}

        def optional(name: str, sec: Any = sec, names: set = names, is_ok: np.ndarray = is_ok) -> np.ndarray:
            """A float column of the ok rows; NaN where null, all NaN where the release lacks it."""
            if name not in names:
                return np.full(int(is_ok.sum()), np.nan)
            return _column(sec, name)[is_ok].astype(np.float64)

        latency = _column(sec, "latency_ms")[is_ok].astype(np.float64)
        level, se = optional("level"), optional("latency_se_ms")
        if group_means is not None and np.isnan(se).any():  # a release without the column: from its group means
            se = np.where(np.isnan(se), _group_means_se(group_means), se)
        devices[device] = DeviceData(
            device=device, source=str(path), kind="release", index=index[is_ok],
            latency_ms=latency,
            cv=_column(sec, "cv")[is_ok].astype(np.float64),
            noisy=np.asarray(noisy[is_ok], dtype=bool) if noisy.dtype != object
            else np.asarray([bool(v) for v in noisy[is_ok]], dtype=bool),
            attempts=np.nan_to_num(_column(sec, "attempts")[is_ok].astype(np.float64), nan=1).astype(np.int64),
            burst=np.asarray([BURST_FLAG in (f if f is not None else ()) for f in _column(sec, "flags")[is_ok]], dtype=bool),
            recorded_s=_stamps(list(recorded)),
            failed=failed, protocol=protocols[0] if len(protocols) == 1 else ({"protocols": protocols} if protocols else None),
            profile={"name": device, **(meta.get("profile") or {})}, environments=envs, group_means=group_means,
            anchor_levels=_release_levels(_stamps(list(recorded)), level),
            level=level, corrected_ms=optional("latency_corrected_ms"), se_ms=se,
            corrected_se_ms=optional("latency_corrected_se_ms"), level_reference=meta.get("level_reference"),
        )
        _check_latencies(devices[device], "rebuild the release from campaigns without it")
    params = flops = None
    if "static" in rel.manifest["sections"]:
        sec = rel.section("static")
        idx = _column(sec, "model_index").astype(np.int64)
        params, flops = np.full(NUM_MODELS, np.nan), np.full(NUM_MODELS, np.nan)
        params[idx] = _column(sec, "params")
        flops[idx] = _column(sec, "flops")
    return Source(path=str(path), kind="release", schema=int(rel.schema_version), devices=devices,
                  params=params, flops=flops, accuracy=tuple(_accuracies(rel)), version=rel.version,
                  predictions=_predictions(rel))


def _group_means_se(group_means: np.ndarray) -> np.ndarray:
    """Standard error of each row's protocol latency from its group means (NaN-padded rows),
    as the harness computes it (:func:`blox_lat.harness.trimmed_mean_se`); NaN with < 2 groups."""
    from blox_lat.harness import trimmed_mean_se

    out = np.full(group_means.shape[0], np.nan)
    for i, row in enumerate(group_means):
        values = row[np.isfinite(row)]
        if values.size > 1:
            out[i] = trimmed_mean_se(values.tolist())
    return out


def _release_levels(seconds: np.ndarray, level: np.ndarray) -> np.ndarray | None:
    """(seconds, level) through the campaigns from a release's ``level`` column: one point per
    set (the models sharing a level), at its first model's time, in time order; None without any."""
    keep = np.isfinite(seconds) & np.isfinite(level)
    if not keep.any():
        return None
    values, inverse = np.unique(level[keep], return_inverse=True)
    first = np.full(values.size, np.inf)
    np.minimum.at(first, inverse, seconds[keep])
    order = np.argsort(first, kind="stable")
    return np.stack([first[order], values[order]], axis=1)


def _predictions(rel: Any) -> dict[str, Any]:
    """device -> the release's ``pred/<device>`` section as arrays (index, latency_ms, low_ms,
    high_ms, ``trained``: the model was in the predictor's training set) and its metadata
    (``latency``: which kind it predicts; ``cv``: the predictor's cross-validated figures),
    what the report compares with the measured ``bench/<device>``."""
    out: dict[str, Any] = {}
    for device in rel.predicted_devices:
        sec = rel.section(f"pred/{device}")
        meta = sec.entry.get("metadata") or {}
        measured = _column(sec, "measured")
        out[device] = {"index": _column(sec, "model_index").astype(np.int64),
                       "latency_ms": _column(sec, "pred_ms").astype(np.float64),
                       "low_ms": _column(sec, "lo_ms").astype(np.float64),
                       "high_ms": _column(sec, "hi_ms").astype(np.float64),
                       "trained": np.asarray([bool(v) for v in measured], dtype=bool),
                       "latency": meta.get("latency") or "raw", "level": meta.get("level"),
                       "cv": meta.get("cv") or {}, "method": meta.get("method"), "family": meta.get("family"),
                       "training_campaigns": list((meta.get("training") or {}).get("campaigns") or [])}
    return out


def _accuracies(rel: Any) -> list[AccuracyMetric]:
    """base (test top-1, mean over seeds), finetune (test top-1) and distill (LANA score)."""
    metrics: list[AccuracyMetric] = []
    names = rel.manifest["sections"]
    seeds = [s for s in rel.seeds]
    if seeds:
        stack = []
        for seed in seeds:
            sec = rel.section(f"base/{seed}")
            values = np.full(NUM_MODELS, np.nan)
            values[_column(sec, "model_index").astype(np.int64)] = _column(sec, "test_top1")
            stack.append(values)
        with warnings.catch_warnings():  # models no seed trained: NaN, as intended
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.vstack(stack), axis=0) if len(stack) > 1 else stack[0]
        label = "test top-1 (%)" + (f", mean of {len(seeds)} seeds" if len(seeds) > 1 else "")
        metrics.append(AccuracyMetric("base", label, mean))
    for name in sorted(n for n in names if n.startswith("finetune/")):
        sec = rel.section(name)
        values = np.full(NUM_MODELS, np.nan)
        values[_column(sec, "model_index").astype(np.int64)] = _column(sec, "test_top1")
        metrics.append(AccuracyMetric(name, f"test top-1 after fine-tuning {name.split('/', 1)[1]} (%)", values))
    for name in sorted(n for n in names if n.startswith("distill/")):
        sec = rel.section(name)
        values = np.full(NUM_MODELS, np.nan)
        values[_column(sec, "model_index").astype(np.int64)] = _column(sec, "delta_sum").astype(np.float64)
        if np.isfinite(values).any():
            metrics.append(AccuracyMetric(name, f"LANA score {name.split('/', 1)[1]}: sum of accuracy deltas (%)", values))
    return metrics


def load_source(path: str | os.PathLike[str], *, raw: bool = False) -> Source:
    """Read a campaign folder or a release; ``raw`` also reads a release's group means."""
    p = Path(path)
    if (p / "dataset.json").is_file() or (p.is_file() and p.name == "dataset.json"):
        return _load_release(p, raw)
    if (p / "journal.jsonl").is_file() or (p / "journal.jsonl.gz").is_file() or (
            p.is_file() and (p.suffix == ".jsonl" or p.name.endswith(".jsonl.gz"))):
        return _load_campaign(p)
    if not p.exists():
        raise SourceError(f"{p} does not exist: give a campaign folder (journal.jsonl) or a release (dataset.json)")
    raise SourceError(f"{p} is neither a campaign folder (no journal.jsonl) nor a release (no dataset.json)")


def is_campaign_path(path: Any) -> bool:
    """Whether ``path`` names a campaign (a folder with a journal, or a journal file), not a release."""
    if isinstance(path, Source):
        return False
    p = Path(path)
    return not (p / "dataset.json").is_file() and not (p.is_file() and p.name == "dataset.json") and (
        (p / "journal.jsonl").is_file() or (p / "journal.jsonl.gz").is_file()
        or (p.is_file() and (p.suffix == ".jsonl" or p.name.endswith(".jsonl.gz"))))


def load_campaigns_together(paths: list[Any]) -> tuple[list[Source], dict[str, str]]:
    """Campaign folders on ONE level reference per device: the harness's rule
    (:func:`blox_lat.harness.stand`) over the records of all of them, each source taking what
    stands for its own campaigns; a campaign id that an earlier source uses too (a copied
    journal) is told apart first. Also returns, per device, the campaign whose reference they share."""
    from dataclasses import replace

    from blox_lat.harness import AnchorsRecord, MeasurementRecord, stand

    def campaigns(records: list[Any]) -> set[str]:
        return {str(r.campaign_id) for r in records if isinstance(r, (MeasurementRecord, AnchorsRecord))}

    per_source: list[list[Any]] = []
    seen: set[str] = set()
    for k, path in enumerate(paths):
        records = read_campaign_records(Path(path))
        if campaigns(records) & seen:
            records = [replace(r, campaign_id=f"{r.campaign_id}@{k + 1}") if isinstance(r, (MeasurementRecord, AnchorsRecord))
                       and str(r.campaign_id) in seen else r for r in records]
        seen |= campaigns(records)
        per_source.append(records)
    union = [r for records in per_source for r in records]
    standings = stand(union)
    order = {id(r): i for i, r in enumerate(union) if isinstance(r, MeasurementRecord)}
    sources = [_campaign_source(Path(path), records, campaigns(records), standings, order)
               for path, records in zip(paths, per_source)]
    references = {d: str(ref.campaign_id) for d, ref in standings.references.items() if ref is not None}
    return sources, references


def _campaign_source(path: Path, records: list[Any], mine: set[str], standings: Any, order: dict[int, int]) -> Source:
    """One campaign folder's :class:`Source` from standings over several campaigns (its own models)."""
    from blox_lat.harness import MeasurementRecord, standing_key

    devices = sorted({r.device for r in records if isinstance(r, MeasurementRecord)})
    if not devices:
        raise SourceError(f"{path}: the campaign has no measurements yet; run 'blox-lat measure' first")
    if len(devices) > 1:
        raise SourceError(f"{path}: the journal mixes devices {devices[0]!r} and {devices[1]!r}; a campaign is one device")
    device = devices[0]
    chosen = {}
    for model, by_campaign in standings.per_campaign.get(device, {}).items():
        own = [s for c, s in by_campaign.items() if c in mine]
        if own:
            chosen[model] = max(own, key=lambda s: standing_key(s.record, order[id(s.record)]))
    data = campaign_device_data(path, records, standings, device, chosen)
    return Source(path=str(path), kind="campaign", schema=1, devices={device: data})


def load_sources(paths: list[str | os.PathLike[str]], *, raw: bool = False) -> list[Source]:
    """Read every source and check they can share one page (same schema per kind). Several
    campaign folders are read together, on one level reference per device (as ``compare`` does)."""
    if not paths:
        raise SourceError("no source given: name at least one campaign folder or release")
    campaign_at = [i for i, p in enumerate(paths) if is_campaign_path(p)]
    together = dict(zip(campaign_at, load_campaigns_together([paths[i] for i in campaign_at])[0])) \
        if len(campaign_at) > 1 else {}
    sources = [together[i] if i in together else load_source(p, raw=raw) for i, p in enumerate(paths)]
    releases = [s for s in sources if s.kind == "release"]
    if len({s.schema for s in releases}) > 1:
        detail = ", ".join(f"{s.path} (schema {s.schema})" for s in releases)
        raise SourceMismatchError(f"releases of different schemas: {detail}; rebuild the older one with "
                                  "'blox-lat dataset build' so they share a schema")
    return sources
