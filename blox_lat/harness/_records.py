"""The journal's two line kinds as typed records, shared by the campaign (writer) and the
dataset build (reader).

``to_dict`` gives the journal line, keys in the order they have always been written (the
journal is compared byte for byte in tests); ``from_dict`` takes a line as any schema-1 writer
wrote it (lines written before farms have no ``unit``). ``from_dict`` does not validate values:
readers check what they need and name the file and line when it is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ENVIRONMENT", "MEASUREMENT", "SCHEMA_VERSION", "EnvironmentRecord", "MeasurementRecord"]

#: the journal schema (history in :mod:`blox_lat.harness._journal`)
SCHEMA_VERSION = 1
#: the ``kind`` of each line
ENVIRONMENT = "environment"
MEASUREMENT = "measurement"


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    """One model's outcome on one device: ``ok`` with a measurement, or ``failed`` with a reason.

    ``measurement`` is the :class:`~blox_lat.harness.Measurement`'s journal form (its
    ``to_dict``; ``Measurement.from_dict`` rebuilds it), ``artifact`` the artifact's sha256,
    format and size, ``attempt_log`` one summary per attempt.
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
    schema: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        line: dict[str, Any] = {"schema": self.schema, "kind": self.kind, "model_hash": self.model_hash,
                                "model_index": self.model_index, "device": self.device}
        if self.unit is not None:
            line["unit"] = self.unit
        line.update(profile=self.profile, protocol=self.protocol, env_id=self.env_id, campaign_id=self.campaign_id,
                    status=self.status, reason=self.reason, recorded_at=self.recorded_at, attempts=self.attempts,
                    measurement=self.measurement, artifact=self.artifact, attempt_log=self.attempt_log)
        return line

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementRecord:
        get = data.get
        return cls(model_hash=get("model_hash"), model_index=get("model_index"), device=get("device"),
                   unit=get("unit"), profile=get("profile"), protocol=get("protocol"), env_id=get("env_id"),
                   campaign_id=get("campaign_id"), status=get("status"), reason=get("reason"),
                   recorded_at=get("recorded_at"), attempts=get("attempts"), measurement=get("measurement"),
                   artifact=get("artifact"), attempt_log=get("attempt_log") or [], schema=get("schema", 0))


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
    schema: int = SCHEMA_VERSION

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
