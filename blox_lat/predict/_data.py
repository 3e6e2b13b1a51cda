"""Training data: measured latencies of one device setting and protocol, from journals or a release.

A source is a campaign folder (``journal.jsonl``, or ``journal.jsonl.gz``), a folder holding
several campaign folders, a journal file, or a release (``dataset.json``) whose
``bench/<device>`` section is read. Journals are read with :func:`blox_lat.harness.read_records`
(a NaN, zero or negative latency is refused there, naming ``file:line`` and the field) and the
value of each model is its standing record's, by the one rule of
:func:`blox_lat.harness.stand` (ok > noisy > failed, then the latest ``recorded_at``): the same
number ``dataset build`` puts in a release's ``bench/<device>`` for that model. A model measured
in several campaigns keeps each campaign's value in ``repeats`` (test-retest figures).

``latency`` chooses the value (:func:`blox_lat.harness.resolve_latency_kind`): ``raw`` (the
protocol latency, ``latency_ms``), ``corrected`` (``latency_ms`` over the level of its set, on
the device's common level reference: ``latency_corrected_ms`` of a release) or ``auto``
(corrected when every model has one, raw otherwise).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.harness import (
    JOURNAL_NAME,
    LATENCY_KINDS,
    DeviceSetting,
    JournalError,
    LatencyKindError,
    MeasurementRecord,
    ProtocolIdentity,
    journal_path,
    read_records,
    resolve_latency_kind,
    stand,
)
from blox_lat.predict._errors import MixedInputError, PredictError

#: models in the space (model indices are 0..MODELS-1)
MODELS = 91125


@dataclass(frozen=True)
class TrainingSet:
    """Latencies (ms) of distinct models on one device setting under one protocol."""

    indices: np.ndarray  # (n,) model indices, sorted
    latency_ms: np.ndarray  # (n,) one value per model (its standing record's)
    device: str
    setting: dict  # the profile without its name (runtime, format, precision, batch, ...)
    protocol: dict | None  # the protocol identity (interleaving fields spelled out)
    latency: str  # "raw" or "corrected"
    sources: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()
    repeats: dict = field(default_factory=dict, compare=False)  # index -> {campaign: ms}

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.latency_ms):
            raise PredictError("training set: indices and latencies differ in length")
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~(np.isfinite(self.latency_ms) & (self.latency_ms > 0)))
        if len(bad):
            k = int(bad[0])
            raise PredictError(f"training set: the latency of model {int(self.indices[k])} is {self.latency_ms[k]}; "
                               "latencies must be finite positive milliseconds")

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, keep: np.ndarray) -> TrainingSet:
        keep = np.asarray(keep)
        return TrainingSet(self.indices[keep], self.latency_ms[keep], self.device, self.setting, self.protocol,
                           self.latency, self.sources, self.campaigns,
                           {int(i): self.repeats[int(i)] for i in self.indices[keep] if int(i) in self.repeats})

    def summary(self) -> dict[str, Any]:
        y = self.latency_ms
        return {"models": len(self), "campaigns": list(self.campaigns), "sources": list(self.sources),
                "latency": self.latency, "measured_twice": int(sum(len(v) > 1 for v in self.repeats.values())),
                "latency_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())}
                if len(y) else None}


def from_arrays(indices, latency_ms, *, device: str = "synthetic", setting: dict | None = None,
                protocol: dict | None = None, latency: str = "raw") -> TrainingSet:
    """A training set from plain arrays (tests, benchmarks, other tools)."""
    idx = np.asarray(indices, dtype=np.int64)
    y = np.asarray(latency_ms, dtype=float)
    order = np.argsort(idx, kind="stable")
    if len(np.unique(idx)) != len(idx):
        raise PredictError("training set: a model index appears twice; average repeats first")
    return TrainingSet(idx[order], y[order], device, dict(setting or {}), protocol, latency)


def _journals(source: Path) -> list[Path]:
    """The journals a source names: a journal file, a campaign folder's journal (plain or
    ``.gz``), or every campaign folder's journal below a folder."""
    if source.is_file():
        return [source]
    if journal_path(source).is_file():
        return [journal_path(source)]
    found = sorted({journal_path(p.parent) for name in (JOURNAL_NAME, JOURNAL_NAME + ".gz")
                    for p in source.rglob(name)})
    if not found:
        raise PredictError(f"{source}: no journal.jsonl inside; pass a campaign folder (runs/DEVICE) or a release")
    return found


_DAMAGED_RELEASE = "a damaged release: 'blox-lat dataset verify' checks it; rebuild it from the journals"


def _milliseconds(where: str, key: str, value: Any) -> float:
    """A release's ``value`` if it is a finite positive number, else :class:`PredictError` saying what it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise PredictError(f"{where}: {key} is {repr(value)[:40]}; must be a finite positive number of milliseconds "
                       f"({_DAMAGED_RELEASE})")


class _Scope:
    """The one device, device setting and protocol of a fit: the first seen (or the one asked
    for), and a :class:`MixedInputError` when a source brings another."""

    def __init__(self, device: str | None) -> None:
        self.want = device
        self.device: str | None = None
        self.setting: DeviceSetting | None = None
        self.protocol: ProtocolIdentity | None = None
        self.first = ""

    def takes(self, device: str, setting: DeviceSetting, protocol: ProtocolIdentity | None, where: str) -> bool:
        """Whether measurements of ``device`` belong to the fit (after checking they can be mixed in)."""
        if self.want is not None and device != self.want:
            return False
        if self.device is None:
            self.device, self.setting, self.protocol, self.first = device, setting, protocol, where
            return True
        if device != self.device:
            raise MixedInputError(f"measurements of two devices: {self.device!r} ({self.first}) and {device!r} "
                                  f"({where}); fit one device at a time (--device NAME picks one)")
        if setting != self.setting:
            raise MixedInputError(f"device {device!r} measured with two settings ({self.first}: "
                                  f"{self.setting.to_dict()}; {where}: {setting.to_dict()}); "
                                  "fit each setting separately")
        if protocol is not None and self.protocol is not None and protocol != self.protocol:
            mine, theirs = self.protocol.to_dict(), protocol.to_dict()
            diff = ", ".join(f"{k} {mine.get(k)} vs {v}" for k, v in theirs.items() if mine.get(k) != v)
            raise MixedInputError(f"measurements from two protocols ({diff}; {self.first} vs {where}); "
                                  "fit campaigns of one protocol together")
        if self.protocol is None:
            self.protocol = protocol
        return True


@dataclass
class _Value:
    """A model's value from one source: its standing (rank, recorded_at), raw and corrected
    latencies, and the per-campaign values behind it (test-retest figures)."""

    key: tuple
    raw: float
    corrected: float | None
    per_campaign: dict[str, tuple[float, float | None]]


def _model_index(rec: MeasurementRecord) -> int:
    index = rec.model_index
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MODELS:
        raise PredictError(f"{rec.origin}: model_index is {repr(index)[:40]}; must be a model index "
                           f"0..{MODELS - 1} (a damaged or edited journal line: restore the file from a "
                           "backup or remove that line)")
    return index


def _from_journals(paths: list[Path], scope: _Scope) -> dict[int, _Value]:
    """The standing value of every model in ``paths`` (read and stood together, in order)."""
    records: list[Any] = []
    for path in paths:
        try:
            records.extend(read_records(path))
        except JournalError as exc:
            raise PredictError(str(exc)) from None
    if not records:
        return {}
    for rec in records:
        if isinstance(rec, MeasurementRecord) and rec.ok and scope.takes(rec.device, rec.setting,
                                                                           rec.protocol_identity, str(rec.origin)):
            _model_index(rec)
    if scope.device is None:
        return {}
    standings = stand(records)
    out: dict[int, _Value] = {}
    for model, standing in standings.of(scope.device).items():
        if not standing.ok:
            continue
        rec = standing.record
        per_campaign = {campaign: (s.latency_ms, s.corrected_ms)
                        for campaign, s in standings.per_campaign[scope.device][model].items() if s.ok}
        out[_model_index(rec)] = _Value((2 - rec.noisy, str(rec.recorded_at or "")), standing.latency_ms,
                                        standing.corrected_ms, per_campaign)
    return out


def _from_release(path: Path, scope: _Scope) -> dict[int, _Value]:
    """The ``bench/<device>`` values of a release: the same columns ``dataset build`` wrote from
    the standing records (``latency_ms``, ``latency_corrected_ms`` on the release's reference)."""
    from blox_lat import dataset

    rel = dataset.open(path)
    device = scope.want or scope.device
    if device is None:
        if len(rel.devices) != 1:
            raise MixedInputError(f"release {path} has measurements of {len(rel.devices)} devices "
                                  f"({', '.join(rel.devices) or 'none'}); name one with --device")
        device = rel.devices[0]
    if device not in rel.devices:
        raise PredictError(f"release {path} has no measurements of device {device!r}; it has: "
                           f"{', '.join(rel.devices) or 'none'}")
    sec = rel.section(f"bench/{device}")
    meta = sec.entry.get("metadata", {})
    protocols = meta.get("protocols") or []
    if len(protocols) > 1:
        raise MixedInputError(f"release {path}: bench/{device} mixes {len(protocols)} protocols; fit from the journals")
    scope.takes(device, DeviceSetting.of(meta.get("profile")),
                ProtocolIdentity.of(protocols[0]) if protocols else None, f"{path} bench/{device}")
    table = sec.table
    cols = table.column_names

    def column(name: str) -> list:
        return table.column(name).to_pylist() if name in cols else [None] * table.num_rows

    out: dict[int, _Value] = {}
    rows = zip(column("model_index"), column("status"), column("latency_ms"), column("latency_corrected_ms"),
               column("campaign_id"), column("noisy"), column("recorded_at"))
    for row, (i, status, raw, corr, campaign, noisy, at) in enumerate(rows):
        if status != "ok" or raw is None:
            continue
        where = f"{path} bench/{device} row {row}"
        raw = _milliseconds(where, "latency_ms", raw)
        corr = None if corr is None else _milliseconds(where, "latency_corrected_ms", corr)
        out[int(i)] = _Value((2 - bool(noisy), str(at or "")), raw, corr, {f"{path.name}:{campaign}": (raw, corr)})
    return out


def load(sources: list[str | os.PathLike[str]], *, device: str | None = None, latency: str = "auto") -> TrainingSet:
    """The training set in ``sources`` (campaign folders, journals or releases) for one device.

    Journals are read with :func:`blox_lat.harness.read_records` and stood with
    :func:`blox_lat.harness.stand`: a model's value is its standing record's (ok > noisy >
    failed, then the latest ``recorded_at``), the corrected one on the device's common level
    reference: the number ``dataset build`` puts in a release. A release gives its
    ``bench/<device>`` values. A model in several sources takes the value the same rule picks."""
    if latency not in LATENCY_KINDS:
        raise PredictError(f"latency {latency!r}: use one of {', '.join(LATENCY_KINDS)}")
    if not sources:
        raise PredictError("no measurements: pass a campaign folder (runs/DEVICE), several, or a release")
    scope = _Scope(device)
    groups: list[dict[int, _Value]] = []
    journals: list[Path] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise PredictError(f"{path} does not exist; pass a campaign folder (runs/DEVICE) or a release")
        if (path / "dataset.json").is_file():
            groups.append(_from_release(path, scope))
        else:
            journals.extend(_journals(path))
    groups.insert(0, _from_journals(journals, scope))
    chosen: dict[int, _Value] = {}
    for values in groups:  # a model in a release and in journals: the later, better record stands
        for index, value in values.items():
            old = chosen.get(index)
            chosen[index] = value if old is None or value.key >= old.key else old
    if scope.device is None or not chosen:
        which = f" of device {device!r}" if device else ""
        raise PredictError(f"no ok measurements{which} in {', '.join(map(str, sources))}")
    try:
        kind = resolve_latency_kind(latency, [v.corrected for v in chosen.values()])
    except LatencyKindError as exc:
        raise PredictError(str(exc)) from None
    idx = np.array(sorted(chosen), dtype=np.int64)
    y = np.array([chosen[int(i)].raw if kind == "raw" else chosen[int(i)].corrected for i in idx], dtype=float)
    repeats: dict[int, dict[str, float]] = {}
    campaigns: set[str] = set()
    for i in idx:
        values = {c: (raw if kind == "raw" else corr) for c, (raw, corr) in chosen[int(i)].per_campaign.items()}
        values = {c: v for c, v in values.items() if v is not None}
        campaigns.update(values)
        if len(values) > 1:
            repeats[int(i)] = values
    return TrainingSet(idx, y, scope.device, scope.setting.to_dict() if scope.setting else {},
                       scope.protocol.to_dict() if scope.protocol else None, kind,
                       tuple(str(s) for s in sources), tuple(sorted(campaigns)), repeats)


def protocol_text(protocol: dict | None) -> str:
    return json.dumps(protocol, sort_keys=True) if protocol is not None else "unknown"
