"""Honest accounting: the device time a survey spent, from its campaign journals.

The journals hold what the device did: each model's timed samples and its warm-up runs (count;
their time is the count times the model's mean run), each timing of the anchors (their
protocol latency times the runs, plus their warm-up) and every extra attempt of a noisy model
(from ``attempt_log``). The export time is measured by the survey while it waits for
artifacts. The sum is set beside the wall time of the measuring steps: what it leaves out
(loading models, starting workers, the journal's fsyncs) is their difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DeviceTime:
    """Seconds of device time by kind, and the models they were spent on."""

    timed_s: float = 0.0
    warmup_s: float = 0.0
    anchors_s: float = 0.0
    retries_s: float = 0.0
    export_s: float = 0.0
    models: int = 0
    failed: int = 0
    anchor_runs: int = 0

    @property
    def total_s(self) -> float:
        return self.timed_s + self.warmup_s + self.anchors_s + self.retries_s + self.export_s

    def plus(self, other: DeviceTime) -> DeviceTime:
        return DeviceTime(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def to_dict(self) -> dict[str, Any]:
        return {"timed_s": round(self.timed_s, 3), "warmup_s": round(self.warmup_s, 3),
                "anchors_s": round(self.anchors_s, 3), "retries_s": round(self.retries_s, 3),
                "export_s": round(self.export_s, 3), "total_s": round(self.total_s, 3), "models": self.models,
                "failed": self.failed, "anchor_runs": self.anchor_runs}


def _one_timing(latency_ms: float, protocol: Any) -> float:
    """Seconds one model costs under ``protocol`` when only its latency is known: its timed
    runs and a warm-up of at least ``warmup_min_runs`` runs and ``warmup_min_s`` seconds."""
    runs = protocol.groups * protocol.runs_per_group
    return (runs * latency_ms / 1e3 + max(protocol.warmup_min_s, protocol.warmup_min_runs * latency_ms / 1e3))


def journal_time(folder: str | Path, protocol: Any, export_s: float = 0.0) -> DeviceTime:
    """The device time the journal of campaign ``folder`` records (see the module docstring),
    with ``export_s`` (measured by the caller) added; zero for a folder with no journal yet."""
    from blox_lat.harness import AnchorsRecord, MeasurementRecord, journal_path, read_records

    if not journal_path(folder).is_file():
        return DeviceTime(export_s=export_s)
    timed = warm = anchors = retries = 0.0
    models = failed = anchor_runs = 0
    for rec in read_records(folder):
        if isinstance(rec, AnchorsRecord):
            anchor_runs += 1
            anchors += sum(_one_timing(float(a["latency_ms"]), protocol) for a in rec.anchors)
        elif isinstance(rec, MeasurementRecord):
            m = rec.measurement
            if m is None or not rec.ok:
                failed += 1
                continue
            models += 1
            samples = m.samples_ms or ()
            mean = sum(samples) / len(samples) if samples else m.latency_ms
            timed += sum(samples) / 1e3 if samples else 0.0
            warm += (m.warmup_runs or 0) * mean / 1e3
            extra = max(0, len(rec.attempt_log or ()) - 1)
            retries += extra * _one_timing(m.latency_ms, protocol)
    return DeviceTime(timed, warm, anchors, retries, export_s, models, failed, anchor_runs)
