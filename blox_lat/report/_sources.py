"""Sources of a report: a campaign folder (``journal.jsonl``) or a release (``dataset.json``),
read into typed, array-backed records that the figures and the comparison share.

:class:`DeviceData` is one device's measurements as parallel numpy arrays (one row per model
measured ``ok``) plus what failed and why; :class:`Source` is one folder: its devices, and for a
release its static costs (params, FLOPs) and accuracy metrics over all 91,125 models. A
campaign's ``anchors`` lines fill :attr:`DeviceData.anchor_levels` (the device's level through
the campaign) and a release's ``pred/<device>`` sections :attr:`Source.predictions`.
"""

from __future__ import annotations

import gc
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.report._errors import SourceError, SourceMismatchError
from blox_lat.space import NUM_MODELS

__all__ = ["AccuracyMetric", "DeviceData", "Source", "load_source", "load_sources"]



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


_SAMPLES = re.compile(rb'"samples_ms"\s*:\s*\[[^\]]*\]')  # literal first: the regex engine skips ahead


def _journal_records(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's records like :func:`blox_lat.harness.read_journal` (torn final line skipped,
    damaged or newer-schema lines refused), without the raw samples: a report needs the group
    means, and parsing every sample was most of the time (a line holds 100 to 1,000 of them).
    Replacing ``"samples_ms":[...]`` by ``"samples_ms":0`` in the bytes first keeps each line
    valid JSON."""
    from blox_lat import _json as fast_json
    from blox_lat.harness import JOURNAL_SCHEMA, JournalError, read_journal

    journal = path / "journal.jsonl" if path.is_dir() else path
    try:
        data = journal.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {journal} ({exc.strerror}); check the path and its permissions") from None
    data = _SAMPLES.sub(b'"samples_ms":0', data[: data.rfind(b"\n") + 1])
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = fast_json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or int(record.get("schema", 0) or 0) > JOURNAL_SCHEMA:
            yield from read_journal(journal)  # the reference reader names the damaged line
            raise JournalError(f"{journal}: unreadable journal line")  # pragma: no cover
        yield record


def _stamps(stamps: list[Any]) -> np.ndarray:
    """ISO 8601 stamps -> seconds since the epoch (NaN where unreadable); vectorised for UTC."""
    if stamps and all(isinstance(t, str) and t.endswith("+00:00") for t in stamps):
        try:
            return np.array([t[:-6] for t in stamps], dtype="datetime64[us]").astype(np.int64) / 1e6
        except ValueError:
            pass
    return np.asarray([_seconds(t) for t in stamps], dtype=np.float64)


def _load_campaign(path: Path) -> Source:
    """One campaign; the cyclic garbage collector is paused meanwhile (91,125 records of
    nested containers otherwise trigger collections that cost more than the parsing)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _read_campaign(path)
    finally:
        if gc_was_on:
            gc.enable()


def _read_campaign(path: Path) -> Source:
    from blox_lat.space import space_table

    index_of_hash = space_table().index_of_hash
    envs: list[dict[str, Any]] = []
    ok: dict[int, tuple] = {}  # index -> (latency, cv, noisy, attempts, recorded_at, group means)
    failed: dict[int, str] = {}
    device: str | None = None
    protocol = profile = None
    levels: list[tuple[Any, float]] = []  # (recorded_at, level) of each anchor run
    for record in _journal_records(path):
        kind = record.get("kind")
        if kind == "environment":
            envs.append(record)
            continue
        if kind == "anchors" and isinstance(record.get("level"), (int, float)):
            levels.append((record.get("recorded_at"), float(record["level"])))
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
        m = record.get("measurement")
        if record.get("status") == "ok" and isinstance(m, dict):
            if index not in ok:  # the first ok outcome counts, as when the campaign resumes
                latency = m.get("latency_ms", np.nan)
                ok[index] = (latency, m.get("cv", np.nan), bool(m.get("noisy")), int(record.get("attempts") or 1),
                             record.get("recorded_at"), m.get("group_means_ms") or [latency])
                failed.pop(index, None)
                protocol = protocol or record.get("protocol")
                profile = profile or record.get("profile")
        elif index not in ok:
            failed[index] = str(record.get("reason") or "failed")
    if device is None:
        raise SourceError(f"{path}: the campaign has no measurements yet; run 'blox-lat measure' first")
    if protocol is None and envs:
        protocol = {k: v for k, v in (envs[0].get("protocol") or {}).items() if k != "cv_threshold"} or None
    columns = list(zip(*ok.values())) or [()] * 6  # journal order: a model enters at its first ok record
    data = DeviceData(
        device=str(device), source=str(path), kind="campaign",
        index=np.fromiter(ok.keys(), dtype=np.int64, count=len(ok)),
        latency_ms=np.asarray(columns[0], dtype=np.float64), cv=np.asarray(columns[1], dtype=np.float64),
        noisy=np.asarray(columns[2], dtype=bool), attempts=np.asarray(columns[3], dtype=np.int64),
        recorded_s=_stamps(list(columns[4])), failed=failed, protocol=protocol, profile=profile,
        environments=tuple(envs), group_means=_pad(list(columns[5])), anchor_levels=_anchor_levels(levels),
    )
    _check_latencies(data, "drop or re-measure that model's journal line")
    return Source(path=str(path), kind="campaign", schema=1, devices={data.device: data})


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
            recorded_s=_stamps(list(recorded)),
            failed=failed, protocol=protocols[0] if len(protocols) == 1 else ({"protocols": protocols} if protocols else None),
            profile={"name": device, **(meta.get("profile") or {})}, environments=envs, group_means=group_means,
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


def _predictions(rel: Any) -> dict[str, Any]:
    """device -> the release's ``pred/<device>`` section as arrays (index, latency_ms, low_ms,
    high_ms), what the report compares with the measured ``bench/<device>``."""
    out: dict[str, Any] = {}
    for device in rel.predicted_devices:
        sec = rel.section(f"pred/{device}")
        out[device] = {"index": _column(sec, "model_index").astype(np.int64),
                       "latency_ms": _column(sec, "pred_ms").astype(np.float64),
                       "low_ms": _column(sec, "lo_ms").astype(np.float64),
                       "high_ms": _column(sec, "hi_ms").astype(np.float64)}
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
