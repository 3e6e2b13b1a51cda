"""Which record stands for a model, and its latencies on one level reference with their precision.

A model may have several records: a retried set, a resumed run, several campaigns, cluster
shards. :func:`standing_key` is the one rule that picks the record that stands for it, and
every consumer (``dataset build``, ``predict``, ``report``, ``compare``, ``cluster status``)
takes it from here:

1. an ``ok`` record beats a ``noisy`` one, which beats a ``failed`` one;
2. then the latest ``recorded_at``;
3. then the later line (the later journal, for journals given in order).

:func:`stand` applies it to typed records (:func:`~blox_lat.harness.read_records`) and puts
every anchored campaign of a device on one level reference, the earliest campaign's
(:func:`~blox_lat.harness.common_reference`), so that a model's corrected latency is the same
number wherever it is read. Each value carries its standard error: the protocol latency's from
its group means, the corrected latency's adding the level's own uncertainty (from the anchors'
scatter, :mod:`~blox_lat.harness._precision`) and, for campaigns rescaled onto another's
reference, the rescaling factor's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blox_lat.errors import BloxLatError
from blox_lat.harness._anchors import CampaignReference, common_reference
from blox_lat.harness._precision import level_log_se, pooled_anchor_scatter
from blox_lat.harness._records import AnchorsRecord, MeasurementRecord

__all__ = ["LATENCY_KINDS", "RULE", "LatencyKindError", "Standing", "Standings", "resolve_latency_kind", "stand",
           "standing_key"]

#: the selection rule in words (release metadata, docs)
RULE = "ok>noisy>failed, then latest recorded_at"
#: what ``--latency`` takes: the protocol latency, the level-corrected one, or corrected when
#: every value in scope has one
LATENCY_KINDS = ("auto", "raw", "corrected")


class LatencyKindError(BloxLatError, ValueError):
    """A latency kind that is unknown, or ``corrected`` asked of values that have none."""


def standing_key(record: MeasurementRecord, order: int) -> tuple:
    """The selection rule as a sort key (the greatest stands): ok > noisy > failed, then the
    latest ``recorded_at``, then campaign and environment (a stable tie-break), then the later line."""
    rank = 0 if not record.ok else (1 if record.noisy else 2)
    return (rank, str(record.recorded_at or ""), str(record.campaign_id or ""), str(record.env_id or ""), order)


@dataclass(frozen=True, slots=True)
class Standing:
    """The record that stands for one model on one device, with its latencies on the device's
    level reference: ``level`` and ``corrected_ms`` are None for a model timed without anchors
    (or with other anchors than the reference's); ``*_se_ms`` are standard errors."""

    record: MeasurementRecord
    seen: int
    level: float | None
    corrected_ms: float | None
    se_ms: float | None
    corrected_se_ms: float | None

    @property
    def ok(self) -> bool:
        return self.record.ok

    @property
    def latency_ms(self) -> float | None:
        return self.record.latency_ms

    def value(self, kind: str) -> float | None:
        """The latency of ``kind`` (``raw`` or ``corrected``)."""
        return self.corrected_ms if kind == "corrected" else self.latency_ms

    def se(self, kind: str) -> float | None:
        return self.corrected_se_ms if kind == "corrected" else self.se_ms


@dataclass(frozen=True)
class Standings:
    """Per device, model hash -> its :class:`Standing`; per campaign too (test-retest figures)."""

    models: dict[str, dict[str, Standing]]
    per_campaign: dict[str, dict[str, dict[str, Standing]]] = field(repr=False)
    references: dict[str, CampaignReference | None]

    @property
    def devices(self) -> list[str]:
        return sorted(self.models)

    def of(self, device: str) -> dict[str, Standing]:
        return self.models.get(device, {})

    def latency_kind(self, requested: str, device: str) -> str:
        """``raw`` or ``corrected`` for ``--latency requested`` over this device's ok models."""
        return resolve_latency_kind(requested, [s.corrected_ms for s in self.of(device).values() if s.ok])


def resolve_latency_kind(requested: str, corrected: Sequence[Any]) -> str:
    """``auto``: corrected when every value in scope has a corrected latency, raw otherwise."""
    if requested not in LATENCY_KINDS:
        raise LatencyKindError(f"latency {requested!r}: use one of {', '.join(LATENCY_KINDS)}")
    have = bool(corrected) and all(c is not None for c in corrected)
    if requested == "corrected" and not have:
        raise LatencyKindError("--latency corrected: some measurements carry no level-corrected latency "
                               "(campaigns measured without anchors, or with other anchors); use --latency raw")
    return "corrected" if requested == "corrected" or (requested == "auto" and have) else "raw"


def stand(records: Iterable[Any]) -> Standings:
    """The standing record of every (device, model) among typed journal records (in reading
    order: later lines win ties), with levels on each device's common reference."""
    candidates: dict[tuple[str, str, str], tuple[tuple, MeasurementRecord]] = {}
    seen: dict[tuple[str, str], int] = {}
    anchors: dict[str, dict[str, list[AnchorsRecord]]] = {}
    for order, rec in enumerate(records):
        if isinstance(rec, AnchorsRecord):
            anchors.setdefault(rec.device, {}).setdefault(str(rec.campaign_id), []).append(rec)
        elif isinstance(rec, MeasurementRecord):
            key = standing_key(rec, order)
            slot = (rec.device, rec.model_hash, str(rec.campaign_id))
            old = candidates.get(slot)
            if old is None or key > old[0]:
                candidates[slot] = (key, rec)
            seen[(rec.device, rec.model_hash)] = seen.get((rec.device, rec.model_hash), 0) + 1
    levels = {device: _DeviceLevels.of(by_campaign) for device, by_campaign in anchors.items()}
    per_campaign: dict[str, dict[str, dict[str, Standing]]] = {}
    best: dict[tuple[str, str], tuple[tuple, Standing]] = {}
    for (device, model, campaign), (key, rec) in candidates.items():
        standing = levels.get(device, _NO_LEVELS).standing(rec, seen[(device, model)])
        per_campaign.setdefault(device, {}).setdefault(model, {})[campaign] = standing
        old = best.get((device, model))
        if old is None or key > old[0]:
            best[(device, model)] = (key, standing)
    models: dict[str, dict[str, Standing]] = {}
    for (device, model), (_key, standing) in best.items():
        models.setdefault(device, {})[model] = standing
    references = {device: levels[device].first if device in levels else None for device in models}
    return Standings(models, per_campaign, references)


@dataclass(frozen=True)
class _DeviceLevels:
    """One device's anchored campaigns on the earliest one's reference, and how precise a level is."""

    first: CampaignReference | None
    factors: dict[str, float]
    level_se: dict[str, float]  # campaign -> standard error of log(level) of one of its sets

    @classmethod
    def of(cls, by_campaign: dict[str, list[AnchorsRecord]]) -> _DeviceLevels:
        refs = []
        level_se = {}
        for campaign, lines in by_campaign.items():
            first = min(lines, key=lambda a: str(a.recorded_at or ""))
            refs.append(CampaignReference(campaign, tuple(first.hashes), tuple(float(x) for x in first.reference_ms),
                                          str(first.recorded_at or "")))
            scatter, _dof = pooled_anchor_scatter([a.log_ratios for a in lines])
            level_se[campaign] = level_log_se(scatter, len(first.anchors))
        reference, factors = common_reference(refs)
        return cls(reference, factors, level_se)

    def standing(self, rec: MeasurementRecord, seen: int) -> Standing:
        m = rec.measurement
        se = m.se_ms if rec.ok and m is not None else None
        campaign = str(rec.campaign_id)
        factor = self.factors.get(campaign)
        if not rec.ok or m is None or rec.level is None or factor is None:
            return Standing(rec, seen, None, None, se, None)
        level = rec.level * factor
        # on its own reference a record keeps the corrected latency its journal states
        corrected = rec.latency_corrected_ms if factor == 1.0 and rec.latency_corrected_ms else m.latency_ms / level
        if se is None:
            return Standing(rec, seen, level, corrected, None, None)
        own = self.level_se.get(campaign, 0.0)
        rescaled = own if self.first is not None and campaign != self.first.campaign_id else 0.0
        relative = math.sqrt((se / m.latency_ms) ** 2 + own ** 2 + rescaled ** 2)
        return Standing(rec, seen, level, corrected, se, corrected * relative)


_NO_LEVELS = _DeviceLevels(None, {}, {})
