"""Training data: measured latencies of one device setting and protocol, from journals or a release.

A source is a campaign folder (``journal.jsonl``), a folder holding several campaign folders, a
journal file, or a release (``dataset.json``) whose ``bench/<device>`` section is read. Journals
are read with :func:`blox_lat.harness.read_journal` into
:class:`blox_lat.harness.MeasurementRecord`. Only ``ok`` measurements count. Within one
campaign a model's latest record wins; a model measured in several campaigns gets the geometric
mean of its campaigns' latencies (each campaign's figure is kept in ``repeats`` for test-retest
figures).

``latency`` chooses the value: ``raw`` (the protocol latency, ``latency_ms``), ``corrected``
(the level-corrected latency that anchored campaigns record beside it) or ``auto`` (corrected
when every record has one, raw otherwise).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from blox_lat.predict._errors import MixedInputError, PredictError

#: where a level-corrected latency may sit in a measurement (names tried in order)
CORRECTED_KEYS = ("level_corrected_ms", "corrected_latency_ms", "latency_corrected_ms")
_PLAIN = {"interleave": 1, "rounds": 1, "rewarm_runs": 0}
LATENCY_KINDS = ("auto", "raw", "corrected")
#: models in the space (model indices are 0..MODELS-1)
MODELS = 91125


@dataclass(frozen=True)
class TrainingSet:
    """Latencies (ms) of distinct models on one device setting under one protocol."""

    indices: np.ndarray  # (n,) model indices, sorted
    latency_ms: np.ndarray  # (n,) one value per model (geometric mean over campaigns)
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


def _setting(profile: dict | None) -> dict:
    return {k: v for k, v in (profile or {}).items() if k != "name"}


def _identity(protocol: dict | None) -> dict | None:
    if protocol is None:
        return None
    return {**_PLAIN, **{k: v for k, v in protocol.items() if k != "cv_threshold"}}


def _journals(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if (source / "journal.jsonl").is_file():
        return [source / "journal.jsonl"]
    found = sorted(source.rglob("journal.jsonl"))
    if not found:
        raise PredictError(f"{source}: no journal.jsonl inside; pass a campaign folder (runs/DEVICE) or a release")
    return found


_DAMAGED = "a damaged or edited journal line: restore the file from a backup or remove that line"
_DAMAGED_RELEASE = "a damaged release: 'blox-lat dataset verify' checks it; rebuild it from the journals"


def _milliseconds(where: str, key: str, value: Any, damaged: str = _DAMAGED) -> float:
    """``value`` if it is a finite positive number, else :class:`PredictError` saying what it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    _refuse(where, f"{key} is {repr(value)[:40]}; must be a finite positive number of milliseconds", damaged)


def _refuse(where: str, what: str, damaged: str = _DAMAGED) -> NoReturn:
    raise PredictError(f"{where}: {what} ({damaged})")


def _corrected(record: dict, where: str) -> float | None:
    """The level-corrected latency of a measurement line, if it has one (checked like the raw one)."""
    m = record.get("measurement") or {}
    for key in CORRECTED_KEYS:
        for holder in (m, record):
            value = holder.get(key)
            if value is not None:
                return _milliseconds(where, key, value)
    return None


class _Collector:
    """Gathers (model, campaign) -> latency and checks that one setting and protocol are mixed in."""

    def __init__(self, device: str | None) -> None:
        self.want = device
        self.device: str | None = None
        self.setting: dict | None = None
        self.protocol: dict | None = None
        self.first: str = ""
        self.values: dict[tuple[int, str], tuple[str, float, float | None]] = {}
        self.references: dict[str, Any] = {}  # campaign -> its CampaignReference (anchored journals)

    def check(self, device: str, setting: dict, protocol: dict | None, where: str) -> None:
        if self.want is not None and device != self.want:
            return
        if self.device is None:
            self.device, self.setting, self.protocol, self.first = device, setting, protocol, where
            return
        if device != self.device:
            raise MixedInputError(f"measurements of two devices: {self.device!r} ({self.first}) and {device!r} "
                                  f"({where}); fit one device at a time (--device NAME picks one)")
        if setting != self.setting:
            raise MixedInputError(f"device {device!r} measured with two settings ({self.first}: {self.setting}; "
                                  f"{where}: {setting}); fit each setting separately")
        if protocol is not None and self.protocol is not None and protocol != self.protocol:
            diff = ", ".join(f"{k} {self.protocol.get(k)} vs {v}" for k, v in protocol.items()
                             if self.protocol.get(k) != v)
            raise MixedInputError(f"measurements from two protocols ({diff}; {self.first} vs {where}); "
                                  "fit campaigns of one protocol together")

    def add(self, index: int, campaign: str, recorded_at: str, raw: float, corrected: float | None) -> None:
        key = (index, campaign)
        old = self.values.get(key)
        if old is None or recorded_at >= old[0]:
            self.values[key] = (recorded_at, raw, corrected)


def _note_reference(where: str, line: dict, c: _Collector) -> None:
    """Keep an anchored campaign's reference, from the first of its ``anchors`` lines."""
    from blox_lat.harness import AnchorError, CampaignReference

    if c.want is not None and line.get("device") != c.want:
        return
    try:
        ref = CampaignReference.of_line(line)
    except AnchorError as exc:
        raise PredictError(f"{where}: {exc} ({_DAMAGED})") from None
    old = c.references.get(ref.campaign_id)
    if old is None or ref.recorded_at < old.recorded_at:
        c.references[ref.campaign_id] = ref


def _on_common_reference(c: _Collector) -> None:
    """Corrected latencies of campaigns read from journals, on one reference (the earliest
    anchored campaign's, as ``dataset build`` does); other anchors: no corrected latency."""
    from blox_lat.harness import common_reference

    first, factors = common_reference(list(c.references.values()))
    if first is None or all(f == 1.0 for f in factors.values()) and len(factors) == len(c.references):
        return
    for key, (at, raw, corr) in list(c.values.items()):
        if key[1] in c.references and corr is not None:
            factor = factors.get(key[1])
            c.values[key] = (at, raw, None if factor is None else corr / factor)


def _read_journal(path: Path, c: _Collector) -> None:
    from blox_lat.harness import AnchorsRecord, MeasurementRecord, read_journal_lines

    # one pass: anchors lines give references, measurements values; errors name file:line
    for number, line in read_journal_lines(path):
        where = f"{path}:{number}"
        if line.get("kind") == AnchorsRecord.kind:
            _note_reference(where, line, c)
            continue
        if line.get("kind") != MeasurementRecord.kind:
            continue
        rec = MeasurementRecord.from_dict(line)
        if not rec.ok or rec.measurement is None:
            continue
        device = str(rec.device)
        c.check(device, _setting(rec.profile), _identity(rec.protocol), where)
        if c.want is not None and device != c.want:
            continue
        index = rec.model_index
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MODELS:
            _refuse(where, f"model_index is {repr(index)[:40]}; must be a model index 0..{MODELS - 1}"
                    if "model_index" in line else "measurement line has no model_index")
        if "latency_ms" not in rec.measurement:
            _refuse(where, "ok measurement has no latency_ms")
        latency = _milliseconds(where, "latency_ms", rec.measurement["latency_ms"])
        c.add(index, str(rec.campaign_id or path.parent.name), str(rec.recorded_at or ""), latency,
              _corrected(line, where))


def _read_release(path: Path, device: str | None, c: _Collector) -> None:
    from blox_lat import dataset

    rel = dataset.open(path)
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
    c.check(device, _setting(meta.get("profile")), _identity(protocols[0]) if protocols else None, f"{path} bench/{device}")
    table = sec.table
    cols = table.column_names
    status = table.column("status").to_pylist()
    index = table.column("model_index").to_pylist()
    raw = table.column("latency_ms").to_pylist()
    corr_name = next((k for k in CORRECTED_KEYS if k in cols), None)
    corr = table.column(corr_name).to_pylist() if corr_name else [None] * len(raw)
    campaign = table.column("campaign_id").to_pylist() if "campaign_id" in cols else [None] * len(raw)
    for row, (i, st, r, cv, camp) in enumerate(zip(index, status, raw, corr, campaign)):
        if st == "ok" and r is not None:
            where = f"{path} bench/{device} row {row}"
            c.add(int(i), f"{path.name}:{camp}", "", _milliseconds(where, "latency_ms", r, _DAMAGED_RELEASE),
                  None if cv is None else _milliseconds(where, corr_name, cv, _DAMAGED_RELEASE))


def load(sources: list[str | os.PathLike[str]], *, device: str | None = None, latency: str = "auto") -> TrainingSet:
    """The training set in ``sources`` (campaign folders, journals or releases) for one device."""
    if latency not in LATENCY_KINDS:
        raise PredictError(f"latency {latency!r}: use one of {', '.join(LATENCY_KINDS)}")
    if not sources:
        raise PredictError("no measurements: pass a campaign folder (runs/DEVICE), several, or a release")
    c = _Collector(device)
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise PredictError(f"{path} does not exist; pass a campaign folder (runs/DEVICE) or a release")
        if (path / "dataset.json").is_file():
            _read_release(path, device, c)
        else:
            for journal in _journals(path):
                _read_journal(journal, c)
    if c.device is None or not c.values:
        which = f" of device {device!r}" if device else ""
        raise PredictError(f"no ok measurements{which} in {', '.join(map(str, sources))}")
    _on_common_reference(c)
    has_corr = all(v[2] is not None for v in c.values.values())
    if latency == "corrected" and not has_corr:
        raise PredictError("--latency corrected: some measurements carry no level-corrected latency "
                           "(campaigns measured without anchors); use --latency raw")
    kind = "corrected" if latency == "corrected" or (latency == "auto" and has_corr) else "raw"
    per_model: dict[int, dict[str, float]] = {}
    for (index, campaign), (_at, raw, corr) in c.values.items():
        per_model.setdefault(index, {})[campaign] = corr if kind == "corrected" else raw
    idx = np.array(sorted(per_model), dtype=np.int64)
    y = np.array([np.exp(np.mean(np.log(list(per_model[i].values())))) for i in idx])
    campaigns = tuple(sorted({camp for _i, camp in c.values}))
    repeats = {int(i): per_model[int(i)] for i in idx if len(per_model[int(i)]) > 1}
    return TrainingSet(idx, y, c.device, c.setting or {}, c.protocol, kind,
                       tuple(str(s) for s in sources), campaigns, repeats)


def protocol_text(protocol: dict | None) -> str:
    return json.dumps(protocol, sort_keys=True) if protocol is not None else "unknown"
