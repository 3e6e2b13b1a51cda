"""Profile records: one line of ``profiles.jsonl`` per profiled model (schema 1), read here only.

A line is ``{"kind": "profile", "schema": 1, ...}``: the model (index, hash, block string), the
device (name, setting), the protocol identity and the number of profiled runs (together the
key a rerun resumes on), ``status`` ``ok`` or ``failed`` (with ``reason`` and no numbers), and
for an ok line the numbers of :class:`ProfileRecord`. Schema history: 1 - first version.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat import _json as fast_json
from blox_lat.errors import BloxLatError

__all__ = ["PROFILES_NAME", "PROFILE_SCHEMA", "BlockTime", "LayerTime", "ProfileKey", "ProfileRecord",
           "ProfileRecordError", "read_profiles", "standing_profiles"]

PROFILES_NAME = "profiles.jsonl"
PROFILE_SCHEMA = 1


class ProfileRecordError(BloxLatError):
    """A line of a profiles file is not a profile record this reader knows (names file:line)."""


@dataclass(frozen=True, slots=True)
class LayerTime:
    """One layer (a node of the runtime's graph) and its mean time per inference."""

    name: str
    op_type: str
    provider: str
    piece: str  # "" when unmapped
    stage: int | None
    block: str | None
    ms: float
    mapped_by: str  # name | boundary | order | "" (unmapped)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "provider": self.provider, "piece": self.piece,
                "stage": self.stage, "block": self.block, "ms": self.ms, "mapped_by": self.mapped_by}


@dataclass(frozen=True, slots=True)
class BlockTime:
    """The summed time of one piece's layers per inference: a stage's block, its reduction, the
    stem or the head (``block`` None and ``piece`` "" for the unmapped rest)."""

    piece: str
    stage: int | None
    block: str | None
    ms: float
    layers: int

    def to_dict(self) -> dict[str, Any]:
        return {"piece": self.piece, "stage": self.stage, "block": self.block, "ms": self.ms, "layers": self.layers}


@dataclass(frozen=True, slots=True)
class ProfileKey:
    """What a rerun resumes on: the model, the device setting, the protocol and profiled runs."""

    model_hash: str
    device: str
    setting: str  # canonical JSON
    protocol: str  # canonical JSON
    profile_runs: int


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ProfileRecord:
    """One model profiled on one device (``status`` ok), or why it could not be (failed)."""

    model_index: int
    model_hash: str
    arch: str
    device: str
    setting: dict[str, Any]
    protocol: dict[str, Any]
    profile_runs: int
    status: str
    created_at: str
    reason: str | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    peak_memory_mib: float | None = None
    peak_rss_mib: float | None = None
    memory_how: str | None = None
    gpu_peak_memory_mib: float | None = None
    latency_ms: float | None = None  # the protocol latency, profiler off
    profiled_ms: float | None = None  # median wall time of one profiled run, profiler on
    runtime_run_ms: float | None = None  # the runtime's own whole-run time, profiler on
    layers: tuple[LayerTime, ...] = ()
    blocks: tuple[BlockTime, ...] = ()
    measurement: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    profiled_ns: tuple[int, ...] = field(default=(), compare=False, repr=False)
    facts: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"status must be ok or failed, got {self.status!r}")
        if self.status == "ok" and self.latency_ms is None:
            raise ValueError("an ok profile carries its protocol latency")
        if self.status == "failed" and not self.reason:
            raise ValueError("a failed profile carries its reason")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> ProfileKey:
        return ProfileKey(self.model_hash, self.device, _canonical(self.setting), _canonical(self.protocol),
                          self.profile_runs)

    @property
    def layers_ms(self) -> float | None:
        """The sum of every layer's time (None for a failed record)."""
        return round(sum(x.ms for x in self.layers), 6) if self.ok else None

    @property
    def overhead(self) -> float | None:
        """The profiler's own cost: a profiled run's median time over the protocol latency, less 1."""
        if not self.ok or not self.profiled_ms or not self.latency_ms:
            return None
        return round(self.profiled_ms / self.latency_ms - 1.0, 6)

    def summary(self) -> dict[str, Any]:
        """The per-model JSON of ``blox-lat profile --json``."""
        out: dict[str, Any] = {"model_index": self.model_index, "model_hash": self.model_hash, "arch": self.arch,
                               "device": self.device, "status": self.status}
        if not self.ok:
            return {**out, "reason": self.reason}
        return {**out, "load_ms": self.load_ms, "first_inference_ms": self.first_inference_ms,
                "peak_memory_mib": self.peak_memory_mib, "peak_memory_how": self.memory_how,
                "gpu_peak_memory_mib": self.gpu_peak_memory_mib,
                "latency_ms": self.latency_ms, "layers_ms": self.layers_ms, "profiled_ms": self.profiled_ms,
                "overhead": self.overhead, "profile_runs": self.profile_runs,
                "layers": [x.to_dict() for x in self.layers], "blocks": [b.to_dict() for b in self.blocks]}

    def to_dict(self) -> dict[str, Any]:
        """The journal line."""
        line: dict[str, Any] = {"kind": "profile", "schema": PROFILE_SCHEMA, "model_index": self.model_index,
                                "model_hash": self.model_hash, "arch": self.arch, "device": self.device,
                                "setting": self.setting, "protocol": self.protocol,
                                "profile_runs": self.profile_runs, "status": self.status,
                                "created_at": self.created_at}
        if not self.ok:
            return {**line, "reason": self.reason}
        for name in ("load_ms", "first_inference_ms", "peak_memory_mib", "peak_rss_mib", "memory_how",
                     "gpu_peak_memory_mib", "latency_ms", "profiled_ms", "runtime_run_ms"):
            line[name] = getattr(self, name)
        return {**line, "layers": [x.to_dict() for x in self.layers], "blocks": [b.to_dict() for b in self.blocks],
                "measurement": self.measurement, "profiled_ns": list(self.profiled_ns), "facts": self.facts}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "a profile record") -> ProfileRecord:
        """Read one line, checking every field; :class:`ProfileRecordError` names ``origin``."""
        try:
            return _read(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            what = f"lacks field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ProfileRecordError(f"{origin}: {what}; the line is not a blox-lat profile record") from None


def _opt_float(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r} must be a number, got {value!r}")
    return float(value)


def _read(cls: type[ProfileRecord], data: dict[str, Any]) -> ProfileRecord:
    if not isinstance(data, dict) or data.get("kind") != "profile":
        raise ValueError("kind is not 'profile'")
    schema = data.get("schema")
    if schema != PROFILE_SCHEMA:
        raise ValueError(f"schema {schema!r} is not {PROFILE_SCHEMA} (a newer blox-lat wrote it?)")
    ok = data["status"] == "ok"
    layers = tuple(LayerTime(str(x["name"]), str(x["op_type"]), str(x.get("provider", "")), str(x["piece"]),
                             None if x["stage"] is None else int(x["stage"]),
                             None if x["block"] is None else str(x["block"]), float(x["ms"]),
                             str(x.get("mapped_by", ""))) for x in (data["layers"] if ok else ()))
    blocks = tuple(BlockTime(str(b["piece"]), None if b["stage"] is None else int(b["stage"]),
                             None if b["block"] is None else str(b["block"]), float(b["ms"]), int(b["layers"]))
                   for b in (data["blocks"] if ok else ()))
    if not isinstance(data["setting"], dict) or not isinstance(data["protocol"], dict):
        raise ValueError("setting and protocol must be objects")
    return cls(
        model_index=int(data["model_index"]), model_hash=str(data["model_hash"]), arch=str(data["arch"]),
        device=str(data["device"]), setting=dict(data["setting"]), protocol=dict(data["protocol"]),
        profile_runs=int(data["profile_runs"]), status=str(data["status"]), created_at=str(data["created_at"]),
        reason=data.get("reason"),
        load_ms=_opt_float(data, "load_ms"), first_inference_ms=_opt_float(data, "first_inference_ms"),
        peak_memory_mib=_opt_float(data, "peak_memory_mib"), peak_rss_mib=_opt_float(data, "peak_rss_mib"),
        memory_how=data.get("memory_how"), gpu_peak_memory_mib=_opt_float(data, "gpu_peak_memory_mib"),
        latency_ms=_opt_float(data, "latency_ms"), profiled_ms=_opt_float(data, "profiled_ms"),
        runtime_run_ms=_opt_float(data, "runtime_run_ms"), layers=layers, blocks=blocks,
        measurement=data.get("measurement"), profiled_ns=tuple(int(v) for v in data.get("profiled_ns", ())),
        facts=dict(data.get("facts") or {}),
    )


def read_profiles(path: str | os.PathLike[str]) -> list[ProfileRecord]:
    """Every record of a profiles file (or of ``<folder>/profiles.jsonl``), in order.

    A torn final line (no newline: a killed writer) is skipped; any other bad line raises
    :class:`ProfileRecordError` naming ``file:line``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / PROFILES_NAME
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ProfileRecordError(f"{p}: no such file; profile some models first (blox-lat profile)") from None
    except OSError as exc:
        raise ProfileRecordError(f"{p}: cannot read it ({exc.strerror})") from None
    complete = data[: data.rfind(b"\n") + 1]
    out = []
    for number, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = fast_json.loads(line)
        except ValueError:
            raise ProfileRecordError(f"{p}:{number}: not JSON; the file was edited or damaged") from None
        out.append(ProfileRecord.from_dict(parsed, f"{p}:{number}"))
    return out


def standing_profiles(records: list[ProfileRecord]) -> dict[ProfileKey, ProfileRecord]:
    """Which record stands for each key: the latest ok one, else the latest failed one."""
    out: dict[ProfileKey, ProfileRecord] = {}
    for rec in records:
        held = out.get(rec.key)
        if held is None or rec.ok or not held.ok:
            out[rec.key] = rec
    return out
