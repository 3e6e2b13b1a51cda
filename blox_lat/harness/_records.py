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

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ANCHORS", "BASE_SCHEMA", "ENVIRONMENT", "LEVEL_SCHEMA", "MEASUREMENT", "JOURNAL_SCHEMA",
           "AnchorsRecord", "EnvironmentRecord", "MeasurementRecord"]

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


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    """One model's outcome on one device: ``ok`` with a measurement, or ``failed`` with a reason.

    ``measurement`` is the :class:`~blox_lat.harness.Measurement`'s journal form (its
    ``to_dict``; ``Measurement.from_dict`` rebuilds it), ``artifact`` the artifact's sha256,
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
    measurement: dict[str, Any] | None
    artifact: dict[str, Any] | None
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    schema: int | None = None
    level: float | None = None
    latency_corrected_ms: float | None = None
    set_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def latency_ms(self) -> float | None:
        """The protocol latency (the primary value), None for a failure."""
        return None if self.measurement is None else self.measurement.get("latency_ms")

    def to_dict(self) -> dict[str, Any]:
        leveled = self.level is not None or self.set_id is not None
        schema = self.schema if self.schema is not None else (LEVEL_SCHEMA if leveled else BASE_SCHEMA)
        line: dict[str, Any] = {"schema": schema, "kind": self.kind, "model_hash": self.model_hash,
                                "model_index": self.model_index, "device": self.device}
        if self.unit is not None:
            line["unit"] = self.unit
        line.update(profile=self.profile, protocol=self.protocol, env_id=self.env_id, campaign_id=self.campaign_id,
                    status=self.status, reason=self.reason, recorded_at=self.recorded_at, attempts=self.attempts,
                    measurement=self.measurement, artifact=self.artifact, attempt_log=self.attempt_log)
        if leveled:
            line.update(level=self.level, latency_corrected_ms=self.latency_corrected_ms, set_id=self.set_id)
        return line

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementRecord:
        get = data.get
        return cls(model_hash=get("model_hash"), model_index=get("model_index"), device=get("device"),
                   unit=get("unit"), profile=get("profile"), protocol=get("protocol"), env_id=get("env_id"),
                   campaign_id=get("campaign_id"), status=get("status"), reason=get("reason"),
                   recorded_at=get("recorded_at"), attempts=get("attempts"), measurement=get("measurement"),
                   artifact=get("artifact"), attempt_log=get("attempt_log") or [], schema=get("schema", 0),
                   level=get("level"), latency_corrected_ms=get("latency_corrected_ms"), set_id=get("set_id"))


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
                **({"trigger": self.trigger} if self.trigger is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnchorsRecord:
        get = data.get
        return cls(set_id=get("set_id"), attempt=get("attempt"), device=get("device"), campaign_id=get("campaign_id"),
                   env_id=get("env_id"), anchors=list(get("anchors") or []), reference_ms=list(get("reference_ms") or []),
                   level=get("level"), members=get("members"), recorded_at=get("recorded_at"),
                   schema=get("schema", LEVEL_SCHEMA), trigger=get("trigger"))


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
