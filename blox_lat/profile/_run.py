"""``profile_models``: profile a selection of models on a device, resumably.

Each model is exported for the device, handed to the device's runner (the same runners as
``measure``: a local worker, the runner bundle over SSH or ADB, SNPE's tools on a phone) with
the worker's ``profile`` request, and its answer becomes one :class:`ProfileRecord` appended to
``<out>/profiles.jsonl`` (fsync per line). A rerun skips every model that already has an ok
record with the same device setting, protocol and number of profiled runs.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blox_lat._fs import utc_now
from blox_lat.errors import BloxLatError
from blox_lat.profile._mapping import attribute, block_of_piece, pieces_of_blocks
from blox_lat.profile._records import (
    PROFILES_NAME,
    BlockTime,
    LayerTime,
    ProfileRecord,
    read_profiles,
    standing_profiles,
)

__all__ = ["DEFAULT_PROFILE_RUNS", "ModelProfiled", "ProfileError", "ProfileStarted", "ProfileSummary",
           "build_record", "profile_models"]

DEFAULT_PROFILE_RUNS = 100
#: runtimes whose graph keeps the exporter's node names (frozen TorchScript does not)
_KEEPS_NAMES = frozenset({"onnxruntime", "snpe"})


class ProfileError(BloxLatError):
    """Bad input to ``profile_models`` (a device that cannot profile, a bad run count)."""


@dataclass(frozen=True)
class ProfileStarted:
    """Before the first model: how many were selected, already profiled, and left to do."""

    selected: int
    already_done: int
    todo: int


@dataclass(frozen=True)
class ModelProfiled:
    """One model done (ok or failed), ``position`` of ``todo``."""

    record: ProfileRecord
    position: int
    todo: int


@dataclass(frozen=True)
class ProfileSummary:
    """What a ``profile_models`` call did: every standing record of the selection, in order."""

    path: Path
    records: tuple[ProfileRecord, ...]
    profiled: int
    skipped: int

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)


def _layers(answer: dict[str, Any], blocks: Sequence[int], runtime: str) -> tuple[LayerTime, ...]:
    rows = list(answer.get("layers") or [])
    mapped = attribute([str(r["name"]) for r in rows], blocks, keeps_names=runtime in _KEEPS_NAMES)
    out = []
    for row, (piece, rule) in zip(rows, mapped):
        stage, block = block_of_piece(piece)
        out.append(LayerTime(str(row["name"]), str(row.get("op_type", "")), str(row.get("provider", "")),
                             piece, stage, block, float(row["ms"]), rule))
    return tuple(out)


def _blocks(layers: Sequence[LayerTime], blocks: Sequence[int]) -> tuple[BlockTime, ...]:
    """Per-piece sums in data-flow order, pieces without a layer left out (all of them where the
    runtime keeps no names); the unmapped rest last."""
    sums: dict[str, list[float]] = {p: [0.0, 0] for p in pieces_of_blocks(blocks)}
    for layer in layers:
        row = sums.setdefault(layer.piece, [0.0, 0])
        row[0] += layer.ms
        row[1] += 1
    out = []
    for piece, (ms, n) in sums.items():
        if not n:
            continue
        stage, block = block_of_piece(piece)
        out.append(BlockTime(piece, stage, block, round(ms, 6), int(n)))
    return tuple(out)


def build_record(arch: Any, profile: Any, protocol: Any, runs: int, answer: dict[str, Any]) -> ProfileRecord:
    """The ok record of one runner answer (see ``harness._layerprof``)."""
    from blox_lat.harness import Measurement, RawRun

    raw = RawRun.from_dict(answer["raw"])
    measurement = Measurement.from_ns(raw.samples_ns, runs_per_group=protocol.runs_per_group,
                                      warmup_runs=raw.warmup_runs, started_at=raw.started_at,
                                      finished_at=raw.finished_at, cv_threshold=protocol.cv_threshold,
                                      halfwidth_threshold=protocol.halfwidth_threshold)
    profiled = tuple(int(v) for v in answer.get("profiled_ns") or ())
    layers = _layers(answer, arch.blocks, profile.runtime)
    return ProfileRecord(
        model_index=arch.index, model_hash=arch.hash, arch="/".join(arch.block_names), device=profile.name,
        setting=_setting(profile), protocol=protocol.identity(), profile_runs=runs, status="ok",
        created_at=utc_now(), load_ms=_num(answer, "load_ms"), first_inference_ms=_num(answer, "first_inference_ms"),
        peak_memory_mib=_num(answer, "peak_memory_mib"), peak_rss_mib=_num(answer, "peak_rss_mib"),
        memory_how=answer.get("memory_how"), gpu_peak_memory_mib=_num(answer, "gpu_peak_memory_mib"),
        latency_ms=round(measurement.latency_ms, 6),
        profiled_ms=round(statistics.median(profiled) / 1e6, 6) if profiled else None,
        runtime_run_ms=_num(answer, "runtime_run_ms"), layers=layers, blocks=_blocks(layers, arch.blocks),
        measurement=measurement.to_dict(), profiled_ns=profiled,
        facts={**dict(raw.facts), "profiler": answer.get("profiler"), "layer_runs_kept": answer.get("layer_runs_kept")},
    )


def _num(answer: dict[str, Any], name: str) -> float | None:
    value = answer.get(name)
    return None if value is None else float(value)


def _setting(profile: Any) -> dict[str, Any]:
    return {k: v for k, v in profile.to_dict().items() if k not in ("name", "description", "source", "connection")}


def _failed(arch: Any, profile: Any, protocol: Any, runs: int, reason: str) -> ProfileRecord:
    return ProfileRecord(model_index=arch.index, model_hash=arch.hash, arch="/".join(arch.block_names), device=profile.name,
                         setting=_setting(profile), protocol=protocol.identity(), profile_runs=runs,
                         status="failed", created_at=utc_now(), reason=" ".join(reason.split())[:500] or "unknown")


def _resolve_device(device: Any) -> Any:
    """A built-in or user profile by name (a device file's profile: pass the DeviceProfile)."""
    if not isinstance(device, str):
        return device
    from blox_lat.devices import load_profiles

    return load_profiles(()).get(device)


def profile_models(models: Any, device: Any = "cpu", *, out: str | os.PathLike[str], runs: int = DEFAULT_PROFILE_RUNS,
                   protocol: Any = None, store: Any = None, connection: dict[str, Any] | None = None,
                   timeout_s: float = 600.0, runner: Any = None,
                   on_event: Callable[[Any], None] | None = None) -> ProfileSummary:
    """Profile ``models`` (a selector or model names/indices) on ``device`` (a profile name, or
    a :class:`~blox_lat.devices.DeviceProfile`, e.g. from a device file), appending to
    ``<out>/profiles.jsonl``.

    ``runs`` is both the protocol's timed runs (groups of 10) and the profiled runs; ``protocol``
    overrides the former. ``runner`` replaces the device's own (tests inject one). Models with a
    standing ok record for the same key are skipped; a failed one is tried again.
    """
    from blox_lat import space
    from blox_lat.harness import Journal, ModelFailedError, Probing, ProfilesLayers, TimingProtocol, get_runner

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ProfileError(f"runs must be a whole number >= 1, got {runs!r}")
    profile = _resolve_device(device)
    protocol = protocol or TimingProtocol.from_total(runs, min(10, runs))
    archs = space.select(models) if isinstance(models, str) else [space.resolve(m) for m in models]
    folder = Path(out)
    path = folder / PROFILES_NAME
    held = standing_profiles(read_profiles(path)) if path.exists() else {}

    def key_of(arch: Any) -> Any:
        return _failed(arch, profile, protocol, runs, "key").key

    todo = [a for a in archs if not (key_of(a) in held and held[key_of(a)].ok)]
    tell = on_event or (lambda event: None)
    if not todo:
        tell(ProfileStarted(len(archs), len(archs), 0))
    else:
        own = runner is None
        runner = runner or get_runner(profile, timeout_s=timeout_s, connection=connection)
        try:
            if not isinstance(runner, ProfilesLayers):
                raise ProfileError(f"device {profile.name!r}: its runner ({type(runner).__name__}) cannot profile "
                                   "layers; profile on a device whose runtime runs in a blox-lat worker")
            if isinstance(runner, Probing):
                runner.probe()  # a link or key problem is one error before anything is written
            tell(ProfileStarted(len(archs), len(archs) - len(todo), len(todo)))
            folder.mkdir(parents=True, exist_ok=True)
            with Journal(path) as journal:
                for position, arch in enumerate(todo, 1):
                    record = _one(arch, profile, protocol, runs, runner, store, ModelFailedError)
                    journal.append(record.to_dict())
                    held[record.key] = record
                    tell(ModelProfiled(record, position, len(todo)))
        finally:
            if own:
                runner.close()
    records = tuple(held[key_of(a)] for a in archs if key_of(a) in held)
    return ProfileSummary(path, records, len(todo), len(archs) - len(todo))


def _one(arch: Any, profile: Any, protocol: Any, runs: int, runner: Any, store: Any, failure: type) -> ProfileRecord:
    from blox_lat.exporters import ExportError, export

    try:
        artifact = export(arch, profile.format, batch=profile.batch, store=store)
    except ExportError as exc:
        return _failed(arch, profile, protocol, runs, f"export failed: {exc}")
    try:
        answer = runner.profile_layers(artifact, profile, protocol, runs)
        return build_record(arch, profile, protocol, runs, answer)
    except failure as exc:
        return _failed(arch, profile, protocol, runs, str(getattr(exc, "reason", exc)))
