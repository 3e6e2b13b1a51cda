"""The journal's line kinds as typed records, shared by the campaign (writer) and the
dataset build (reader).

``to_dict`` gives the journal line, keys in the order they have always been written (the
journal is compared byte for byte in tests); ``from_dict`` takes a line as any schema-1 or
schema-2 writer wrote it (lines written before farms have no ``unit``, lines written before
anchors no ``level``). ``from_dict`` does not validate values: readers check what they need and
name the file and line when it is wrong.

Schema 2 (anchors) adds optional keys and one line kind; a line is written with the lowest
schema that describes it, so a campaign without anchors writes exactly the schema-1 lines it
always has (and older blox-lat reads it):

- ``measurement``: ``level``, ``latency_corrected_ms`` and ``set_id`` (the set, and attempt,
  whose anchors gave the level); absent (read as null) when the model was not timed with anchors.
- ``environment``: ``anchors`` (the anchor models' hashes and indices) in ``extra``.
- ``anchors`` (:class:`AnchorsRecord`): one per timed attempt of an anchored set, or per anchor
  run of a campaign that measures one model at a time (with a ``trigger``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from blox_lat.errors import BloxLatError
from blox_lat.harness._precision import trimmed_mean_se

__all__ = ["ANCHORS", "BASE_SCHEMA", "ENVIRONMENT", "LEVEL_SCHEMA", "MEASUREMENT", "JOURNAL_SCHEMA",
           "AnchorsRecord", "DeviceSetting", "EnvironmentRecord", "MeasuredValue", "MeasurementRecord",
           "ProtocolIdentity", "RecordError"]

#: the newest journal schema this blox-lat reads (history in :mod:`blox_lat.harness._journal`)
JOURNAL_SCHEMA = 2
#: the schema of lines that carry nothing newer (every line of a campaign without anchors)
BASE_SCHEMA = 1
#: the schema of lines that carry anchors or levels
LEVEL_SCHEMA = 2
#: the ``kind`` of each line
ENVIRONMENT = "environment"
MEASUREMENT = "measurement"
ANCHORS = "anchors"


class RecordError(BloxLatError, ValueError):
    """A journal line whose values cannot stand (a NaN or negative latency, a sample count that
    does not match its protocol, a level without its anchors line...); the reader adds
    ``file:line`` to the message, which names the field."""


def positive_ms(value: Any, name: str, unit: str = " of milliseconds") -> float:
    """``value`` as a finite positive float, or :class:`RecordError` naming ``name`` and what it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise RecordError(f"{name} is {repr(value)[:40]}; must be a finite positive number{unit}")


def _count(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise RecordError(f"{name} is {repr(value)[:40]}; it must be a positive integer")


def _optional_float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise RecordError(f"measurement.{key} is {repr(value)[:40]}; it must be a finite number")


def _stored_se(data: Mapping[str, Any], means: tuple[float, ...] | None) -> float | None:
    """The ``se_ms`` a measurement line states (written from the same group means), when it is a
    finite number >= 0; computed from ``means`` for lines written before it was stored."""
    se = data.get("se_ms")
    if isinstance(se, (int, float)) and not isinstance(se, bool) and math.isfinite(se) and se >= 0:
        return float(se)
    return trimmed_mean_se(means) if means is not None and len(means) > 1 else None


@dataclass(frozen=True, slots=True)
class MeasuredValue:
    """A model's measurement, typed: the protocol latency, its statistics, its group means and
    samples, and ``se_ms``, the standard error of the latency from its group means
    (:func:`~blox_lat.harness._precision.trimmed_mean_se`). Validated when built: a latency
    that is not a finite positive number, or sample and group counts that do not add up, raise
    :class:`RecordError`. ``line`` keeps the journal form as written (``to_dict``), so a
    journal read and written again is byte for byte the same."""

    latency_ms: float
    groups: int | None
    runs_per_group: int | None
    warmup_runs: int | None
    median_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    std_ms: float | None
    iqr_ms: float | None
    cv: float | None
    rel_iqr: float | None
    group_cv: float | None
    noisy: bool
    flags: tuple[str, ...]
    group_means_ms: tuple[float, ...] | None
    se_ms: float | None
    samples_ms: Any = field(default=None, repr=False, compare=False)  # the list as read (up to 1,000 floats)
    line: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> MeasuredValue:
        if not isinstance(data, Mapping):
            raise RecordError(f"measurement is {repr(data)[:40]}; an ok record carries a measurement object")
        latency = positive_ms(data.get("latency_ms"), "measurement.latency_ms")
        rpg = data.get("runs_per_group")
        rpg = None if rpg is None else _count(rpg, "measurement.runs_per_group")
        means = data.get("group_means_ms")
        if means is not None:
            if not isinstance(means, list) or not means:
                raise RecordError(f"measurement.group_means_ms is {repr(means)[:40]}; it must be a list of latencies")
            means = tuple(positive_ms(v, "a value of measurement.group_means_ms") for v in means)
        groups = data.get("groups", len(means) if means else None)
        groups = None if groups is None else _count(groups, "measurement.groups")
        if means is not None and len(means) != groups:
            raise RecordError(f"measurement.group_means_ms holds {len(means)} values for {groups} groups")
        samples = data.get("samples_ms")
        if samples is not None and groups is not None and rpg is not None and (
                not isinstance(samples, list) or len(samples) != groups * rpg):
            size = len(samples) if isinstance(samples, list) else repr(samples)[:20]
            raise RecordError(f"measurement.samples_ms holds {size} samples; {groups} groups of {rpg} "
                              f"are {groups * rpg}")
        warmup = data.get("warmup_runs")
        flags = data.get("flags") or ()
        return cls(latency_ms=latency, groups=groups, runs_per_group=rpg,
                   warmup_runs=warmup if isinstance(warmup, int) else None,
                   **{k: _optional_float(data, k) for k in ("median_ms", "mean_ms", "min_ms", "std_ms", "iqr_ms",
                                                            "cv", "rel_iqr", "group_cv")},
                   noisy=bool(data.get("noisy")), flags=tuple(str(f) for f in flags), group_means_ms=means,
                   se_ms=_stored_se(data, means),
                   samples_ms=samples, line=data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.line)

    def get(self, key: str, default: Any = None) -> Any:
        """The journal form's ``key`` (what readers of the dict form asked for)."""
        return self.line.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.line[key]

    def __contains__(self, key: str) -> bool:
        return key in self.line


@dataclass(frozen=True, slots=True)
class DeviceSetting:
    """What makes two devices' numbers comparable: the device profile less its name (hashable)."""

    text: str  # canonical JSON

    @classmethod
    def of(cls, profile: Any) -> DeviceSetting:
        items = {k: v for k, v in profile.items() if k != "name"} if isinstance(profile, Mapping) else {}
        return cls(json.dumps(items, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.text)


#: the interleaving fields of the plain consecutive protocol (absent from older identities)
_PLAIN = {"interleave": 1, "rounds": 1, "rewarm_runs": 0}


@dataclass(frozen=True, slots=True)
class ProtocolIdentity:
    """What makes two measurements comparable: the protocol less its noise threshold, the
    interleaving fields spelled out (hashable)."""

    text: str  # canonical JSON

    @classmethod
    def of(cls, protocol: Any) -> ProtocolIdentity | None:
        if not isinstance(protocol, Mapping):
            return None
        return cls(json.dumps({**_PLAIN, **{k: v for k, v in protocol.items() if k != "cv_threshold"}},
                              sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.text)


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    """One model's outcome on one device: ``ok`` with a measurement, or ``failed`` with a reason.

    ``measurement`` is a :class:`MeasuredValue` (built from the journal form a
    :class:`~blox_lat.harness.Measurement`'s ``to_dict`` gives), ``artifact`` the artifact's sha256,
    format and size, ``attempt_log`` one summary per attempt. ``level`` is the level of the
    set attempt that gave ``measurement`` (from its anchors), ``latency_corrected_ms`` the
    protocol latency divided by it and ``set_id`` that attempt's :class:`AnchorsRecord`; all
    three are None for a model timed without anchors.
    """

    kind: ClassVar[str] = MEASUREMENT
    model_hash: str
    model_index: int
    device: str
    unit: str | None
    profile: dict[str, Any]
    protocol: dict[str, Any]
    env_id: str
    campaign_id: str
    status: str
    reason: str | None
    recorded_at: str
    attempts: int
    measurement: MeasuredValue | None
    artifact: dict[str, Any] | None
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    schema: int | None = None
    level: float | None = None
    latency_corrected_ms: float | None = None
    set_id: str | None = None
    #: ``file:line`` the record was read from (not written)
    origin: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.measurement is not None and not isinstance(self.measurement, MeasuredValue):
            object.__setattr__(self, "measurement", MeasuredValue.from_dict(self.measurement))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def noisy(self) -> bool:
        return self.ok and self.measurement is not None and self.measurement.noisy

    @property
    def latency_ms(self) -> float | None:
        """The protocol latency (the primary value), None for a failure."""
        return None if self.measurement is None else self.measurement.latency_ms

    @property
    def setting(self) -> DeviceSetting:
        return DeviceSetting.of(self.profile)

    @property
    def protocol_identity(self) -> ProtocolIdentity | None:
        return ProtocolIdentity.of(self.protocol)

    def check(self) -> MeasurementRecord:
        """The record itself when its values can stand; :class:`RecordError` naming the field otherwise."""
        if not isinstance(self.model_hash, str) or not self.model_hash:
            raise RecordError(f"model_hash is {self.model_hash!r}; a measurement names its model's hash")
        if self.status not in ("ok", "failed"):
            raise RecordError(f"status is {self.status!r}, not 'ok' or 'failed'")
        if not isinstance(self.device, str) or not self.device:
            raise RecordError(f"device is {self.device!r}; a measurement names its device")
        if self.ok and self.measurement is None:
            raise RecordError("status is 'ok' but the record carries no measurement")
        if self.level is not None or self.latency_corrected_ms is not None:
            positive_ms(self.level, "level", unit="")
            positive_ms(self.latency_corrected_ms, "latency_corrected_ms")
            if not isinstance(self.set_id, str):
                raise RecordError(f"level {self.level} has no set_id naming the anchors line it comes from")
        if self.measurement is not None and isinstance(self.protocol, Mapping):
            groups = self.protocol.get("groups")
            if isinstance(groups, int) and self.measurement.groups is not None and groups != self.measurement.groups:
                raise RecordError(f"measurement has {self.measurement.groups} groups; its protocol has {groups}")
        return self

    def to_dict(self) -> dict[str, Any]:
        leveled = self.level is not None or self.set_id is not None
        schema = self.schema if self.schema is not None else (LEVEL_SCHEMA if leveled else BASE_SCHEMA)
        line: dict[str, Any] = {"schema": schema, "kind": self.kind, "model_hash": self.model_hash,
                                "model_index": self.model_index, "device": self.device}
        if self.unit is not None:
            line["unit"] = self.unit
        line.update(profile=self.profile, protocol=self.protocol, env_id=self.env_id, campaign_id=self.campaign_id,
                    status=self.status, reason=self.reason, recorded_at=self.recorded_at, attempts=self.attempts,
                    measurement=None if self.measurement is None else self.measurement.to_dict(),
                    artifact=self.artifact, attempt_log=self.attempt_log)
        if leveled:
            line.update(level=self.level, latency_corrected_ms=self.latency_corrected_ms, set_id=self.set_id)
        return line

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str | None = None) -> MeasurementRecord:
        """The record of a journal line; :class:`RecordError` when its measurement cannot stand."""
        get = data.get
        measurement = get("measurement")
        return cls(model_hash=get("model_hash"), model_index=get("model_index"), device=get("device"),
                   unit=get("unit"), profile=get("profile"), protocol=get("protocol"), env_id=get("env_id"),
                   campaign_id=get("campaign_id"), status=get("status"), reason=get("reason"),
                   recorded_at=get("recorded_at"), attempts=get("attempts"), measurement=measurement,
                   artifact=get("artifact"), attempt_log=get("attempt_log") or [], schema=get("schema", 0),
                   level=get("level"), latency_corrected_ms=get("latency_corrected_ms"), set_id=get("set_id"),
                   origin=origin)


def _stability(value: Any) -> dict[str, Any] | None:
    """An anchors line's ``stability`` (absent on lines written before sets were judged)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("burst"), bool):
        raise RecordError(f"stability is {value!r}; it is an object with a boolean 'burst'")
    return dict(value)


@dataclass(frozen=True)
class AnchorsRecord:
    """The anchors of one timed attempt of a set: ``set_id`` (what its records point at), the
    set's ``attempt``, each anchor's hash, index and protocol ``latency_ms`` and ``cv`` (anchor
    order), the ``reference_ms`` latencies they are compared with (the campaign's first anchored
    set) and the resulting ``level``. Anchors are not model results: no ``measurement`` line.

    On a device that measures one model at a time the anchors are timed on their own: such a
    line has ``members`` 0 and a ``trigger`` (``start``, ``every``, ``thermal-wait``), and the
    models measured after it, up to the next such line, carry its level and ``set_id``."""

    kind: ClassVar[str] = ANCHORS
    set_id: str
    attempt: int
    device: str
    campaign_id: str
    env_id: str
    anchors: list[dict[str, Any]]
    reference_ms: list[float]
    level: float
    members: int
    recorded_at: str
    schema: int = LEVEL_SCHEMA
    trigger: str | None = None
    #: the attempt's shared round scatter, its threshold and whether a burst hit it
    #: (:mod:`blox_lat.harness._stability`); None where the set was not judged
    stability: dict[str, Any] | None = None
    #: ``file:line`` the record was read from (not written)
    origin: str | None = field(default=None, compare=False)

    @property
    def burst(self) -> bool:
        """A noise burst hit the set's attempt this line levels."""
        return bool(self.stability and self.stability.get("burst"))

    def check(self) -> AnchorsRecord:
        """The record itself when it can give a level; :class:`RecordError` naming the field otherwise."""
        if not isinstance(self.set_id, str) or not self.set_id:
            raise RecordError(f"set_id is {self.set_id!r}; an anchors line names its set")
        if not self.anchors or not all(isinstance(a, Mapping) and isinstance(a.get("model_hash"), str)
                                       for a in self.anchors):
            raise RecordError("anchors is empty or names no model_hash; there is no reference to compare a set with")
        if len(self.reference_ms) != len(self.anchors):
            raise RecordError(f"{len(self.anchors)} anchors but {len(self.reference_ms)} reference_ms values")
        for a in self.anchors:
            positive_ms(a.get("latency_ms"), f"the latency_ms of anchor {a.get('model_hash')}")
        for x in self.reference_ms:
            positive_ms(x, "a value of reference_ms")
        positive_ms(self.level, "level", unit="")
        return self

    @property
    def log_ratios(self) -> list[float]:
        """``log(latency / reference)`` of each anchor: the level's pieces."""
        return [math.log(a / r) for a, r in zip(self.latencies_ms, self.reference_ms)]

    @property
    def latencies_ms(self) -> list[float]:
        return [float(a["latency_ms"]) for a in self.anchors]

    @property
    def hashes(self) -> list[str]:
        return [str(a["model_hash"]) for a in self.anchors]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "kind": self.kind, "set_id": self.set_id, "attempt": self.attempt,
                "device": self.device, "campaign_id": self.campaign_id, "env_id": self.env_id,
                "anchors": self.anchors, "reference_ms": self.reference_ms, "level": self.level,
                "members": self.members, "recorded_at": self.recorded_at,
                **({"trigger": self.trigger} if self.trigger is not None else {}),
                **({"stability": self.stability} if self.stability is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str | None = None) -> AnchorsRecord:
        get = data.get
        anchors, reference = get("anchors") or [], get("reference_ms") or []
        if not isinstance(anchors, list) or not isinstance(reference, list):
            raise RecordError("anchors and reference_ms must be lists")
        return cls(set_id=get("set_id"), attempt=get("attempt"), device=get("device"), campaign_id=get("campaign_id"),
                   env_id=get("env_id"), anchors=list(anchors), reference_ms=list(reference),
                   level=get("level"), members=get("members"), recorded_at=get("recorded_at"),
                   schema=get("schema", LEVEL_SCHEMA), trigger=get("trigger"),
                   stability=_stability(get("stability")), origin=origin)


#: the host facts every environment line starts with, in order (``collect_environment``)
_HOST_KEYS = ("campaign_id", "recorded_at", "host", "os", "cpu", "temperatures_c", "load_average",
              "memory_total_kb", "versions", "device", "device_facts")


@dataclass(frozen=True)
class EnvironmentRecord:
    """Where and how a campaign run measured: host facts, the device's own facts, and (in
    ``extra``, in the order written) what the campaign adds: ``unit``, ``profile``,
    ``protocol``, ``selected``, ``todo``... ``env_id`` is a digest of the rest."""

    kind: ClassVar[str] = ENVIRONMENT
    campaign_id: str
    recorded_at: str
    host: str | None
    os: str | None
    cpu: dict[str, Any] | None
    temperatures_c: Any
    load_average: list[float] | None
    memory_total_kb: int | None
    versions: dict[str, Any]
    device: str
    device_facts: dict[str, Any]
    env_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = BASE_SCHEMA

    @property
    def anchors(self) -> list[dict[str, Any]] | None:
        """The campaign's anchor models (hash, index), None for a campaign without anchors."""
        return self.extra.get("anchors")

    @property
    def profile(self) -> dict[str, Any] | None:
        return self.extra.get("profile")

    @property
    def protocol(self) -> dict[str, Any] | None:
        return self.extra.get("protocol")

    @property
    def unit(self) -> str | None:
        return self.extra.get("unit")

    def to_dict(self) -> dict[str, Any]:
        line: dict[str, Any] = {"schema": self.schema, "kind": self.kind}
        line.update((k, getattr(self, k)) for k in _HOST_KEYS)
        return {**line, **self.extra, "env_id": self.env_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvironmentRecord:
        skip = {"schema", "kind", "env_id", *_HOST_KEYS}
        return cls(**{k: data.get(k) for k in _HOST_KEYS}, env_id=data.get("env_id"),
                   extra={k: v for k, v in data.items() if k not in skip}, schema=data.get("schema", 0))
