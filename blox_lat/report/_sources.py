"""Sources of a report: a campaign folder (``journal.jsonl``) or a release (``dataset.json``),
read into typed, array-backed records that the figures and the comparison share.

:class:`DeviceData` is one device's measurements as parallel numpy arrays (one row per model
measured ``ok``) plus what failed and why; :class:`Source` is one folder: its devices, and for a
release its static costs (params, FLOPs) and accuracy metrics over all 91,125 models. Anchor
levels and ``pred/<device>`` sections plug in through :attr:`DeviceData.anchor_levels` and
:attr:`Source.predictions`; they stay empty until the harness and the dataset write them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.report._errors import SourceError, SourceMismatchError

__all__ = ["AccuracyMetric", "DeviceData", "Source", "load_source", "load_sources"]

NUM_MODELS = 91125


@dataclass(frozen=True)
class DeviceData:
    """One device's results in one source; arrays are aligned, one entry per ``ok`` model.

    ``group_means`` is a (models x groups) matrix of the protocol's group means in ms (NaN
    padded), present when the source keeps them (campaigns always; releases with a
    ``bench-raw`` section when loaded with ``raw=True``). ``recorded_s`` is when each model
    was journaled (seconds since the epoch), ``order`` the journal position of each model.
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
    predictions: dict[str, Any] = field(default_factory=dict)  # pred/<device>, once releases have it
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


def _load_campaign(path: Path) -> Source:
    from blox_lat.harness import read_journal
    from blox_lat.space._table import space_table

    index_of_hash = space_table().index_of_hash
    envs: list[dict[str, Any]] = []
    ok: dict[int, tuple[dict[str, Any], int]] = {}
    failed: dict[int, str] = {}
    device: str | None = None
    protocol = profile = None
    position = 0
    for record in read_journal(path):
        kind = record.get("kind")
        if kind == "environment":
            envs.append(record)
            continue
        if kind != "measurement":
            continue
        name = record.get("device")
        if device is None:
            device = name
        elif name != device:
            raise SourceError(f"{path}: the journal mixes devices {device!r} and {name!r}; a campaign is one device")
        index = index_of_hash.get(record.get("model_hash"))
        if index is None:
            raise SourceMismatchError(f"{path}: {record.get('model_hash')!r} is not a Blox model hash "
                                      "(another search space?); report only Blox campaigns")
        position += 1
        if record.get("status") == "ok" and isinstance(record.get("measurement"), dict):
            if index not in ok:  # the first ok outcome counts, as when the campaign resumes
                ok[index] = (record, position)
                failed.pop(index, None)
                protocol = protocol or record.get("protocol")
                profile = profile or record.get("profile")
        elif index not in ok:
            failed[index] = str(record.get("reason") or "failed")
    if device is None:
        raise SourceError(f"{path}: the campaign has no measurements yet; run 'blox-lat measure' first")
    if protocol is None and envs:
        protocol = {k: v for k, v in (envs[0].get("protocol") or {}).items() if k != "cv_threshold"} or None
    items = sorted(ok.items(), key=lambda kv: kv[1][1])
    meas = [rec["measurement"] for _, (rec, _) in items]
    data = DeviceData(
        device=str(device), source=str(path), kind="campaign",
        index=np.asarray([i for i, _ in items], dtype=np.int64),
        latency_ms=np.asarray([m.get("latency_ms", np.nan) for m in meas], dtype=np.float64),
        cv=np.asarray([m.get("cv", np.nan) for m in meas], dtype=np.float64),
        noisy=np.asarray([bool(m.get("noisy")) for m in meas], dtype=bool),
        attempts=np.asarray([int(rec.get("attempts") or 1) for _, (rec, _) in items], dtype=np.int64),
        recorded_s=np.asarray([_seconds(rec.get("recorded_at")) for _, (rec, _) in items], dtype=np.float64),
        failed=failed, protocol=protocol, profile=profile, environments=tuple(envs),
        group_means=_pad([m.get("group_means_ms") or [m.get("latency_ms", np.nan)] for m in meas]),
    )
    return Source(path=str(path), kind="campaign", schema=1, devices={data.device: data})


def _column(sec: Any, name: str) -> np.ndarray:
    return sec.column_numpy(name)


def _load_release(path: Path, raw: bool) -> Source:
    import json

    import blox_lat.dataset as ds

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
        devices[device] = DeviceData(
            device=device, source=str(path), kind="release", index=index[is_ok],
            latency_ms=_column(sec, "latency_ms")[is_ok].astype(np.float64),
            cv=_column(sec, "cv")[is_ok].astype(np.float64),
            noisy=np.asarray(noisy[is_ok], dtype=bool) if noisy.dtype != object
            else np.asarray([bool(v) for v in noisy[is_ok]], dtype=bool),
            attempts=np.nan_to_num(_column(sec, "attempts")[is_ok].astype(np.float64), nan=1).astype(np.int64),
            recorded_s=np.asarray([_seconds(s) for s in recorded], dtype=np.float64),
            failed=failed, protocol=protocols[0] if len(protocols) == 1 else ({"protocols": protocols} if protocols else None),
            profile={"name": device, **(meta.get("profile") or {})}, environments=envs, group_means=group_means,
        )
    params = flops = None
    if "static" in rel.manifest["sections"]:
        sec = rel.section("static")
        idx = _column(sec, "model_index").astype(np.int64)
        params, flops = np.full(NUM_MODELS, np.nan), np.full(NUM_MODELS, np.nan)
        params[idx] = _column(sec, "params")
        flops[idx] = _column(sec, "flops")
    return Source(path=str(path), kind="release", schema=int(rel.schema_version), devices=devices,
                  params=params, flops=flops, accuracy=tuple(_accuracies(rel)), version=rel.version)


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
    if (p / "journal.jsonl").is_file() or (p.is_file() and p.suffix == ".jsonl"):
        return _load_campaign(p)
    if not p.exists():
        raise SourceError(f"{p} does not exist: give a campaign folder (journal.jsonl) or a release (dataset.json)")
    raise SourceError(f"{p} is neither a campaign folder (no journal.jsonl) nor a release (no dataset.json)")


def load_sources(paths: list[str | os.PathLike[str]], *, raw: bool = False) -> list[Source]:
    """Read every source and check they can share one page (same schema per kind)."""
    if not paths:
        raise SourceError("no source given: name at least one campaign folder or release")
    sources = [load_source(p, raw=raw) for p in paths]
    releases = [s for s in sources if s.kind == "release"]
    if len({s.schema for s in releases}) > 1:
        detail = ", ".join(f"{s.path} (schema {s.schema})" for s in releases)
        raise SourceMismatchError(f"releases of different schemas: {detail}; rebuild the older one with "
                                  "'blox-lat dataset build' so they share a schema")
    return sources
